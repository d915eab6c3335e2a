#pragma once
/// \file
/// Gradient synchronisation for data-parallel training: gradients are averaged over the ranks in buckets, each
/// bucket's all-reduce starting from the gradient hooks as soon as its last gradient is ready, so communication
/// overlaps the rest of the backward pass. Composer counterpart: the `DistributedDataParallel` wrapper Composer
/// puts around the model (with `no_sync` on every microbatch of a gradient accumulation but the last).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/distributed/process_group.hpp>

namespace composer::dist {

/// Averages the gradients of `parameters` over the ranks of a group. Call `arm()` before the backward pass of the
/// last microbatch of a batch (the earlier ones accumulate locally, as under DDP's `no_sync`) and `finish()` after
/// it: each parameter's `.grad` is then the mean over the ranks of the gradients they accumulated, a parameter no
/// rank gave a gradient keeps none (so an optimizer leaves it alone, as in a single process), and the small
/// values passed to `finish` come back summed over the ranks. Buckets hold parameters of one dtype and device,
/// in reverse order (the order backward produces gradients), up to `bucket_bytes` each, and are reduced in the
/// same order on every rank. Composer counterpart: DDP's reducer (`bucket_cap_mb`, default 25 MB).
class GradientSynchronizer {
 public:
  /// DDP's default bucket size, 25 MiB.
  static constexpr std::int64_t default_bucket_bytes = 25 * 1024 * 1024;

  /// Hooks every parameter of `parameters` that requires a gradient.
  /// \throws std::invalid_argument for a null group or a non-positive bucket size.
  GradientSynchronizer(std::shared_ptr<const ProcessGroup> group, std::vector<at::Tensor> parameters,
                       std::int64_t bucket_bytes = default_bucket_bytes)
      : group_(std::move(group)), parameters_(std::move(parameters)) {
    if (!group_) throw std::invalid_argument("composer: GradientSynchronizer needs a process group");
    if (bucket_bytes <= 0) throw std::invalid_argument("composer: GradientSynchronizer needs a positive bucket size");
    slots_.resize(parameters_.size());
    for (std::size_t i = parameters_.size(); i-- > 0;) {
      const at::Tensor& p = parameters_[i];
      if (!p.requires_grad()) continue;
      const std::int64_t bytes = p.numel() * static_cast<std::int64_t>(p.element_size());
      const bool fits = !buckets_.empty() && buckets_.back().dtype == p.scalar_type() &&
                        buckets_.back().device == p.device() && buckets_.back().bytes + bytes <= bucket_bytes;
      if (!fits) buckets_.push_back(Bucket{p.scalar_type(), p.device()});
      Bucket& bucket = buckets_.back();
      slots_[i] = Slot{true, buckets_.size() - 1, bucket.numel};
      bucket.members.push_back(i);
      bucket.numel += p.numel();
      bucket.bytes += bytes;
    }
    for (auto& bucket : buckets_)
      bucket.buffer = at::zeros({bucket.numel}, at::TensorOptions().dtype(bucket.dtype).device(bucket.device));
    for (std::size_t i = 0; i < parameters_.size(); ++i)
      if (slots_[i].hooked)
        hooks_.emplace_back(i, parameters_[i].register_hook([this, i](const at::Tensor& grad) -> at::Tensor {
          on_gradient(i, grad);
          return at::Tensor();  // the gradient itself is left as it is
        }));
  }

  GradientSynchronizer(const GradientSynchronizer&) = delete;
  GradientSynchronizer& operator=(const GradientSynchronizer&) = delete;

  ~GradientSynchronizer() {
    for (auto& [index, hook] : hooks_) parameters_[index].remove_hook(hook);
  }

  /// Whether this synchronizer was made for exactly `parameters` (the same tensors, in order, with the same
  /// `requires_grad`): after module surgery or freezing, the Trainer makes a new one.
  bool serves(const std::vector<at::Tensor>& parameters) const {
    if (parameters.size() != parameters_.size()) return false;
    for (std::size_t i = 0; i < parameters.size(); ++i)
      if (!parameters[i].is_same(parameters_[i]) || parameters[i].requires_grad() != slots_[i].hooked) return false;
    return true;
  }

  /// The next backward pass is the last of the batch: its gradients, added to those accumulated so far, go to
  /// the buckets and are reduced as the buckets fill.
  void arm() {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = true;
    next_bucket_ = 0;
    for (auto& bucket : buckets_) bucket.ready = 0;
    used_.assign(parameters_.size(), 0);
  }

  /// After the last backward pass: reduces the buckets not yet started (a parameter without a gradient this pass
  /// contributes what it accumulated before, or zeros), sums `extras` over the ranks with them, waits, and sets
  /// every parameter's `.grad` to the mean over the ranks. Returns `extras` summed over the ranks.
  /// \throws DistributedError when another rank stopped or did not take part within the timeout.
  std::vector<double> finish(const std::vector<double>& extras) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!armed_) throw std::logic_error("composer: GradientSynchronizer::finish() without arm()");
    armed_ = false;
    for (std::size_t b = next_bucket_; b < buckets_.size(); ++b) {
      Bucket& bucket = buckets_[b];
      for (const std::size_t i : bucket.members) {
        if (used_[i]) continue;
        const at::Tensor& accumulated = parameters_[i].grad();
        if (accumulated.defined()) {
          slot_of(i).copy_(accumulated.reshape({-1}));
          used_[i] = 1;
        } else {
          slot_of(i).zero_();
        }
      }
      bucket.ready = bucket.members.size();
    }
    launch_ready_buckets();
    // One more all-reduce carries which parameters had a gradient on any rank, and the caller's values.
    const auto count = static_cast<std::int64_t>(parameters_.size());
    at::Tensor small = at::empty({count + static_cast<std::int64_t>(extras.size())}, at::kDouble);
    double* values = small.data_ptr<double>();
    for (std::int64_t i = 0; i < count; ++i) values[i] = used_[static_cast<std::size_t>(i)];
    std::copy(extras.begin(), extras.end(), values + count);
    ProcessGroup::Pending small_reduction = group_->all_reduce_sum_async(small, "all-reduce of the gradients");

    const auto started = std::chrono::steady_clock::now();
    for (auto& bucket : buckets_) bucket.pending.wait();
    small_reduction.wait();
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    const double world = static_cast<double>(group_->world_size());
    for (auto& bucket : buckets_) bucket.buffer.div_(world);
    for (std::int64_t i = 0; i < count; ++i) {
      const auto index = static_cast<std::size_t>(i);
      if (!slots_[index].hooked) continue;
      // A gradient of its own, not a view of the bucket: optimizers detach and zero gradients in place.
      at::Tensor& grad = parameters_[index].mutable_grad();
      grad = values[i] > 0 ? slot_of(index).view(parameters_[index].sizes()).clone() : at::Tensor();
    }
    return std::vector<double>(values + count, values + count + extras.size());
  }

  /// Seconds spent waiting for the all-reduces in `finish` so far: the communication the backward pass did not
  /// hide.
  double wait_seconds() const noexcept { return wait_seconds_; }
  /// Number of buckets.
  std::size_t bucket_count() const noexcept { return buckets_.size(); }

 private:
  struct Slot {
    bool hooked = false;
    std::size_t bucket = 0;
    std::int64_t offset = 0;
  };
  struct Bucket {
    at::ScalarType dtype;
    c10::Device device;
    std::vector<std::size_t> members;
    std::int64_t numel = 0;
    std::int64_t bytes = 0;
    at::Tensor buffer;
    std::size_t ready = 0;
    ProcessGroup::Pending pending;
  };

  at::Tensor slot_of(std::size_t i) {
    const Slot& slot = slots_[i];
    return buckets_[slot.bucket].buffer.narrow(0, slot.offset, parameters_[i].numel());
  }

  // A gradient hook: while armed, the parameter's gradient so far plus this pass's goes to its bucket.
  void on_gradient(std::size_t i, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!armed_ || used_[i]) return;
    if (grad.is_sparse())
      throw std::invalid_argument("composer: data-parallel training does not support sparse gradients");
    const at::Tensor& accumulated = parameters_[i].grad();
    at::Tensor target = slot_of(i);
    if (accumulated.defined())
      at::add_out(target, accumulated.reshape({-1}), grad.reshape({-1}));
    else
      target.copy_(grad.reshape({-1}));
    used_[i] = 1;
    ++buckets_[slots_[i].bucket].ready;
    launch_ready_buckets();
  }

  // Starts the all-reduce of every full bucket whose predecessors have all started: the same order on every rank.
  void launch_ready_buckets() {
    while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].ready == buckets_[next_bucket_].members.size()) {
      Bucket& bucket = buckets_[next_bucket_];
      bucket.pending = group_->all_reduce_sum_async(bucket.buffer, "all-reduce of the gradients");
      ++next_bucket_;
    }
  }

  std::shared_ptr<const ProcessGroup> group_;
  std::vector<at::Tensor> parameters_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<std::size_t, unsigned>> hooks_;
  std::vector<char> used_;
  std::size_t next_bucket_ = 0;
  bool armed_ = false;
  double wait_seconds_ = 0.0;
  std::mutex mutex_;
};

/// Copies rank 0's values of `tensors` (a model's parameters or buffers) into every rank's, so that all ranks hold
/// the same model: one broadcast per dtype and device, of the tensors flattened together. Composer counterpart:
/// DDP's broadcast of the module's state (at construction, and of its buffers before each forward pass).
inline void broadcast_from_rank_zero(const ProcessGroup& group, const std::vector<at::Tensor>& tensors) {
  at::NoGradGuard no_grad;
  std::vector<bool> done(tensors.size(), false);
  for (std::size_t first = 0; first < tensors.size(); ++first) {
    if (done[first] || !tensors[first].defined()) continue;
    std::vector<std::size_t> members;
    std::vector<at::Tensor> flat;
    for (std::size_t i = first; i < tensors.size(); ++i)
      if (!done[i] && tensors[i].defined() && tensors[i].scalar_type() == tensors[first].scalar_type() &&
          tensors[i].device() == tensors[first].device()) {
        members.push_back(i);
        flat.push_back(tensors[i].reshape({-1}));
        done[i] = true;
      }
    const at::Tensor joined = at::cat(flat);
    group.broadcast(joined, 0, "broadcast of the model from rank 0");
    std::int64_t offset = 0;
    for (const std::size_t i : members) {
      const std::int64_t n = tensors[i].numel();
      tensors[i].copy_(joined.narrow(0, offset, n).view(tensors[i].sizes()));
      offset += n;
    }
  }
}

}  // namespace composer::dist
