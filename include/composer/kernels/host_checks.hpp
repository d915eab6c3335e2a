#pragma once
/// \file
/// The host side both fused batch kernels share (`fused_batch_cpu.hpp`, `fused_batch_cuda.cuh`): the checks of
/// their arguments, with one wording for both, the test that an output buffer does not overlap the input, and the
/// packing of the stage parameters into the plain weights the kernels read. Host code over ATen only, so it
/// compiles under nvcc too. Each function names the calling kernel (`fn`) at the start of its messages and
/// throws std::invalid_argument through `checks::fail`. The formulas the weights feed are those of
/// `batch_stages.hpp`.

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/argument_checks.hpp>
#include <composer/kernels/batch_stages.hpp>
#include <composer/kernels/stage_types.hpp>

namespace composer::kernels::host {

// ---- tensors ------------------------------------------------------------------------------------------------------

/// A tensor's strides as text, e.g. "[144, 1, 24, 3]".
inline std::string strides_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.stride(d));
  return s + "]";
}

/// The byte range [lo, hi) that a non-empty tensor can touch through its sizes and (possibly negative or zero)
/// strides.
inline std::pair<uintptr_t, uintptr_t> byte_extent(const at::Tensor& t) {
  int64_t lo = 0;
  int64_t hi = 0;
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t span = (t.size(d) - 1) * t.stride(d);
    if (span < 0) {
      lo += span;
    } else {
      hi += span;
    }
  }
  const auto base = reinterpret_cast<uintptr_t>(t.data_ptr());
  const auto elem = static_cast<int64_t>(t.element_size());
  return {base + static_cast<uintptr_t>(lo * elem), base + static_cast<uintptr_t>((hi + 1) * elem)};
}

/// Whether the byte ranges two non-empty tensors can touch intersect (any strides, views included).
inline bool ranges_overlap(const at::Tensor& a, const at::Tensor& b) {
  const auto [a0, a1] = byte_extent(a);
  const auto [b0, b1] = byte_extent(b);
  return a0 < b1 && b0 < a1;
}

/// Whether `t` is one of the output dtypes of the fused kernels: float32, float16 or bfloat16.
inline bool is_out_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kHalf || t == at::kBFloat16; }

/// Throws unless `t` is an output dtype (is_out_dtype).
inline void check_out_dtype(at::ScalarType t, const char* fn) {
  if (!is_out_dtype(t)) {
    checks::fail(std::string(fn) + " output dtype must be float32, float16 or bfloat16, got " +
                 std::string(c10::toString(t)));
  }
}

/// Throws unless tensor `arg` lives on a device of the given type ("<fn> <arg> must be a CUDA tensor, got one
/// on cpu").
inline void check_device_type(const at::Tensor& t, c10::DeviceType type, const char* fn, const char* arg) {
  if (t.device().type() != type) {
    checks::fail(std::string(fn) + " " + arg + " must be a " + (type == c10::DeviceType::CUDA ? "CUDA" : "CPU") +
                 " tensor, got one on " + t.device().str());
  }
}

/// Throws unless `out` can take the transformed `input`: defined, on the input's device, an output dtype, the
/// input's shape, contiguous in the output layout (channels-last when `channels_last`, NCHW otherwise) and not
/// overlapping the input.
inline void check_out_buffer(const at::Tensor& input, const at::Tensor& out, bool channels_last, const char* fn) {
  if (!out.defined()) checks::fail(std::string(fn) + " out must be a defined tensor");
  if (out.device() != input.device()) {
    checks::fail(std::string(fn) + " out must be on the input's device (" + input.device().str() + "), got " +
                 out.device().str());
  }
  check_out_dtype(out.scalar_type(), fn);
  if (out.sizes() != input.sizes()) {
    checks::fail(std::string(fn) + " out must have the input's shape " + checks::shape_of(input) + ", got " +
                 checks::shape_of(out));
  }
  if (!out.is_contiguous(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)) {
    checks::fail(std::string(fn) + " out must be contiguous in the output layout (" +
                 (channels_last ? "channels-last" : "NCHW") + "), got strides " + strides_of(out));
  }
  if (out.numel() > 0 && input.numel() > 0 && ranges_overlap(out, input)) {
    checks::fail(std::string(fn) + " out must not overlap the input");
  }
}

/// Throws unless `labels` is a defined 1-D integer tensor of class indices and num_classes is positive.
inline void check_labels(const at::Tensor& labels, int64_t num_classes, const char* fn) {
  if (!labels.defined()) checks::fail(std::string(fn) + " labels must be a defined tensor");
  if (labels.dim() != 1 || !checks::is_index_dtype(labels.scalar_type())) {
    checks::fail(std::string(fn) + " labels must be a 1-D integer tensor of class indices, got shape " +
                 checks::shape_of(labels) + " and dtype " + std::string(c10::toString(labels.scalar_type())));
  }
  if (num_classes <= 0) {
    checks::fail(std::string(fn) + " num_classes must be positive, got " + std::to_string(num_classes));
  }
}

/// Throws unless the image batch and the labels have the same batch size.
inline void check_same_batch_size(const at::Tensor& input, const at::Tensor& labels, const char* fn) {
  if (input.size(0) != labels.size(0)) {
    checks::fail(std::string(fn) + " input and labels must have the same batch size, got " +
                 std::to_string(input.size(0)) + " and " + std::to_string(labels.size(0)));
  }
}

/// Throws unless a stage's `indices` (`what`, e.g. "MixUp indices") are set, a 1-D integer tensor with n entries
/// and on `device`.
inline void check_stage_indices(const at::Tensor& indices, int64_t n, const at::Device& device, const char* fn,
                                const char* what) {
  if (!indices.defined()) {
    checks::fail(std::string(fn) + " " + what + " must be set (" + std::to_string(n) + " entries)");
  }
  checks::check_indices(indices, n, fn, what);
  if (indices.device() != device) {
    checks::fail(std::string(fn) + " " + what + " must be on the device of the batch (" + device.str() + "), got " +
                 indices.device().str());
  }
}

/// Throws for an index value `bad` of `what` outside [0, n).
[[noreturn]] inline void fail_index_value(const char* fn, const std::string& what, int64_t n, int64_t bad) {
  checks::fail(std::string(fn) + " " + what + " must lie in [0, " + std::to_string(n) + "), got " +
               std::to_string(bad));
}

/// Throws for a label `bad` not below num_classes.
[[noreturn]] inline void fail_label_value(const char* fn, int64_t num_classes, int64_t bad) {
  checks::fail(std::string(fn) + " labels must be smaller than num_classes (" + std::to_string(num_classes) +
               "), got " + std::to_string(bad));
}

/// Throws unless the image size [H, W] CutMix's target weight is computed for is positive.
inline void check_image_size(int64_t height, int64_t width, const char* fn) {
  if (height <= 0 || width <= 0) {
    checks::fail(std::string(fn) + " image size must be positive, got " + std::to_string(height) + "x" +
                 std::to_string(width));
  }
}

// ---- stage parameters, packed -------------------------------------------------------------------------------------

/// MixUp's weights in float32: v ← keep·v + take·v[π] with keep = 1 − m, take = m; `active` when m ≠ 0 (with
/// m = 0 the partner is not read).
struct MixWeights {
  float keep = 1.0f;    ///< 1 − m
  float take = 0.0f;    ///< m
  bool active = false;  ///< m ≠ 0
};

/// MixUp's weights for mixing m. \throws std::invalid_argument for m outside [0, 1].
inline MixWeights mix_weights(double mixing, const char* fn) {
  if (!(mixing >= 0.0 && mixing <= 1.0)) {
    checks::fail(std::string(fn) + " mixing must be in [0, 1], got " + checks::num(mixing));
  }
  return MixWeights{static_cast<float>(1.0 - mixing), static_cast<float>(mixing), mixing != 0.0};
}

/// The smoothed one-hot value of class k in float32: (k == y ? on_scale : 0) + off, i.e. (1 − s)·e + s/K.
struct TargetSmoothing {
  float on_scale = 1.0f;  ///< 1 − s
  float off = 0.0f;       ///< s / K
};

/// LabelSmoothing's weights for smoothing s and K classes. \throws std::invalid_argument for s outside [0, 1].
inline TargetSmoothing target_smoothing(double smoothing, int64_t num_classes, const char* fn) {
  if (!(smoothing >= 0.0 && smoothing <= 1.0)) {
    checks::fail(std::string(fn) + " smoothing must be in [0, 1], got " + checks::num(smoothing));
  }
  return TargetSmoothing{static_cast<float>(1.0 - smoothing),
                         static_cast<float>(smoothing / static_cast<double>(num_classes))};
}

/// CutMix's target weight in float32: the fraction area = 1 − |box|/(H·W) of each image left its own, for the
/// image size H×W (which must be known, i.e. positive).
/// \throws std::invalid_argument for an unknown image size or a box outside it.
inline float cutmix_target_area(const stage::CutMix& cut, int64_t height, int64_t width, const char* fn) {
  if (height <= 0 || width <= 0) {
    checks::fail(std::string(fn) + " CutMix targets need the image size: call set_image_size(H, W), "
                 "transform_input or operator() first");
  }
  stage::check_bbox(cut.box, height, width, fn);
  return static_cast<float>(cut.area(height, width));
}

/// Throws unless every CutOut hole lies inside the H×W image.
inline void check_holes(const std::vector<stage::CutoutHole>& holes, int64_t height, int64_t width,
                        const char* fn) {
  for (const stage::CutoutHole& hole : holes) stage::check_hole(hole, height, width, fn);
}

/// Throws unless Normalize has one finite mean and one finite, non-zero std per channel (`stage::Normalize`'s
/// `mean` and `stddev`).
inline void check_normalize(const std::vector<double>& mean, const std::vector<double>& stddev, int64_t channels,
                            const char* fn) {
  if (static_cast<int64_t>(mean.size()) != channels || static_cast<int64_t>(stddev.size()) != channels) {
    checks::fail(std::string(fn) + " mean and std must have one entry per channel (" + std::to_string(channels) +
                 "), got " + std::to_string(mean.size()) + " and " + std::to_string(stddev.size()));
  }
  for (size_t ch = 0; ch < static_cast<size_t>(channels); ++ch) {
    if (!(std::isfinite(stddev[ch]) && stddev[ch] != 0.0) || !std::isfinite(mean[ch])) {
      checks::fail(std::string(fn) + " mean must be finite and std finite and non-zero, got mean " +
                   checks::num(mean[ch]) + " and std " + checks::num(stddev[ch]) + " for channel " +
                   std::to_string(ch));
    }
  }
}

/// Normalize's constants of one channel in float32: out = (v − mean)·inv_std.
struct ChannelAffine {
  float mean = 0.0f;     ///< mean[c]
  float inv_std = 1.0f;  ///< 1 / stddev[c], computed in double
};

/// The constants of channel `ch` (check_normalize first).
inline ChannelAffine channel_affine(const std::vector<double>& mean, const std::vector<double>& stddev, size_t ch) {
  return ChannelAffine{static_cast<float>(mean[ch]), static_cast<float>(1.0 / stddev[ch])};
}

}  // namespace composer::kernels::host
