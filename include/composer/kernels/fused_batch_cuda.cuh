#pragma once
/// \file
/// The fused batch transform on a CUDA device: MixUp, CutMix, CutOut, per-channel normalisation and the dtype
/// conversion of an image batch in one kernel launch (one pass over memory), plus the mixed and smoothed dense
/// targets in a second, tiny launch. The CUDA counterpart of `fused_batch_cpu.hpp`, with the stage parameters of
/// `batch_stages.hpp`. CUDA code: include it only from a `.cu` file compiled by nvcc against a LibTorch 2.x
/// built with CUDA.
///
/// Semantics and numerics: those of the stages, stated once in `batch_stages.hpp`, for uint8, float32, float16 and
/// bfloat16 input (float16 and bfloat16 are widened to float32 exactly before any arithmetic).
///
/// Layers: this header holds the public transform (argument checks from `host_checks.hpp`, buffers, streams and
/// the value checks); `cuda/fused_dispatch.cuh` packs the stage parameters into the kernels' arguments, picks the
/// instantiation for the dtypes and stages and launches; `cuda/fused_image_agent.cuh` holds the per-element work
/// of one kernel thread and the kernels.
///
/// Layout: contiguous NCHW input gives contiguous NCHW output; channels-last input is processed natively and gives
/// channels-last output; any other strided input (transposed, sliced, expanded views) is read in place through its
/// strides, without a copy, and gives contiguous NCHW output. The kernel loads and stores 8 elements per thread
/// with vector instructions when C·H·W is a multiple of 8 and both tensors are suitably aligned (the usual case),
/// element by element otherwise.
///
/// Value checks: the indices must lie in [0, N) and the labels below K. Checking that reads device memory, so by
/// default each call runs one tiny check kernel and copies its 48-byte verdict back, which synchronises the
/// current stream once. `set_value_checks(false)` skips it for the hot path (and for CUDA graph capture): values
/// out of range are then clamped into [0, N) by the kernel and a label ≥ K gives an all-zero one-hot row, so
/// nothing is ever read out of bounds, but the result is meaningless. All other checks are host-side and free.
///
/// Testing without a GPU: the transform's argument packing (detail::plan_image_args, detail::plan_target_args,
/// detail::input_layout) takes tensors of any device, and the work of each kernel thread (detail::image_thread,
/// detail::target_thread, detail::process_chunk) is host-callable; detail::dispatch_image_on_host and
/// detail::run_targets_on_host run every thread of the grid the transform launches over CPU memory, so a host
/// program runs the same code as the device on the same decisions (tests/cuda/test_fused_cuda_host.cu).
///
/// Buffers and streams: the transform keeps its image and target outputs and reuses them while shape, dtype,
/// layout and device are unchanged, so a steady-state call with int64 indices and labels allocates nothing; the
/// returned tensors alias that storage and are overwritten by the next call (clone them to keep them).
/// `transform_input_into` writes into a caller-provided buffer instead. Work is enqueued on the input's device
/// on its current stream (`at::cuda::getCurrentCUDAStream()`). A transform object is not safe to call from several
/// host threads at once.

#if !defined(__CUDACC__)
#error "composer/kernels/fused_batch_cuda.cuh holds CUDA kernels: include it only from a .cu file compiled by nvcc (the CPU kernel is composer/kernels/fused_batch_cpu.hpp)"
#else

#include <composer/core/argument_checks.hpp>
#include <composer/kernels/batch_stages.hpp>
#include <composer/kernels/cuda/fused_dispatch.cuh>
#include <composer/kernels/cuda/fused_image_agent.cuh>
#include <composer/kernels/host_checks.hpp>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <utility>

namespace composer::kernels::cuda {

/// The fused result on the device: the transformed images and the dense float32 targets (both alias the
/// transform's buffers). Counterpart of composer::kernels::FusedBatchOutput.
struct FusedBatchOutput {
  at::Tensor input;   ///< the transformed images [N, C, H, W] in the requested dtype
  at::Tensor target;  ///< the dense targets [N, K], float32
};

/// Image-kernel launches this program has made so far, over every `FusedBatchTransform` (a counter kept by the
/// launch wrapper): what a test reads to count the launches of a training step.
[[nodiscard]] inline int64_t image_launches() { return detail::image_launch_counter().load(std::memory_order_relaxed); }

/// A fused batch transform on a CUDA device over a compile-time list of stages, e.g.
///
///     namespace st = composer::kernels::stage;
///     composer::kernels::cuda::FusedBatchTransform<st::MixUp, st::CutOut, st::Normalize, st::LabelSmoothing> t;
///     t.get<st::MixUp>() = st::MixUp::sample(n, 0.2);
///     t.get<st::MixUp>().indices = t.get<st::MixUp>().indices.to(device);   // indices live with the images
///     t.get<st::CutOut>() = st::CutOut::sample(h, w);
///     t.get<st::Normalize>() = {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
///     auto [x, y] = t(images_u8, labels, 1000, at::kBFloat16);
///
/// The same interface as the CPU composer::kernels::FusedBatchTransform; the Composer counterparts are the
/// after-dataloader batch work of its MixUp, CutMix, CutOut and LabelSmoothing algorithms and the Normalize step of
/// its data pipelines, applied in the order `batch_stages.hpp` states. The stages must be listed in the
/// fixed order MixUp, CutMix, CutOut, Normalize, LabelSmoothing (any subset, each at most once). The image kernel
/// is instantiated per input dtype (uint8, float32, float16, bfloat16) × output dtype (float32, float16,
/// bfloat16) for this stage set; a MixUp stage with m = 0 and an empty CutMix box are skipped at run time. MixUp
/// and CutMix indices set through `get<S>()` must be on the images' device.
template <class... Stages>
class FusedBatchTransform : public StageParameters<Stages...> {
  using Base = StageParameters<Stages...>;
  using Base::stages_;

  static constexpr unsigned kMask = detail::stage_mask_v<Stages...>;

 public:
  using Base::Base;
  /// Whether stage S is part of this transform.
  template <class S>
  static constexpr bool has = Base::template has<S>;

  /// Whether each call checks the index and label values on the device (one stream synchronisation per call;
  /// on by default). See "Value checks" at the top of this file.
  void set_value_checks(bool enabled) { value_checks_ = enabled; }
  /// \copydoc set_value_checks
  [[nodiscard]] bool value_checks() const { return value_checks_; }

  /// The image size [H, W] for which CutMix's target weight 1 − |box|/(H·W) is computed. Every image call
  /// (transform_input, transform_input_into, operator()) sets it; set it explicitly to call transform_target
  /// alone first.
  void set_image_size(int64_t height, int64_t width) {
    host::check_image_size(height, width, detail::kFn);
    image_height_ = height;
    image_width_ = width;
  }

  /// Transforms the image batch into the internal buffer, reused across calls with the same shape, dtype, layout
  /// and device; the result is overwritten by the next call. One kernel launch on the current stream.
  /// Composer counterpart: the input side of MixUp/CutMix/CutOut at AFTER_DATALOADER, then Normalize.
  /// \param input [N, C, H, W] uint8, float32, float16 or bfloat16 CUDA tensor, any strides.
  /// \param out_dtype float32 (default), float16 or bfloat16.
  /// \returns [N, C, H, W] in out_dtype: channels-last for channels-last input, contiguous NCHW otherwise.
  /// \throws std::invalid_argument for a bad input, stage parameters or dtype.
  at::Tensor transform_input(const at::Tensor& input, at::ScalarType out_dtype = at::kFloat) {
    const detail::InputLayout layout = check_input(input);
    check_out_dtype(out_dtype);
    const c10::cuda::CUDAGuard guard(input.device());
    ensure_image_buffer(input, out_dtype, layout);
    pending_ = 0;
    const Resolved r = resolve_indices(input.size(0), input.device());
    const detail::ImageArgs args = plan_image(input, image_buffer_, layout, r);
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream(input.device().index()).stream();
    run_value_checks(input.device(), stream);
    if (input.numel() > 0) detail::dispatch_image<kMask>(args, input.scalar_type(), out_dtype, stream);
    return image_buffer_;
  }

  /// Transforms the image batch into `out`, which must be a CUDA tensor on the input's device with the input's
  /// shape, a float32, float16 or bfloat16 dtype, contiguous in the output layout (channels-last for
  /// channels-last input, NCHW otherwise) and not overlapping the input.
  /// \throws std::invalid_argument for a bad input, output buffer or stage parameters.
  void transform_input_into(const at::Tensor& input, at::Tensor& out) {
    const detail::InputLayout layout = check_input(input);
    host::check_out_buffer(input, out, layout == detail::InputLayout::channels_last, detail::kFn);
    const c10::cuda::CUDAGuard guard(input.device());
    pending_ = 0;
    const Resolved r = resolve_indices(input.size(0), input.device());
    const detail::ImageArgs args = plan_image(input, out, layout, r);
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream(input.device().index()).stream();
    run_value_checks(input.device(), stream);
    if (input.numel() > 0) detail::dispatch_image<kMask>(args, input.scalar_type(), out.scalar_type(), stream);
  }

  /// Dense targets [N, K] float32 on the labels' device into the internal buffer (reused across calls; overwritten
  /// by the next call), as `batch_stages.hpp` states them. One small kernel launch.
  /// Composer counterpart: the mixed targets of MixUp/CutMix and `smooth_labels` of LabelSmoothing.
  /// \param labels 1-D integer CUDA tensor of class indices (negative: ignored row), N entries; int64 avoids a
  ///        conversion.
  /// \throws std::invalid_argument for bad labels, num_classes ≤ 0, a label ≥ num_classes (with value checks)
  ///         or bad stage parameters.
  at::Tensor transform_target(const at::Tensor& labels, int64_t num_classes) {
    check_labels(labels, num_classes);
    const c10::cuda::CUDAGuard guard(labels.device());
    pending_ = 0;
    const Resolved r = resolve_indices(labels.size(0), labels.device());
    const detail::TargetArgs args = plan_target(labels, num_classes, r);
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream(labels.device().index()).stream();
    run_value_checks(labels.device(), stream);
    detail::launch_targets<detail::target_mask(kMask)>(args, stream);
    return target_buffer_;
  }

  /// Images and targets in one call (two launches, at most one value-check synchronisation):
  /// {transform_input(input, out_dtype), transform_target(labels, num_classes)}.
  FusedBatchOutput operator()(const at::Tensor& input, const at::Tensor& labels, int64_t num_classes,
                              at::ScalarType out_dtype = at::kFloat) {
    const detail::InputLayout layout = check_input(input);
    check_out_dtype(out_dtype);
    check_labels(labels, num_classes);
    host::check_same_batch_size(input, labels, detail::kFn);
    if (labels.device() != input.device()) {
      checks::fail(std::string(detail::kFn) + " labels must be on the input's device (" + input.device().str() +
                   "), got " + labels.device().str());
    }
    const c10::cuda::CUDAGuard guard(input.device());
    ensure_image_buffer(input, out_dtype, layout);
    pending_ = 0;
    const Resolved r = resolve_indices(input.size(0), input.device());
    const detail::ImageArgs image_args = plan_image(input, image_buffer_, layout, r);
    const detail::TargetArgs target_args = plan_target(labels, num_classes, r);
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream(input.device().index()).stream();
    run_value_checks(input.device(), stream);
    if (input.numel() > 0) detail::dispatch_image<kMask>(image_args, input.scalar_type(), out_dtype, stream);
    detail::launch_targets<detail::target_mask(kMask)>(target_args, stream);
    return FusedBatchOutput{image_buffer_, target_buffer_};
  }

 private:
  struct Resolved {
    const int64_t* mix_perm = nullptr;
    const int64_t* cut_perm = nullptr;
  };

  // Keeps the image buffer while shape, dtype, layout and device are unchanged; allocates a new one otherwise.
  void ensure_image_buffer(const at::Tensor& input, at::ScalarType out_dtype, detail::InputLayout layout) {
    const at::MemoryFormat fmt = detail::output_format(layout);
    const bool reusable = image_buffer_.defined() && image_buffer_.sizes() == input.sizes() &&
                          image_buffer_.scalar_type() == out_dtype && image_buffer_.device() == input.device() &&
                          image_buffer_.is_contiguous(fmt);
    if (!reusable) {
      image_buffer_ = at::empty(input.sizes(),
                                at::TensorOptions().dtype(out_dtype).device(input.device()).memory_format(fmt));
    }
  }

  static detail::InputLayout check_input(const at::Tensor& input) {
    checks::check_image_batch(input, detail::kFn);
    host::check_device_type(input, c10::DeviceType::CUDA, detail::kFn, "input");
    if (!detail::is_image_dtype(input.scalar_type())) {
      checks::fail(std::string(detail::kFn) + " input must be uint8, float32, float16 or bfloat16, got " +
                   std::string(c10::toString(input.scalar_type())));
    }
    const int64_t sample = input.size(1) * input.size(2) * input.size(3);
    if (sample > detail::kMaxSampleSize) {
      checks::fail(std::string(detail::kFn) + " images must have fewer than 2^31 - 64 elements (C·H·W), got shape " +
                   checks::shape_of(input));
    }
    return detail::input_layout(input);
  }

  static void check_out_dtype(at::ScalarType t) { host::check_out_dtype(t, detail::kFn); }

  static void check_labels(const at::Tensor& labels, int64_t num_classes) {
    host::check_labels(labels, num_classes, detail::kFn);
    host::check_device_type(labels, c10::DeviceType::CUDA, detail::kFn, "labels");
  }

  // Checks one stage's indices (set, 1-D integer with n entries, on `device`) and returns them as contiguous
  // int64, converting (and keeping the copy in `keep`) only when needed.
  static const int64_t* device_indices(const at::Tensor& indices, int64_t n, const at::Device& device,
                                       const char* what, at::Tensor& keep) {
    host::check_stage_indices(indices, n, device, detail::kFn, what);
    if (indices.scalar_type() == at::kLong && indices.is_contiguous()) {
      keep = at::Tensor();
      return indices.data_ptr<int64_t>();
    }
    keep = indices.to(at::kLong).contiguous();
    return keep.data_ptr<int64_t>();
  }

  // Validates the MixUp and CutMix parameters that do not depend on the image shape and queues the value checks
  // of their indices.
  Resolved resolve_indices(int64_t n, const at::Device& device) {
    Resolved r;
    if constexpr (has<stage::MixUp>) {
      const stage::MixUp& mix = std::get<stage::MixUp>(stages_);
      (void)host::mix_weights(mix.mixing, detail::kFn);  // m ∈ [0, 1]
      r.mix_perm = device_indices(mix.indices, n, device, "MixUp indices", mix_perm_);
      queue_check(r.mix_perm, n, 0, n, "MixUp indices");
    }
    if constexpr (has<stage::CutMix>) {
      const stage::CutMix& cut = std::get<stage::CutMix>(stages_);
      r.cut_perm = device_indices(cut.indices, n, device, "CutMix indices", cut_perm_);
      queue_check(r.cut_perm, n, 0, n, "CutMix indices");
    }
    return r;
  }

  detail::ImageArgs plan_image(const at::Tensor& x, const at::Tensor& out, detail::InputLayout layout,
                               const Resolved& r) {
    const detail::ImageArgs a = detail::plan_image_args(*this, x, out, layout, r.mix_perm, r.cut_perm);
    if (x.size(2) > 0 && x.size(3) > 0) {
      image_height_ = x.size(2);
      image_width_ = x.size(3);
    }
    return a;
  }

  detail::TargetArgs plan_target(const at::Tensor& labels, int64_t num_classes, const Resolved& r) {
    const int64_t n = labels.size(0);
    const int64_t* labels_ptr = nullptr;
    if (labels.scalar_type() == at::kLong && labels.is_contiguous()) {
      labels_long_ = at::Tensor();
      labels_ptr = labels.data_ptr<int64_t>();
    } else {
      labels_long_ = labels.to(at::kLong).contiguous();
      labels_ptr = labels_long_.data_ptr<int64_t>();
    }
    queue_check(labels_ptr, n, std::numeric_limits<int64_t>::min(), num_classes, "labels");
    if (!(target_buffer_.defined() && target_buffer_.size(0) == n && target_buffer_.size(1) == num_classes &&
          target_buffer_.device() == labels.device())) {
      target_buffer_ = at::empty({n, num_classes}, at::TensorOptions().dtype(at::kFloat).device(labels.device()));
    }
    return detail::plan_target_args(*this, labels_ptr, n, num_classes, r.mix_perm, r.cut_perm, image_height_,
                                    image_width_, target_buffer_.data_ptr<float>());
  }

  void queue_check(const int64_t* values, int64_t count, int64_t lo, int64_t hi, const char* what) {
    if (!value_checks_ || count == 0) return;
    for (int i = 0; i < pending_; ++i) {
      if (checks_.check[i].values == values && checks_.check[i].count == count) return;
    }
    checks_.check[pending_] = detail::RangeCheck{values, count, lo, hi};
    check_names_[static_cast<size_t>(pending_)] = what;
    ++pending_;
  }

  void run_value_checks(const at::Device& device, cudaStream_t stream) {
    if (!value_checks_ || pending_ == 0) return;
    if (!(check_buffer_.defined() && check_buffer_.device() == device)) {
      check_buffer_ = at::empty({2 * detail::kMaxChecks}, at::TensorOptions().dtype(at::kLong).device(device));
    }
    auto* result = reinterpret_cast<unsigned long long*>(check_buffer_.data_ptr<int64_t>());
    const size_t bytes = sizeof(int64_t) * 2 * detail::kMaxChecks;
    C10_CUDA_CHECK(cudaMemsetAsync(result, 0, bytes, stream));
    int64_t longest = 0;
    for (int i = 0; i < pending_; ++i) longest = std::max(longest, checks_.check[i].count);
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>((longest + 255) / 256, 64)),
                    static_cast<unsigned>(pending_));
    detail::range_check_kernel<0><<<grid, 256, 0, stream>>>(checks_, result);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    C10_CUDA_CHECK(cudaMemcpyAsync(verdict_.data(), result, bytes, cudaMemcpyDeviceToHost, stream));
    C10_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (int i = 0; i < pending_; ++i) {
      if (verdict_[static_cast<size_t>(2 * i)] == 0) continue;
      const std::string what = check_names_[static_cast<size_t>(i)];
      const int64_t bad = verdict_[static_cast<size_t>(2 * i + 1)];
      if (what == "labels") host::fail_label_value(detail::kFn, checks_.check[i].hi, bad);
      host::fail_index_value(detail::kFn, what, checks_.check[i].hi, bad);
    }
  }

  bool value_checks_ = true;
  int64_t image_height_ = 0;
  int64_t image_width_ = 0;
  at::Tensor image_buffer_;
  at::Tensor target_buffer_;
  at::Tensor mix_perm_;
  at::Tensor cut_perm_;
  at::Tensor labels_long_;
  at::Tensor check_buffer_;
  detail::RangeChecks checks_{};
  int pending_ = 0;
  std::array<const char*, detail::kMaxChecks> check_names_{};
  std::array<int64_t, 2 * detail::kMaxChecks> verdict_{};
};

}  // namespace composer::kernels::cuda

#endif  // __CUDACC__
