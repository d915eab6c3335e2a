#pragma once
/// \file
/// Mixed precision: a scope that turns CUDA autocast on for the forward pass and loss, and the dynamic loss
/// scale that keeps fp16 gradients from underflowing.

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/Device.h>
#include <torch/version.h>

#include <composer/core/precision.hpp>

namespace composer {

/// Runs the enclosed forward pass and loss under CUDA autocast in the precision's type (`amp_fp16` → half,
/// `amp_bf16` → bfloat16), restoring the previous autocast settings on exit; does nothing for `fp32`.
/// Composer counterpart: `composer.core.precision.get_precision_context`.
class PrecisionContext {
 public:
  /// Enters autocast for `precision` on `device`; `amp_*` on a CPU device is an error, as in Composer.
  PrecisionContext(Precision precision, const c10::Device& device) {
    if (precision == Precision::fp32) return;
    if (!device.is_cuda())
      throw std::invalid_argument("composer: precision " + std::string(to_string(precision)) +
                                  " needs a CUDA device; use fp32 on " + device.str());
    const at::ScalarType dtype = precision == Precision::amp_fp16 ? at::kHalf : at::kBFloat16;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    previous_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
    previous_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(dtype);
#endif
    at::autocast::increment_nesting();
    active_ = true;
  }
  PrecisionContext(const PrecisionContext&) = delete;
  PrecisionContext& operator=(const PrecisionContext&) = delete;
  /// Leaves autocast, clearing its cast cache when the outermost scope ends.
  ~PrecisionContext() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, previous_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
#else
    at::autocast::set_enabled(previous_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
#endif
  }

 private:
  bool active_ = false;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kHalf;
};

/// Dynamic loss scaling for fp16 training: the loss is multiplied by `scale()` before backward, gradients
/// are divided by it before anything reads them, and a step whose gradients overflowed is skipped and halves
/// the scale; `growth_interval` clean steps double it. Composer counterpart: `torch.cuda.amp.GradScaler` as
/// the trainer uses it (unscale before `AFTER_TRAIN_BATCH`, update after the step).
class LossScaler {
 public:
  /// A scaler starting at `initial_scale`; disabled scalers leave losses and gradients alone.
  explicit LossScaler(bool enabled = false, double initial_scale = 65536.0, double growth_factor = 2.0,
                      double backoff_factor = 0.5, int growth_interval = 2000)
      : enabled_(enabled),
        scale_(initial_scale),
        growth_factor_(growth_factor),
        backoff_factor_(backoff_factor),
        growth_interval_(growth_interval) {}

  /// Whether scaling is on.
  bool enabled() const noexcept { return enabled_; }
  /// The current scale.
  double scale() const noexcept { return scale_; }
  /// Sets the scale (used when restoring a checkpoint).
  void set_scale(double scale) noexcept { scale_ = scale; }
  /// The loss to call backward on.
  at::Tensor scale_loss(const at::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

  /// Divides every gradient by the scale; returns false if any gradient is not finite.
  bool unscale(const std::vector<at::Tensor>& parameters) const {
    if (!enabled_) return true;
    bool finite = true;
    at::NoGradGuard no_grad;
    for (const auto& p : parameters) {
      if (!p.grad().defined()) continue;
      p.mutable_grad().mul_(1.0 / scale_);
      if (finite && !p.grad().isfinite().all().item<bool>()) finite = false;
    }
    return finite;
  }

  /// Records whether the step's gradients were finite and adjusts the scale.
  void update(bool finite) noexcept {
    if (!enabled_) return;
    if (!finite) {
      scale_ *= backoff_factor_;
      clean_steps_ = 0;
    } else if (++clean_steps_ >= growth_interval_) {
      scale_ *= growth_factor_;
      clean_steps_ = 0;
    }
  }

 private:
  bool enabled_;
  double scale_;
  double growth_factor_;
  double backoff_factor_;
  int growth_interval_;
  int clean_steps_ = 0;
};

}  // namespace composer
