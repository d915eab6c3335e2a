#pragma once
/// \file
/// composer::data::TensorLoader — an in-memory data loader over an (inputs, targets) pair of tensors, with a
/// shuffle order that is a pure function of (seed, epoch) and mid-epoch resumption without replay.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <ranges>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/batch.hpp>

namespace composer::data {

/// How a `TensorLoader` batches and orders its samples. Counterpart: the `batch_size`, `shuffle` and `drop_last`
/// arguments of `torch.utils.data.DataLoader` and the `seed` of `torch.utils.data.DistributedSampler`.
struct TensorLoaderOptions {
  std::int64_t batch_size = 1;  ///< samples per batch, > 0
  bool shuffle = false;         ///< visit samples in a fresh pseudo-random order each epoch
  bool drop_last = false;       ///< drop the final batch of an epoch when it has fewer than batch_size samples
  std::uint64_t seed = 0;       ///< with the epoch number, determines the shuffle order
  /// put each batch in page-locked (pinned) host memory, so that its copy to a CUDA device is asynchronous and
  /// runs at the bus's full rate; needs a LibTorch with CUDA and a GPU. Counterpart: `DataLoader(pin_memory=True)`.
  bool pin_memory = false;
  /// Ranks sharing the data (the world size of data-parallel training): each iterates its own shard of every
  /// epoch, as `DistributedSampler(num_replicas)` gives it (see `TensorLoader::sample_order`).
  std::int64_t num_replicas = 1;
  /// This loader's shard, in [0, num_replicas). Counterpart: `DistributedSampler(rank)`.
  std::int64_t rank = 0;
};

namespace detail {

/// SplitMix64's output function: a bijection on 64-bit integers that scatters nearby inputs.
constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// A uniform integer in [0, bound) from `engine`, by rejection (exact, and unlike std::uniform_int_distribution,
/// the same on every standard library).
inline std::uint64_t uniform_below(std::mt19937_64& engine, std::uint64_t bound) {
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t rem = (max % bound + 1) % bound;  // 2^64 mod bound
  std::uint64_t x;
  do x = engine();
  while (x > max - rem);
  return x % bound;
}

}  // namespace detail

/// An in-memory data loader over the rows of an inputs tensor and a targets tensor: what a Trainer iterates once per
/// epoch. Iterating yields `composer::Batch`es of up to `batch_size()` rows, gathered with `index_select` (so each
/// batch owns fresh memory and may be modified in place), with an optional transform applied to each batch's inputs.
/// With `shuffle`, the sample order of epoch `e` is a pure function of (seed, e) — computed with std::mt19937_64 and
/// an exact integer sampler, so it is the same on every platform and LibTorch version — so a resumed run sees
/// exactly the batches an uninterrupted one would; `begin(k)` / `skip(k)` start an epoch at batch k without replay.
/// Satisfies std::ranges::input_range and std::ranges::sized_range. Counterpart: `torch.utils.data.DataLoader` over
/// a `TensorDataset` with a `DistributedSampler` (`set_epoch`), plus the batch skipping Composer's Trainer does when
/// it resumes mid-epoch (where Composer iterates through the skipped batches, this computes none of them).
class TensorLoader {
 public:
  /// A function applied to each batch's inputs, e.g. `normalize_fashion_mnist`. Counterpart: a torchvision
  /// transform, though applied per batch rather than per sample.
  using Transform = std::function<at::Tensor(const at::Tensor&)>;

  class Iterator;
  class EpochRange;

  /// A loader over the rows of `inputs` and `targets` (their first dimensions must match). Throws
  /// std::invalid_argument for undefined or 0-dimensional tensors, differing row counts, or batch_size <= 0.
  /// Counterpart: `DataLoader(TensorDataset(inputs, targets), batch_size, shuffle, drop_last)`.
  TensorLoader(at::Tensor inputs, at::Tensor targets, TensorLoaderOptions options, Transform transform = {})
      : inputs_(std::move(inputs)), targets_(std::move(targets)), options_(options), transform_(std::move(transform)) {
    if (options_.batch_size <= 0)
      throw std::invalid_argument("composer: TensorLoader batch_size must be positive, got " +
                                  std::to_string(options_.batch_size));
    if (!inputs_.defined() || inputs_.dim() == 0)
      throw std::invalid_argument("composer: TensorLoader inputs must be a tensor with at least one dimension");
    if (!targets_.defined() || targets_.dim() == 0)
      throw std::invalid_argument("composer: TensorLoader targets must be a tensor with at least one dimension");
    if (inputs_.size(0) != targets_.size(0))
      throw std::invalid_argument("composer: TensorLoader inputs have " + std::to_string(inputs_.size(0)) +
                                  " rows but targets have " + std::to_string(targets_.size(0)) + " rows");
    check_shard(options_.num_replicas, options_.rank);
    if (options_.pin_memory && !at::globalContext().hasCUDA())
      throw std::invalid_argument("composer: TensorLoader pin_memory needs a LibTorch built with CUDA and a GPU, and "
                                  "this process has none; leave pin_memory off");
    if (options_.pin_memory && (!inputs_.device().is_cpu() || !targets_.device().is_cpu()))
      throw std::invalid_argument("composer: TensorLoader pin_memory pins host memory, but the data is on " +
                                  (inputs_.device().is_cpu() ? targets_ : inputs_).device().str());
  }

  /// Positional form of the constructor above: `TensorLoader(x, y, 64, /*shuffle=*/true)`.
  TensorLoader(at::Tensor inputs, at::Tensor targets, std::int64_t batch_size, bool shuffle = false,
               bool drop_last = false, std::uint64_t seed = 0, Transform transform = {})
      : TensorLoader(std::move(inputs), std::move(targets), TensorLoaderOptions{batch_size, shuffle, drop_last, seed},
                     std::move(transform)) {}

  /// Makes this loader rank `rank`'s shard of `num_replicas` (as the options' `num_replicas` and `rank` do): the
  /// hook through which a data-parallel Trainer shards its loaders (`data::AnyLoader::shard`). Counterpart:
  /// `DistributedSampler(num_replicas, rank)`. \throws std::invalid_argument as the constructor does.
  void set_shard(std::int64_t num_replicas, std::int64_t rank) {
    check_shard(num_replicas, rank);
    options_.num_replicas = num_replicas;
    options_.rank = rank;
  }

  /// Selects the epoch whose order the next `begin()` / `skip()` iterates; throws std::invalid_argument if
  /// negative. Iterators already begun keep their epoch. Counterpart: `DistributedSampler.set_epoch`.
  void set_epoch(std::int64_t epoch) {
    if (epoch < 0)
      throw std::invalid_argument("composer: TensorLoader epoch must be non-negative, got " + std::to_string(epoch));
    epoch_ = epoch;
  }
  /// The epoch set by `set_epoch` (0 initially).
  std::int64_t epoch() const noexcept { return epoch_; }

  /// Number of batches per epoch of this rank's shard: ceil(S / batch_size), or floor with drop_last, S being
  /// `shard_size()`. Counterpart: `len(dataloader)`.
  std::int64_t size() const noexcept {
    const auto n = shard_size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  /// Number of rows N of the inputs and targets. Counterpart: `len(dataloader.dataset)`.
  std::int64_t num_samples() const noexcept { return inputs_.size(0); }
  /// Samples this rank visits per epoch: N with one replica; with R, ceil(N / R) (the last ones padded from the
  /// start of the order), or floor(N / R) with drop_last (the order's tail dropped). Counterpart:
  /// `DistributedSampler.num_samples`.
  std::int64_t shard_size() const noexcept {
    const auto n = num_samples(), r = options_.num_replicas;
    return options_.drop_last ? n / r : (n + r - 1) / r;
  }
  /// Samples per batch (the final batch of an epoch may hold fewer unless drop_last). Counterpart:
  /// `dataloader.batch_size`.
  std::int64_t batch_size() const noexcept { return options_.batch_size; }
  /// The options the loader was made with.
  const TensorLoaderOptions& options() const noexcept { return options_; }
  /// All inputs, unbatched and untransformed.
  const at::Tensor& inputs() const noexcept { return inputs_; }
  /// All targets, unbatched.
  const at::Tensor& targets() const noexcept { return targets_; }
  /// Replaces the per-batch inputs transform (an empty function means none); affects iterators begun afterwards.
  void set_transform(Transform transform) { transform_ = std::move(transform); }

  /// The rows this rank visits in epoch `epoch`, in order: int64 [shard_size()]; batch k holds rows
  /// order[k*batch_size, (k+1)*batch_size). With one replica, a permutation of 0..N-1: the identity without shuffle;
  /// shuffled, a Fisher-Yates shuffle driven by std::mt19937_64 seeded with splitmix64(splitmix64(seed) + epoch), the
  /// same on every rank. With R replicas that order is cut to floor(N / R) * R rows (drop_last) or extended to
  /// ceil(N / R) * R by repeating its beginning, and rank r takes its rows r, r + R, r + 2R, ... Counterpart:
  /// `list(iter(DistributedSampler(num_replicas, rank, shuffle, seed, drop_last)))` after `set_epoch(epoch)`.
  at::Tensor sample_order(std::int64_t epoch) const {
    const at::Tensor order = global_order(epoch);
    const auto n = num_samples(), r = options_.num_replicas;
    if (r == 1) return order;
    const auto total = shard_size() * r;
    at::Tensor padded = order;
    while (padded.size(0) < total)
      padded = at::cat({padded, order.narrow(0, 0, std::min(n, total - padded.size(0)))});
    return padded.narrow(0, 0, total).slice(0, options_.rank, total, r).contiguous();
  }

  /// Iterator at batch 0 of the current epoch. It refers to this loader, which must outlive it.
  Iterator begin() const;
  /// Iterator at batch `skip_batches` of the current epoch, yielding exactly what `begin()` would from there on,
  /// without computing the skipped batches; `skip_batches == size()` gives an empty epoch. Throws
  /// std::invalid_argument unless 0 <= skip_batches <= size(). Counterpart: resuming a Composer run mid-epoch.
  Iterator begin(std::int64_t skip_batches) const;
  /// End of any epoch.
  std::default_sentinel_t end() const noexcept { return {}; }
  /// The current epoch from batch `skip_batches` on, as a range: `for (auto& b : loader.skip(k))`. Throws as
  /// `begin(skip_batches)`.
  EpochRange skip(std::int64_t skip_batches) const;

 private:
  void check_shard(std::int64_t num_replicas, std::int64_t rank) const {
    if (num_replicas < 1 || rank < 0 || rank >= num_replicas)
      throw std::invalid_argument("composer: TensorLoader rank must be in [0, num_replicas) with num_replicas >= 1, "
                                  "got rank " + std::to_string(rank) + " of " + std::to_string(num_replicas));
    if (options_.drop_last && inputs_.size(0) < num_replicas)
      throw std::invalid_argument("composer: TensorLoader with drop_last cannot share " +
                                  std::to_string(inputs_.size(0)) + " samples among " + std::to_string(num_replicas) +
                                  " ranks: every shard would be empty");
  }

  // Every row in the order epoch `epoch` visits them before sharding: the identity, or the seeded shuffle.
  at::Tensor global_order(std::int64_t epoch) const {
    const auto n = num_samples();
    if (!options_.shuffle) return at::arange(n, at::TensorOptions().dtype(at::kLong));
    at::Tensor order = at::empty({n}, at::TensorOptions().dtype(at::kLong));
    auto* p = order.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) p[i] = i;
    std::mt19937_64 engine(detail::splitmix64(detail::splitmix64(options_.seed) + static_cast<std::uint64_t>(epoch)));
    for (std::int64_t i = n - 1; i > 0; --i)
      std::swap(p[i], p[detail::uniform_below(engine, static_cast<std::uint64_t>(i) + 1)]);
    return order;
  }

  Batch make_batch(const at::Tensor& order, std::int64_t k) const {
    const auto start = k * options_.batch_size;
    const auto len = std::min(options_.batch_size, order.size(0) - start);
    const at::Tensor rows = order.narrow(0, start, len);
    at::Tensor x = inputs_.index_select(0, rows.to(inputs_.device()));
    if (transform_) x = transform_(x);
    at::Tensor y = targets_.index_select(0, rows.to(targets_.device()));
    if (options_.pin_memory) {
      // as DataLoader's pinning does: the finished batch copied into LibTorch's caching pinned-memory allocator
      x = x.pin_memory();
      y = y.pin_memory();
    }
    return Batch{std::move(x), std::move(y)};
  }

  at::Tensor inputs_;
  at::Tensor targets_;
  TensorLoaderOptions options_;
  Transform transform_;
  std::int64_t epoch_ = 0;
};

/// Input iterator over one epoch of a `TensorLoader`, yielding `const composer::Batch&`; compares equal to
/// std::default_sentinel at the epoch's end. Counterpart: `iter(dataloader)`.
class TensorLoader::Iterator {
 public:
  using value_type = Batch;                         ///< what it yields
  using difference_type = std::ptrdiff_t;           ///< required of an iterator
  using iterator_concept = std::input_iterator_tag; ///< single pass
  using iterator_category = std::input_iterator_tag;  ///< for pre-C++20 iterator traits

  /// A singular iterator, equal to the sentinel.
  Iterator() = default;

  /// The current batch.
  const Batch& operator*() const noexcept { return batch_; }
  /// The current batch's members.
  const Batch* operator->() const noexcept { return &batch_; }
  /// Moves to the next batch (gathering it, unless at the end).
  Iterator& operator++() {
    if (++index_ < end_) batch_ = loader_->make_batch(order_, index_);
    else batch_ = Batch{};
    return *this;
  }
  /// Moves to the next batch.
  void operator++(int) { ++*this; }
  /// Index within the epoch of the current batch (0-based, counting skipped batches).
  std::int64_t batch_index() const noexcept { return index_; }
  /// The epoch this iterator walks.
  std::int64_t epoch() const noexcept { return epoch_; }
  /// True at the end of the epoch.
  friend bool operator==(const Iterator& it, std::default_sentinel_t) noexcept { return it.index_ >= it.end_; }

 private:
  friend class TensorLoader;
  Iterator(const TensorLoader& loader, std::int64_t epoch, std::int64_t first)
      : loader_(&loader), order_(loader.sample_order(epoch)), index_(first), end_(loader.size()), epoch_(epoch) {
    if (index_ < end_) batch_ = loader_->make_batch(order_, index_);
  }

  const TensorLoader* loader_ = nullptr;
  at::Tensor order_;
  std::int64_t index_ = 0;
  std::int64_t end_ = 0;
  std::int64_t epoch_ = 0;
  Batch batch_;
};

/// One epoch of a `TensorLoader` from a given batch on, as returned by `TensorLoader::skip`; a sized input range.
/// It refers to the loader, which must outlive it; the epoch is fixed when it is made.
class TensorLoader::EpochRange {
 public:
  /// Iterator at the first batch not skipped.
  Iterator begin() const { return Iterator(*loader_, epoch_, first_); }
  /// End of the epoch.
  std::default_sentinel_t end() const noexcept { return {}; }
  /// Number of batches left in the epoch.
  std::int64_t size() const noexcept { return loader_->size() - first_; }
  /// True when no batch is left.
  bool empty() const noexcept { return size() == 0; }

 private:
  friend class TensorLoader;
  EpochRange(const TensorLoader& loader, std::int64_t epoch, std::int64_t first)
      : loader_(&loader), epoch_(epoch), first_(first) {}
  const TensorLoader* loader_;
  std::int64_t epoch_;
  std::int64_t first_;
};

inline TensorLoader::Iterator TensorLoader::begin() const { return Iterator(*this, epoch_, 0); }

inline TensorLoader::EpochRange TensorLoader::skip(std::int64_t skip_batches) const {
  if (skip_batches < 0 || skip_batches > size())
    throw std::invalid_argument("composer: TensorLoader cannot skip " + std::to_string(skip_batches) +
                                " batches of an epoch of " + std::to_string(size()) + " batches");
  return EpochRange(*this, epoch_, skip_batches);
}

inline TensorLoader::Iterator TensorLoader::begin(std::int64_t skip_batches) const {
  return skip(skip_batches).begin();
}

static_assert(std::input_iterator<TensorLoader::Iterator>);
static_assert(std::sentinel_for<std::default_sentinel_t, TensorLoader::Iterator>);
static_assert(std::ranges::input_range<TensorLoader> && std::ranges::sized_range<TensorLoader>);
static_assert(std::ranges::input_range<TensorLoader::EpochRange> && std::ranges::sized_range<TensorLoader::EpochRange>);

}  // namespace composer::data
