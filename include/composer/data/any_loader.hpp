#pragma once
/// \file
/// composer::data::AnyLoader — any source of (input, target) batches, behind one type the Trainer iterates.

#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/data/example.h>

#include <composer/core/batch.hpp>

namespace composer::data {

namespace detail {

template <class T>
struct is_example_vector : std::false_type {};
template <class D, class T>
struct is_example_vector<std::vector<torch::data::Example<D, T>>> : std::true_type {};

/// Converts one element of a loader into a Batch: a Batch, a `torch::data::Example`, a vector of examples
/// (stacked, as `torch::data::transforms::Stack` would), or a pair/tuple of two tensors.
template <class Element>
Batch to_batch(Element&& element) {
  using E = std::remove_cvref_t<Element>;
  if constexpr (std::is_same_v<E, Batch>) {
    return std::forward<Element>(element);
  } else if constexpr (std::is_same_v<E, torch::data::Example<at::Tensor, at::Tensor>>) {
    return Batch{element.data, element.target};
  } else if constexpr (is_example_vector<E>::value) {
    std::vector<at::Tensor> data, targets;
    data.reserve(element.size());
    targets.reserve(element.size());
    for (auto& example : element) {
      data.push_back(example.data);
      targets.push_back(example.target);
    }
    if (data.empty()) throw std::runtime_error("composer: the data loader yielded an empty batch");
    return Batch{at::stack(data), at::stack(targets)};
  } else if constexpr (requires { std::get<0>(element); std::get<1>(element); }) {
    return Batch{at::Tensor(std::get<0>(element)), at::Tensor(std::get<1>(element))};
  } else {
    static_assert(sizeof(E) == 0,
                  "composer: a data loader must yield composer::Batch, torch::data::Example<>, a vector of "
                  "examples, or a pair/tuple of (input, target) tensors");
  }
}

template <class L>
L& deref(L& loader) {
  return loader;
}
template <class L>
L& deref(std::unique_ptr<L>& loader) {
  return *loader;
}
template <class L>
L& deref(std::shared_ptr<L>& loader) {
  return *loader;
}
template <class L>
L& deref(std::reference_wrapper<L>& loader) {
  return loader.get();
}

template <class T>
struct is_unique_ptr : std::false_type {};
template <class T, class D>
struct is_unique_ptr<std::unique_ptr<T, D>> : std::true_type {};

template <class>
inline constexpr bool dependent_false = false;

/// The shared holder AnyLoader keeps `loader` in: a copy of it, or `loader` itself when moved in. A loader that
/// cannot be copied and is not moved in is a compile error saying how to pass it.
template <class Loader>
auto hold(Loader&& loader) {
  using L = std::remove_cvref_t<Loader>;
  if constexpr (std::is_pointer_v<L>) {
    static_assert(dependent_false<L>,
                  "composer: a data loader cannot be passed as a raw pointer (who would own it?): pass "
                  "std::ref(*pointer) to iterate a loader owned elsewhere (it must outlive the Trainer), or the "
                  "loader itself, moved in");
    return std::shared_ptr<std::vector<Batch>>();  // no further errors after the one above
  } else if constexpr (is_unique_ptr<L>::value && !std::is_constructible_v<L, Loader&&>) {
    static_assert(dependent_false<L>,
                  "composer: a torch::data loader is a std::unique_ptr, which cannot be copied: pass it with "
                  "std::move(loader) (the Trainer then owns it), or std::ref(*loader) to keep it and let the Trainer "
                  "iterate it in place (it must outlive the Trainer), or share it as a std::shared_ptr");
    return std::shared_ptr<std::vector<Batch>>();
  } else if constexpr (!std::is_constructible_v<L, Loader&&>) {
    static_assert(dependent_false<L>,
                  "composer: this data loader cannot be copied: pass it with std::move(loader) (the Trainer then owns "
                  "it), or std::ref(loader) to let the Trainer iterate it in place (it must outlive the Trainer)");
    return std::shared_ptr<std::vector<Batch>>();
  } else {
    return std::make_shared<L>(std::forward<Loader>(loader));
  }
}
}  // namespace detail

/// A data loader of any type, erased: iterating an epoch yields `composer::Batch`es. It accepts
/// `composer::data::TensorLoader`, any input range of batches / `torch::data::Example`s / (input, target)
/// pairs, `torch::data` loaders held by `std::unique_ptr` (as `torch::data::make_data_loader` returns them,
/// moved in) or by `std::shared_ptr`, and `std::ref(loader)` to iterate a loader owned elsewhere. Loaders with
/// `set_epoch(e)` get it at every epoch, loaders with `set_shard(num_replicas, rank)` can be sharded by a
/// data-parallel Trainer (`shard`), and loaders with `begin(skip)` resume mid-epoch without replaying;
/// others replay and discard the skipped batches. Composer counterpart: the `DataLoader` inside
/// `composer.core.DataSpec`.
class AnyLoader {
 public:
  /// No loader.
  AnyLoader() = default;

  /// Takes ownership of `loader` (moved in, or copied), shares it (a `std::shared_ptr`) or, through `std::ref`,
  /// refers to it. A loader that cannot be copied, such as the `std::unique_ptr` of `torch::data`, must be moved in:
  /// passing it as an lvalue is a compile error saying so.
  template <class Loader>
    requires(!std::is_same_v<std::remove_cvref_t<Loader>, AnyLoader>)
  AnyLoader(Loader&& loader)  // NOLINT(google-explicit-constructor): a loader is naturally an AnyLoader
      : AnyLoader(detail::hold(std::forward<Loader>(loader)), 0) {}

  /// Whether a loader is held.
  explicit operator bool() const noexcept { return static_cast<bool>(start_); }

  /// Batches per epoch, when the loader knows it.
  std::optional<std::int64_t> size() const { return size_ ? size_() : std::nullopt; }

  /// Starts epoch `epoch`, skipping its first `skip` batches.
  void start_epoch(std::int64_t epoch, std::int64_t skip = 0) {
    require();
    if (skip < 0) throw std::invalid_argument("composer: cannot skip a negative number of batches");
    start_(epoch, skip);
  }

  /// Makes the loader rank `rank`'s shard of `num_replicas` when it has the hook for it, a member
  /// `set_shard(num_replicas, rank)` (as `TensorLoader` has), and returns whether it had. A data-parallel Trainer
  /// calls this on its loaders. Counterpart: giving a `DataLoader` a `DistributedSampler`.
  bool shard(std::int64_t num_replicas, std::int64_t rank) {
    require();
    return shard_(num_replicas, rank);
  }

  /// The next batch of the current epoch, or none at its end.
  std::optional<Batch> next() {
    require();
    return next_();
  }

 private:
  template <class Holder>
  AnyLoader(std::shared_ptr<Holder> holder, int) {
    using L = std::remove_reference_t<decltype(detail::deref(*holder))>;
    struct Cursor {
      std::shared_ptr<Holder> holder;
      std::optional<decltype(std::declval<L&>().begin())> it;
    };
    static_assert(requires(L& l) { l.begin() == l.end(); },
                  "composer: a data loader must have begin() and end() (an iterable) yielding batches");
    auto cursor = std::make_shared<Cursor>(Cursor{std::move(holder), std::nullopt});
    size_ = [cursor]() -> std::optional<std::int64_t> {
      L& loader = detail::deref(*cursor->holder);
      if constexpr (requires { std::ranges::size(loader); })
        return static_cast<std::int64_t>(std::ranges::size(loader));
      else
        return std::nullopt;
    };
    start_ = [cursor](std::int64_t epoch, std::int64_t skip) {
      L& loader = detail::deref(*cursor->holder);
      if constexpr (requires { loader.set_epoch(epoch); }) loader.set_epoch(epoch);
      cursor->it.reset();
      if constexpr (requires { loader.begin(skip); }) {
        cursor->it.emplace(loader.begin(skip));
      } else {
        cursor->it.emplace(loader.begin());
        for (std::int64_t i = 0; i < skip && !(*cursor->it == loader.end()); ++i) ++*cursor->it;
      }
    };
    shard_ = [cursor](std::int64_t num_replicas, std::int64_t rank) {
      L& loader = detail::deref(*cursor->holder);
      if constexpr (requires { loader.set_shard(num_replicas, rank); }) {
        loader.set_shard(num_replicas, rank);
        return true;
      } else {
        return false;
      }
    };
    next_ = [cursor]() -> std::optional<Batch> {
      L& loader = detail::deref(*cursor->holder);
      if (!cursor->it) throw std::logic_error("composer: AnyLoader::next() called before start_epoch()");
      if (*cursor->it == loader.end()) return std::nullopt;
      Batch batch = detail::to_batch(**cursor->it);
      ++*cursor->it;
      return batch;
    };
  }

  void require() const {
    if (!start_) throw std::logic_error("composer: no data loader was given");
  }

  std::function<std::optional<std::int64_t>()> size_;
  std::function<void(std::int64_t, std::int64_t)> start_;
  std::function<bool(std::int64_t, std::int64_t)> shard_;
  std::function<std::optional<Batch>()> next_;
};

}  // namespace composer::data
