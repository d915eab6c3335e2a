#pragma once
/// \file
/// The fused batch transform on a CUDA device: MixUp, CutMix, CutOut, per-channel normalisation and the dtype
/// conversion of an image batch in one kernel launch (one pass over memory), plus the mixed and smoothed dense
/// targets in a second, tiny launch. The CUDA counterpart of `fused_batch_cpu.hpp`, with the stage parameters of
/// `batch_stages.hpp`. CUDA code: include it only from a `.cu` file compiled by nvcc against a LibTorch 2.x
/// built with CUDA.
///
/// Semantics. For an input batch x of shape [N, C, H, W] the image output is, per element,
///
///     v   = s·x[n,c,h,w]         s = 1/255 for uint8 input, 1 for float32, float16 and bfloat16 input
///     MixUp      v ← (1 − m)·v + m·v[π_m(n)]                     (m: weight of the partner, π_m: its indices)
///     CutMix     v ← v[π_c(n)]  if x1 ≤ h < x2 and y1 ≤ w < y2    (the box, π_c: CutMix's own indices)
///     CutOut     v ← 0          if (h, w) lies in any hole        (the same holes for every image and channel)
///     Normalize  out = (v − mean[c]) / stddev[c]
///
/// where each arrow acts on the whole batch produced by the stages before it, so that the result is exactly
/// the eager sequence
///
///     x = x.to(float) (/ 255 for uint8)
///     x = functional::mixup_batch(x, y, m, π_m).input_mixed
///     x = functional::cutmix_batch(x, y, box, π_c).input_mixed
///     x = functional::cutout_batch(x, holes)
///     x = (x − mean) / std                  (mean, std broadcast over dim 1)
///
/// In particular, with both MixUp and CutMix a pasted pixel is the partner's *mixed* pixel,
/// (1 − m)·x[π_c(n)] + m·x[π_m(π_c(n))]. Each stage is optional (leave it out of the stage pack). CutOut zeroes
/// before normalisation (a hole holds −mean[c]/std[c] in the output) and writes by a fill, so a hole is +0 before
/// normalisation whatever the input held there. With m = 0 the MixUp partner is not read, and pixels outside
/// the box never read the CutMix partner, so non-finite values there do not leak in the way eager 0·inf does.
/// float16 and bfloat16 input is widened to float32 exactly before any arithmetic.
///
/// The targets are float32 [N, K]:
///
///     t(n)    = (1 − m)·smooth(onehot(y[n])) + m·smooth(onehot(y[π_m(n)]))      (m = 0 without MixUp)
///     y_dense = area·t(n) + (1 − area)·t(π_c(n))                                 (CutMix only)
///
/// with smooth(e) = (1 − s)·e + s/K (s = 0 without LabelSmoothing) and area = 1 − |box|/(H·W), Composer's
/// adjusted λ, for the image size of the last image call (or set_image_size); this is smooth_labels applied to
/// the eager mixed targets. Negative labels give an all-zero
/// one-hot row before smoothing, as in functional::ensure_targets_one_hot.
///
/// Numerics: float32 throughout, a multiply by 1/255 for uint8, the mix as one fused multiply-add and the
/// normalisation as (v − mean)·(1/std): equal to the eager sequence to a few ulp, not bit for bit. float16 and
/// bfloat16 output is rounded once (to nearest even) from the float32 result.
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

#include <composer/functional/common.hpp>
#include <composer/functional/cutmix.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/kernels/batch_stages.hpp>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace composer::kernels::cuda {

namespace detail {

/// Elements per thread per step (one or two 16-byte vector loads for every input dtype).
inline constexpr uint32_t kVec = 8;
/// Threads per block of the image kernel.
inline constexpr int kThreads = 256;
/// Most non-empty CutOut holes one call takes (they are kernel arguments).
inline constexpr int kMaxHoles = 32;
/// Most channels the Normalize stage takes (mean and 1/std are kernel arguments).
inline constexpr int kMaxChannels = 64;
/// Largest image (C·H·W elements) the kernel indexes with 32-bit arithmetic.
inline constexpr int64_t kMaxSampleSize = (int64_t{1} << 31) - 64;

/// The compile-time set of pixel stages of a transform, one bit each.
enum StageBits : unsigned { kMixUpBit = 1u, kCutMixBit = 2u, kCutOutBit = 4u, kNormalizeBit = 8u };

template <class S>
inline constexpr unsigned stage_bit_v = std::is_same_v<S, stage::MixUp>       ? kMixUpBit
                                        : std::is_same_v<S, stage::CutMix>    ? kCutMixBit
                                        : std::is_same_v<S, stage::CutOut>    ? kCutOutBit
                                        : std::is_same_v<S, stage::Normalize> ? kNormalizeBit
                                                                              : 0u;

[[noreturn]] inline void fail(const std::string& message) { functional::detail::fail(message); }

inline constexpr const char* kFn = "fused_batch_transform_cuda";

/// Unsigned division by a divisor fixed for the launch, as a multiply-high, an add and a shift (exact for
/// dividends below 2^31): with s = ⌈log₂ d⌉ and magic = ⌊2^32·(2^s − d)/d⌋ + 1, n / d = (mulhi(n, magic) + n) >> s.
struct DivMod {
  uint32_t divisor = 1;
  uint32_t magic = 1;
  uint32_t shift = 0;

  DivMod() = default;
  explicit DivMod(uint32_t d) : divisor(d) {
    while ((uint64_t{1} << shift) < d) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  __host__ __device__ uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t t = __umulhi(n, magic);
#else
    const uint32_t t = static_cast<uint32_t>((static_cast<uint64_t>(n) * magic) >> 32);
#endif
    return (t + n) >> shift;
  }
};

/// How the image kernel reads its input.
enum LoadMode : int {
  kLoadVector = 0,   ///< in the output's layout, 8-element aligned vectors
  kLoadScalar = 1,   ///< in the output's layout, element by element
  kLoadStrided = 2,  ///< through the input's own four strides (output NCHW)
};

/// Everything the image kernel needs, passed by value (a __grid_constant__ parameter, read in place).
struct ImageArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int64_t batch = 0;
  int64_t in_stride[4] = {0, 0, 0, 0};  ///< elements; n, c, h, w (only stride n outside the strided mode)
  uint32_t sample_size = 0;             ///< C·H·W
  uint32_t chunks = 0;                  ///< ⌈C·H·W / kVec⌉ chunks per image
  uint32_t extent0 = 1;                 ///< fastest coordinate's extent: W (NCHW) or C (NHWC)
  uint32_t extent1 = 1;                 ///< next one: H (NCHW) or W (NHWC)
  DivMod div0;                          ///< by extent0
  DivMod div1;                          ///< by extent1
  int mode = kLoadScalar;
  bool channels_last = false;
  float scale = 1.0f;                   ///< 1/255 for uint8 input
  // MixUp
  const int64_t* mix_perm = nullptr;
  bool mix_active = false;              ///< m ≠ 0
  float keep = 1.0f;                    ///< 1 − m
  float take = 0.0f;                    ///< m
  // CutMix
  const int64_t* cut_perm = nullptr;
  bool cut_active = false;              ///< the box is not empty
  int32_t box_h0 = 0, box_h1 = 0, box_w0 = 0, box_w1 = 0;  ///< rows [h0, h1), columns [w0, w1)
  // CutOut
  int32_t num_holes = 0;
  int32_t holes[kMaxHoles][4] = {};     ///< per hole (y1, x1, y2, x2): rows [y1, y2), columns [x1, x2)
  // Normalize
  uint32_t channels = 0;
  float mean[kMaxChannels] = {};
  float inv_std[kMaxChannels] = {};
};
static_assert(sizeof(ImageArgs) <= 4000, "the image kernel's arguments must fit CUDA's 4 KiB parameter space");

/// The MixUp part of the image kernel's arguments (m ∈ [0, 1] checked by the caller).
inline void set_mixup(ImageArgs& a, double mixing, const int64_t* perm) {
  a.mix_perm = perm;
  a.mix_active = mixing != 0.0;
  a.keep = static_cast<float>(1.0 - mixing);
  a.take = static_cast<float>(mixing);
}

/// The CutMix part: the box, checked against the H×W image (Composer's x = rows, y = columns).
inline void set_cutmix(ImageArgs& a, const functional::BBox& box, int64_t h, int64_t w, const int64_t* perm) {
  functional::detail::check_bbox(box, h, w, kFn);
  a.cut_perm = perm;
  a.cut_active = box.x2 > box.x1 && box.y2 > box.y1;
  a.box_h0 = static_cast<int32_t>(box.x1);
  a.box_h1 = static_cast<int32_t>(box.x2);
  a.box_w0 = static_cast<int32_t>(box.y1);
  a.box_w1 = static_cast<int32_t>(box.y2);
}

/// The CutOut part: every hole checked against the H×W image, the non-empty ones copied (at most kMaxHoles).
inline void set_cutout(ImageArgs& a, const std::vector<functional::CutoutHole>& holes, int64_t h, int64_t w) {
  int32_t count = 0;
  for (const functional::CutoutHole& hole : holes) {
    const bool ok = 0 <= hole.y1 && hole.y1 <= hole.y2 && hole.y2 <= h && 0 <= hole.x1 && hole.x1 <= hole.x2 &&
                    hole.x2 <= w;
    if (!ok) {
      fail(std::string(kFn) + " hole must satisfy 0 <= y1 <= y2 <= " + std::to_string(h) + " and 0 <= x1 <= x2 <= " +
           std::to_string(w) + ", got (" + std::to_string(hole.y1) + ", " + std::to_string(hole.x1) + ", " +
           std::to_string(hole.y2) + ", " + std::to_string(hole.x2) + ")");
    }
    if (hole.y1 == hole.y2 || hole.x1 == hole.x2) continue;  // empty: cuts nothing
    if (count == kMaxHoles) {
      fail(std::string(kFn) + " takes at most " + std::to_string(kMaxHoles) +
           " non-empty CutOut holes per call, got more");
    }
    a.holes[count][0] = static_cast<int32_t>(hole.y1);
    a.holes[count][1] = static_cast<int32_t>(hole.x1);
    a.holes[count][2] = static_cast<int32_t>(hole.y2);
    a.holes[count][3] = static_cast<int32_t>(hole.x2);
    ++count;
  }
  a.num_holes = count;
}

/// The Normalize part: one finite mean and finite non-zero std per channel (at most kMaxChannels), kept as mean
/// and 1/std in float32.
inline void set_normalize(ImageArgs& a, const std::vector<double>& mean, const std::vector<double>& stddev,
                          int64_t channels) {
  if (static_cast<int64_t>(mean.size()) != channels || static_cast<int64_t>(stddev.size()) != channels) {
    fail(std::string(kFn) + " mean and std must have one entry per channel (" + std::to_string(channels) +
         "), got " + std::to_string(mean.size()) + " and " + std::to_string(stddev.size()));
  }
  if (channels > kMaxChannels) {
    fail(std::string(kFn) + " Normalize takes at most " + std::to_string(kMaxChannels) + " channels, got " +
         std::to_string(channels));
  }
  for (size_t ch = 0; ch < static_cast<size_t>(channels); ++ch) {
    if (!(std::isfinite(stddev[ch]) && stddev[ch] != 0.0) || !std::isfinite(mean[ch])) {
      fail(std::string(kFn) + " mean must be finite and std finite and non-zero, got mean " +
           functional::detail::num(mean[ch]) + " and std " + functional::detail::num(stddev[ch]) + " for channel " +
           std::to_string(ch));
    }
    a.mean[ch] = static_cast<float>(mean[ch]);
    a.inv_std[ch] = static_cast<float>(1.0 / stddev[ch]);
  }
  a.channels = static_cast<uint32_t>(channels);
}

/// How the input batch lies in memory.
enum class InputLayout { nchw, channels_last, strided };

/// The geometry part for a non-empty [N, C, H, W] batch: the output is channels-last for channels-last input
/// and NCHW otherwise; strided input is read through its strides (elements); vector loads when C·H·W is a
/// multiple of kVec and both base addresses are aligned to kVec elements.
inline void set_geometry(ImageArgs& a, const std::array<int64_t, 4>& sizes, const std::array<int64_t, 4>& strides,
                         InputLayout layout, const void* in, int64_t in_elem_size, bool in_uint8, void* out,
                         int64_t out_elem_size) {
  const int64_t c = sizes[1];
  const int64_t h = sizes[2];
  const int64_t w = sizes[3];
  const int64_t sample = c * h * w;
  a.in = in;
  a.out = out;
  a.batch = sizes[0];
  a.sample_size = static_cast<uint32_t>(sample);
  a.chunks = static_cast<uint32_t>((sample + kVec - 1) / kVec);
  a.channels_last = layout == InputLayout::channels_last;
  a.extent0 = static_cast<uint32_t>(a.channels_last ? c : w);
  a.extent1 = static_cast<uint32_t>(a.channels_last ? w : h);
  a.div0 = DivMod(a.extent0);
  a.div1 = DivMod(a.extent1);
  a.scale = in_uint8 ? 1.0f / 255.0f : 1.0f;
  if (layout == InputLayout::strided) {
    a.mode = kLoadStrided;
    for (size_t d = 0; d < 4; ++d) a.in_stride[d] = strides[d];
  } else {
    a.mode = kLoadScalar;
    a.in_stride[0] = sample;
    const auto in_addr = reinterpret_cast<uintptr_t>(in);
    const auto out_addr = reinterpret_cast<uintptr_t>(out);
    const bool aligned = in_addr % static_cast<uintptr_t>(kVec * in_elem_size) == 0 &&
                         out_addr % static_cast<uintptr_t>(kVec * out_elem_size) == 0;
    if (aligned && sample % kVec == 0) a.mode = kLoadVector;
  }
}

/// How an [N, C, H, W] batch (on any device) lies in memory: NCHW-contiguous, channels-last-contiguous, or any
/// other strides.
inline InputLayout input_layout(const at::Tensor& x) {
  if (x.is_contiguous()) return InputLayout::nchw;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) return InputLayout::channels_last;
  return InputLayout::strided;
}

/// The memory format of the output for an input layout: channels-last for channels-last input, NCHW otherwise.
inline at::MemoryFormat output_format(InputLayout layout) {
  return layout == InputLayout::channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

/// The image kernel's stage bits for a stage pack.
template <class... Stages>
inline constexpr unsigned stage_mask_v = (0u | ... | stage_bit_v<Stages>);

/// The target kernel's stage bits for a transform's stage bits: MixUp and CutMix (smoothing is a parameter).
constexpr unsigned target_mask(unsigned mask) { return mask & (kMixUpBit | kCutMixBit); }

/// The image kernel's arguments for the batch `x` written to `out`, packed from the stage parameters: each pixel
/// stage's parameters (checked against the H×W image), then the geometry and the load mode (vector, scalar or
/// strided) from the shapes, strides and addresses of `x` and `out`. `mix_perm` and `cut_perm` are the stages'
/// indices as int64, in the memory the kernel will read them from. The transform calls it with CUDA tensors; it
/// works on tensors of any device, so that host-side tests run the kernel's own packing. MixUp's m must already
/// be checked to lie in [0, 1].
/// \throws std::invalid_argument for a box, hole or normalisation constants that do not fit the batch.
template <class... Stages>
ImageArgs plan_image_args(const StageParameters<Stages...>& stages, const at::Tensor& x, const at::Tensor& out,
                          InputLayout layout, const int64_t* mix_perm, const int64_t* cut_perm) {
  using Params = StageParameters<Stages...>;
  const int64_t h = x.size(2);
  const int64_t w = x.size(3);
  ImageArgs a;
  if constexpr (Params::template has<stage::MixUp>) {
    set_mixup(a, stages.template get<stage::MixUp>().mixing, mix_perm);
  }
  if constexpr (Params::template has<stage::CutMix>) {
    set_cutmix(a, stages.template get<stage::CutMix>().box, h, w, cut_perm);
  }
  if constexpr (Params::template has<stage::CutOut>) set_cutout(a, stages.template get<stage::CutOut>().holes, h, w);
  if constexpr (Params::template has<stage::Normalize>) {
    const stage::Normalize& nm = stages.template get<stage::Normalize>();
    set_normalize(a, nm.mean, nm.stddev, x.size(1));
  }
  if (x.numel() == 0) return a;
  const std::array<int64_t, 4> sizes = {x.size(0), x.size(1), h, w};
  const std::array<int64_t, 4> strides = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  set_geometry(a, sizes, strides, layout, x.data_ptr(), static_cast<int64_t>(x.element_size()),
               x.scalar_type() == at::kByte, out.data_ptr(), static_cast<int64_t>(out.element_size()));
  return a;
}

/// Everything the target kernel needs.
struct TargetArgs {
  const int64_t* labels = nullptr;
  float* out = nullptr;
  int64_t batch = 0;
  int64_t classes = 0;
  const int64_t* mix_perm = nullptr;
  float keep = 1.0f;
  float take = 0.0f;
  const int64_t* cut_perm = nullptr;
  float area = 1.0f;
  float on_scale = 1.0f;  ///< 1 − s
  float off = 0.0f;       ///< s / K
};

/// The target kernel's arguments for `n` labels (int64, in the memory the kernel reads) and `num_classes`
/// classes, written to `out` (n·num_classes floats), packed from the stage parameters: MixUp's weights, CutMix's
/// target weight 1 − |box|/(H·W) for the image size `image_height` × `image_width` (which must be known, i.e.
/// positive, with CutMix), and LabelSmoothing's (1 − s, s/K). Works with memory of any device, as
/// plan_image_args. MixUp's m must already be checked to lie in [0, 1].
/// \throws std::invalid_argument for a CutMix stage without a known image size or with a box outside it, or a
///         smoothing outside [0, 1].
template <class... Stages>
TargetArgs plan_target_args(const StageParameters<Stages...>& stages, const int64_t* labels, int64_t n,
                            int64_t num_classes, const int64_t* mix_perm, const int64_t* cut_perm,
                            int64_t image_height, int64_t image_width, float* out) {
  using Params = StageParameters<Stages...>;
  TargetArgs a;
  a.labels = labels;
  if constexpr (Params::template has<stage::MixUp>) {
    const double m = stages.template get<stage::MixUp>().mixing;
    a.mix_perm = mix_perm;
    a.keep = static_cast<float>(1.0 - m);
    a.take = static_cast<float>(m);
  }
  if constexpr (Params::template has<stage::CutMix>) {
    const stage::CutMix& cut = stages.template get<stage::CutMix>();
    if (image_height <= 0 || image_width <= 0) {
      fail(std::string(kFn) + " CutMix targets need the image size: call set_image_size(H, W), transform_input or "
           "operator() first");
    }
    functional::detail::check_bbox(cut.box, image_height, image_width, kFn);
    a.cut_perm = cut_perm;
    a.area = static_cast<float>(cut.area(image_height, image_width));
  }
  double s = 0.0;
  if constexpr (Params::template has<stage::LabelSmoothing>) {
    s = stages.template get<stage::LabelSmoothing>().smoothing;
    if (!(s >= 0.0 && s <= 1.0)) {
      fail(std::string(kFn) + " smoothing must be in [0, 1], got " + functional::detail::num(s));
    }
  }
  a.on_scale = static_cast<float>(1.0 - s);
  a.off = static_cast<float>(s / static_cast<double>(num_classes));
  a.batch = n;
  a.classes = num_classes;
  a.out = out;
  return a;
}

/// One range check of the value-check kernel: count values at p, each must lie in [lo, hi).
struct RangeCheck {
  const int64_t* values = nullptr;
  int64_t count = 0;
  int64_t lo = 0;
  int64_t hi = 0;
};
inline constexpr int kMaxChecks = 3;
struct RangeChecks {
  RangeCheck check[kMaxChecks];
};

template <class T>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

__host__ __device__ inline int64_t clamp_index(int64_t i, int64_t n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

template <class In>
__host__ __device__ inline float to_float(In x) {
  return static_cast<float>(x);
}

template <class Out>
__host__ __device__ inline Out from_float(float v) {
  if constexpr (std::is_same_v<Out, float>) {
    return v;
  } else {
    return Out(v);  // c10::Half / c10::BFloat16: round to nearest even
  }
}

/// MixUp's per-element function, as in the CPU kernel: keep·self + take·partner as one fused multiply-add.
__host__ __device__ inline float mix_apply(float self, float partner, float keep, float take) {
  return fmaf(self, keep, partner * take);
}

/// The value before CutOut and Normalize of the element at `offset` within image `sample`: s·x, mixed with the
/// same element of `partner` when MixUp is active.
template <class In, bool kMix>
__host__ __device__ inline float load_one(const ImageArgs& a, int64_t sample, int64_t partner, int64_t offset) {
  const In* in = static_cast<const In*>(a.in);
  float v = to_float(in[sample * a.in_stride[0] + offset]) * a.scale;
  if constexpr (kMix) {
    if (a.mix_active) v = mix_apply(v, to_float(in[partner * a.in_stride[0] + offset]) * a.scale, a.keep, a.take);
  }
  return v;
}

/// The same for the kVec elements starting at j0 of image `sample`, with vector loads (kLoadVector mode).
template <class In, bool kMix>
__host__ __device__ inline void load_vec(const ImageArgs& a, int64_t sample, int64_t partner, uint32_t j0,
                                         float (&v)[kVec]) {
  const In* in = static_cast<const In*>(a.in);
  const Pack<In> self = *reinterpret_cast<const Pack<In>*>(in + sample * a.in_stride[0] + j0);
#pragma unroll
  for (uint32_t k = 0; k < kVec; ++k) v[k] = to_float(self.v[k]) * a.scale;
  if constexpr (kMix) {
    if (a.mix_active) {
      const Pack<In> other = *reinterpret_cast<const Pack<In>*>(in + partner * a.in_stride[0] + j0);
#pragma unroll
      for (uint32_t k = 0; k < kVec; ++k) v[k] = mix_apply(v[k], to_float(other.v[k]) * a.scale, a.keep, a.take);
    }
  }
}

/// Transforms the (up to) kVec consecutive output elements j0, j0 + 1, … of image n. `mean` and `inv_std` hold
/// the per-channel constants (in shared memory on the device). Host-callable too, so that its index arithmetic
/// can be exercised without a GPU.
template <class In, class Out, unsigned kMask>
__host__ __device__ inline void process_chunk(const ImageArgs& a, const float* mean, const float* inv_std, int64_t n,
                                              uint32_t j0) {
  constexpr bool kMix = (kMask & kMixUpBit) != 0;
  constexpr bool kCutMix = (kMask & kCutMixBit) != 0;
  constexpr bool kCutOut = (kMask & kCutOutBit) != 0;
  constexpr bool kNorm = (kMask & kNormalizeBit) != 0;

  const uint32_t remaining = a.sample_size - j0;
  const uint32_t count = remaining < kVec ? remaining : kVec;

  // Coordinates of j0 in the output layout: (i0, i1, i2) = (w, h, c) for NCHW or (c, w, h) for NHWC.
  const uint32_t q0 = a.div0.div(j0);
  uint32_t i0 = j0 - q0 * a.extent0;
  const uint32_t q1 = a.div1.div(q0);
  uint32_t i1 = q0 - q1 * a.extent1;
  uint32_t i2 = q1;

  uint32_t cs[kVec];
  int64_t within[kVec];  // the element's offset inside its input image
  unsigned boxed = 0;
  unsigned holed = 0;
#pragma unroll
  for (uint32_t k = 0; k < kVec; ++k) {
    const uint32_t c = a.channels_last ? i0 : i2;
    const uint32_t h = a.channels_last ? i2 : i1;
    const uint32_t w = a.channels_last ? i1 : i0;
    cs[k] = c;
    within[k] = a.mode == kLoadStrided ? static_cast<int64_t>(c) * a.in_stride[1] +
                                             static_cast<int64_t>(h) * a.in_stride[2] +
                                             static_cast<int64_t>(w) * a.in_stride[3]
                                       : static_cast<int64_t>(j0 + k);
    if (k < count) {
      const int32_t hi = static_cast<int32_t>(h);
      const int32_t wi = static_cast<int32_t>(w);
      if constexpr (kCutMix) {
        if (a.cut_active && a.box_h0 <= hi && hi < a.box_h1 && a.box_w0 <= wi && wi < a.box_w1) boxed |= 1u << k;
      }
      if constexpr (kCutOut) {
        for (int32_t i = 0; i < a.num_holes; ++i) {
          if (a.holes[i][0] <= hi && hi < a.holes[i][2] && a.holes[i][1] <= wi && wi < a.holes[i][3]) {
            holed |= 1u << k;
          }
        }
      }
    }
    if (++i0 == a.extent0) {
      i0 = 0;
      if (++i1 == a.extent1) {
        i1 = 0;
        ++i2;
      }
    }
  }

  const unsigned valid = (1u << count) - 1u;
  const unsigned need_self = valid & ~boxed & ~holed;
  const unsigned need_box = valid & boxed & ~holed;

  // The images each element comes from: its own (and its MixUp partner), or inside the box the CutMix partner
  // (and that image's MixUp partner).
  const int64_t self = n;
  int64_t self_partner = n;
  int64_t box_src = n;
  int64_t box_partner = n;
  if constexpr (kMix) {
    if (a.mix_active && need_self) self_partner = clamp_index(a.mix_perm[n], a.batch);
  }
  if constexpr (kCutMix) {
    if (need_box) {
      box_src = clamp_index(a.cut_perm[n], a.batch);
      if constexpr (kMix) {
        if (a.mix_active) box_partner = clamp_index(a.mix_perm[box_src], a.batch);
      }
    }
  }

  float v[kVec];
  if (a.mode == kLoadVector) {
    float vs[kVec] = {};
    float vb[kVec] = {};
    if (need_self) load_vec<In, kMix>(a, self, self_partner, j0, vs);
    if constexpr (kCutMix) {
      if (need_box) load_vec<In, kMix>(a, box_src, box_partner, j0, vb);
    }
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) v[k] = ((holed >> k) & 1u) ? 0.0f : (((boxed >> k) & 1u) ? vb[k] : vs[k]);
  } else {
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) {
      v[k] = 0.0f;
      if ((need_self >> k) & 1u) {
        v[k] = load_one<In, kMix>(a, self, self_partner, within[k]);
      } else if ((need_box >> k) & 1u) {
        v[k] = load_one<In, kMix>(a, box_src, box_partner, within[k]);
      }
    }
  }

  if constexpr (kNorm) {
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) v[k] = (v[k] - mean[cs[k]]) * inv_std[cs[k]];
  }

  Out* out = static_cast<Out*>(a.out) + n * static_cast<int64_t>(a.sample_size) + j0;
  if (a.mode == kLoadVector) {
    Pack<Out> packed;
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) packed.v[k] = from_float<Out>(v[k]);
    *reinterpret_cast<Pack<Out>*>(out) = packed;
  } else {
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) {
      if (k < count) out[k] = from_float<Out>(v[k]);
    }
  }
}

/// The image kernel's launch grid: x over the chunks of one image, y over the images, each capped (the kernel's
/// grid-stride loops cover the rest); blocks of kThreads threads.
inline dim3 image_grid(const ImageArgs& a) {
  const int64_t blocks_x = (static_cast<int64_t>(a.chunks) + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(std::min<int64_t>(blocks_x, int64_t{1} << 20)),
              static_cast<unsigned>(std::min<int64_t>(a.batch, 65535)));
}

/// The work of one thread of the image kernel: thread `thread` of block (block_x, block_y) in a grid of
/// grid_x × grid_y blocks of `block_dim` threads walks the images from block_y in steps of grid_y and, inside each,
/// the kVec-element chunks from block_x·block_dim + thread in steps of grid_x·block_dim, so consecutive threads
/// touch consecutive memory. Host-callable, so that a host-side test runs the kernel's whole grid.
template <class In, class Out, unsigned kMask>
__host__ __device__ inline void image_thread(const ImageArgs& a, const float* mean, const float* inv_std,
                                             uint32_t block_x, uint32_t block_y, uint32_t grid_x, uint32_t grid_y,
                                             uint32_t block_dim, uint32_t thread) {
  const uint32_t step = grid_x * block_dim;
  for (int64_t n = block_y; n < a.batch; n += grid_y) {
    for (uint32_t chunk = block_x * block_dim + thread; chunk < a.chunks; chunk += step) {
      process_chunk<In, Out, kMask>(a, mean, inv_std, n, chunk * kVec);
    }
  }
}

/// The image kernel: the normalisation constants go to shared memory, then each thread runs image_thread.
template <class In, class Out, unsigned kMask>
__global__ void __launch_bounds__(kThreads) fused_image_kernel(const __grid_constant__ ImageArgs a) {
  __shared__ float mean[kMaxChannels];
  __shared__ float inv_std[kMaxChannels];
  if constexpr ((kMask & kNormalizeBit) != 0) {
    for (uint32_t i = threadIdx.x; i < a.channels; i += blockDim.x) {
      mean[i] = a.mean[i];
      inv_std[i] = a.inv_std[i];
    }
    __syncthreads();
  }
  image_thread<In, Out, kMask>(a, mean, inv_std, blockIdx.x, blockIdx.y, gridDim.x, gridDim.y, blockDim.x,
                               threadIdx.x);
}

/// Runs every thread of the image kernel's grid (image_grid) one after another on the host, reading the
/// normalisation constants from the arguments: the kernel's own code over CPU memory, for tests without a GPU.
template <class In, class Out, unsigned kMask>
void run_image_on_host(const ImageArgs& a) {
  const dim3 grid = image_grid(a);
  for (uint32_t by = 0; by < grid.y; ++by) {
    for (uint32_t bx = 0; bx < grid.x; ++bx) {
      for (uint32_t t = 0; t < static_cast<uint32_t>(kThreads); ++t) {
        image_thread<In, Out, kMask>(a, a.mean, a.inv_std, bx, by, grid.x, grid.y, kThreads, t);
      }
    }
  }
}

/// Mixed (MixUp) and smoothed one-hot value of class k for image n.
template <bool kMix>
__host__ __device__ inline float mixed_target(const TargetArgs& a, int64_t n, int64_t k) {
  const float self = (a.labels[n] == k ? 1.0f : 0.0f) * a.on_scale + a.off;
  if constexpr (!kMix) {
    return self;
  } else {
    const int64_t partner = a.labels[clamp_index(a.mix_perm[n], a.batch)];
    const float other = (partner == k ? 1.0f : 0.0f) * a.on_scale + a.off;
    return self * a.keep + other * a.take;
  }
}

/// One target element: the MixUp mix of image n, then CutMix's area-weighted mix with image π_c(n).
template <unsigned kMask>
__host__ __device__ inline float target_value(const TargetArgs& a, int64_t n, int64_t k) {
  constexpr bool kMix = (kMask & kMixUpBit) != 0;
  const float t = mixed_target<kMix>(a, n, k);
  if constexpr ((kMask & kCutMixBit) != 0) {
    const float u = mixed_target<kMix>(a, clamp_index(a.cut_perm[n], a.batch), k);
    return t * a.area + u * (1.0f - a.area);
  } else {
    return t;
  }
}

/// The target kernel's launch: blocks of kTargetThreads threads, at most kMaxTargetBlocks of them (a grid-stride
/// loop covers the rest); 0 blocks for an empty output.
inline constexpr int kTargetThreads = 256;
inline constexpr int64_t kMaxTargetBlocks = 4096;
inline unsigned target_blocks(const TargetArgs& a) {
  const int64_t total = a.batch * a.classes;
  return static_cast<unsigned>(std::min<int64_t>((total + kTargetThreads - 1) / kTargetThreads, kMaxTargetBlocks));
}

/// The work of one thread of the target kernel: elements first, first + step, … of the [N, K] output.
template <unsigned kMask>
__host__ __device__ inline void target_thread(const TargetArgs& a, int64_t first, int64_t step) {
  const int64_t total = a.batch * a.classes;
  for (int64_t i = first; i < total; i += step) {
    const int64_t n = i / a.classes;
    a.out[i] = target_value<kMask>(a, n, i - n * a.classes);
  }
}

template <unsigned kMask>
__global__ void fused_target_kernel(const TargetArgs a) {
  target_thread<kMask>(a, static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
                       static_cast<int64_t>(gridDim.x) * blockDim.x);
}

/// Runs every thread of the target kernel's grid (target_blocks) one after another on the host, for tests
/// without a GPU.
template <unsigned kMask>
void run_targets_on_host(const TargetArgs& a) {
  const unsigned blocks = target_blocks(a);
  const int64_t step = static_cast<int64_t>(blocks) * kTargetThreads;
  for (int64_t thread = 0; thread < step; ++thread) target_thread<kMask>(a, thread, step);
}

/// Counts the values outside [lo, hi) of each check (blockIdx.y) and keeps one of them:
/// result[2·j] = count, result[2·j + 1] = an offending value. A template so that the header may be included by
/// several translation units.
template <int kUnused = 0>
__global__ void range_check_kernel(const __grid_constant__ RangeChecks checks, unsigned long long* result) {
  const RangeCheck& rc = checks.check[blockIdx.y];
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rc.count; i += step) {
    const int64_t v = rc.values[i];
    if (v < rc.lo || v >= rc.hi) {
      atomicAdd(&result[2 * blockIdx.y], 1ull);
      atomicExch(&result[2 * blockIdx.y + 1], static_cast<unsigned long long>(v));
    }
  }
}

/// The number of image-kernel launches made by this program so far (every FusedBatchTransform, every thread).
inline std::atomic<int64_t>& image_launch_counter() {
  static std::atomic<int64_t> launches{0};
  return launches;
}

template <class In, class Out, unsigned kMask>
void launch_image(const ImageArgs& a, cudaStream_t stream) {
  fused_image_kernel<In, Out, kMask><<<image_grid(a), kThreads, 0, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  image_launch_counter().fetch_add(1, std::memory_order_relaxed);
}

/// Calls `f.template operator()<In, Out>()` with the element types of an image kernel's input and output dtypes
/// (input uint8, float32, float16 or bfloat16; output float32, float16 or bfloat16).
/// \throws std::invalid_argument for any other dtype.
template <class F>
void with_image_types(at::ScalarType in, at::ScalarType out, F&& f) {
  auto with_out = [&]<class In>() {
    switch (out) {
      case at::kFloat: f.template operator()<In, float>(); break;
      case at::kHalf: f.template operator()<In, c10::Half>(); break;
      case at::kBFloat16: f.template operator()<In, c10::BFloat16>(); break;
      default: fail(std::string(kFn) + " has no kernel for output dtype " + std::string(c10::toString(out)));
    }
  };
  switch (in) {
    case at::kFloat: with_out.template operator()<float>(); break;
    case at::kHalf: with_out.template operator()<c10::Half>(); break;
    case at::kBFloat16: with_out.template operator()<c10::BFloat16>(); break;
    case at::kByte: with_out.template operator()<uint8_t>(); break;
    default: fail(std::string(kFn) + " has no kernel for input dtype " + std::string(c10::toString(in)));
  }
}

/// Launches the image kernel instantiated for (input dtype, output dtype, the transform's pixel stages).
template <unsigned kMask>
void dispatch_image(const ImageArgs& a, at::ScalarType in, at::ScalarType out, cudaStream_t stream) {
  with_image_types(in, out, [&]<class In, class Out>() { launch_image<In, Out, kMask>(a, stream); });
}

/// The host-side counterpart of dispatch_image: the same instantiation, run by run_image_on_host.
template <unsigned kMask>
void dispatch_image_on_host(const ImageArgs& a, at::ScalarType in, at::ScalarType out) {
  with_image_types(in, out, [&]<class In, class Out>() { run_image_on_host<In, Out, kMask>(a); });
}

template <unsigned kMask>
void launch_targets(const TargetArgs& a, cudaStream_t stream) {
  const unsigned blocks = target_blocks(a);
  if (blocks == 0) return;
  fused_target_kernel<kMask><<<blocks, kTargetThreads, 0, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

/// The byte range [lo, hi) a strided tensor can touch.
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

inline bool ranges_overlap(const at::Tensor& a, const at::Tensor& b) {
  const auto [a0, a1] = byte_extent(a);
  const auto [b0, b1] = byte_extent(b);
  return a0 < b1 && b0 < a1;
}

inline std::string strides_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.stride(d));
  return s + "]";
}

inline bool is_image_dtype(at::ScalarType t) {
  return t == at::kByte || t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

inline bool is_out_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kHalf || t == at::kBFloat16; }

}  // namespace detail

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
/// its data pipelines, applied in the order documented at the top of this file. The stages must be listed in the
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
  /// on by default). See the top of this file.
  void set_value_checks(bool enabled) { value_checks_ = enabled; }
  /// \copydoc set_value_checks
  [[nodiscard]] bool value_checks() const { return value_checks_; }

  /// The image size [H, W] for which CutMix's target weight 1 − |box|/(H·W) is computed. Every image call
  /// (transform_input, transform_input_into, operator()) sets it; set it explicitly to call transform_target
  /// alone first.
  void set_image_size(int64_t height, int64_t width) {
    if (height <= 0 || width <= 0) {
      detail::fail(std::string(detail::kFn) + " image size must be positive, got " + std::to_string(height) + "x" +
                   std::to_string(width));
    }
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
    if (!out.defined()) detail::fail(std::string(detail::kFn) + " out must be a defined tensor");
    if (!out.device().is_cuda() || out.device() != input.device()) {
      detail::fail(std::string(detail::kFn) + " out must be on the input's device (" + input.device().str() +
                   "), got " + out.device().str());
    }
    check_out_dtype(out.scalar_type());
    if (out.sizes() != input.sizes()) {
      detail::fail(std::string(detail::kFn) + " out must have the input's shape " +
                   functional::detail::shape_of(input) + ", got " + functional::detail::shape_of(out));
    }
    const bool cl = layout == detail::InputLayout::channels_last;
    if (!out.is_contiguous(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)) {
      detail::fail(std::string(detail::kFn) + " out must be contiguous in the output layout (" +
                   (cl ? "channels-last" : "NCHW") + "), got strides " + detail::strides_of(out));
    }
    if (out.numel() > 0 && input.numel() > 0 && detail::ranges_overlap(out, input)) {
      detail::fail(std::string(detail::kFn) + " out must not overlap the input");
    }
    const c10::cuda::CUDAGuard guard(input.device());
    pending_ = 0;
    const Resolved r = resolve_indices(input.size(0), input.device());
    const detail::ImageArgs args = plan_image(input, out, layout, r);
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream(input.device().index()).stream();
    run_value_checks(input.device(), stream);
    if (input.numel() > 0) detail::dispatch_image<kMask>(args, input.scalar_type(), out.scalar_type(), stream);
  }

  /// Dense targets [N, K] float32 on the labels' device into the internal buffer (reused across calls; overwritten
  /// by the next call), as documented at the top of this file. One small kernel launch.
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
    if (input.size(0) != labels.size(0)) {
      detail::fail(std::string(detail::kFn) + " input and labels must have the same batch size, got " +
                   std::to_string(input.size(0)) + " and " + std::to_string(labels.size(0)));
    }
    if (labels.device() != input.device()) {
      detail::fail(std::string(detail::kFn) + " labels must be on the input's device (" + input.device().str() +
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
    functional::detail::check_image_batch(input, detail::kFn);
    if (!input.device().is_cuda()) {
      detail::fail(std::string(detail::kFn) + " input must be a CUDA tensor, got one on " + input.device().str());
    }
    if (!detail::is_image_dtype(input.scalar_type())) {
      detail::fail(std::string(detail::kFn) + " input must be uint8, float32, float16 or bfloat16, got " +
                   std::string(c10::toString(input.scalar_type())));
    }
    const int64_t sample = input.size(1) * input.size(2) * input.size(3);
    if (sample > detail::kMaxSampleSize) {
      detail::fail(std::string(detail::kFn) + " images must have fewer than 2^31 - 64 elements (C·H·W), got shape " +
                   functional::detail::shape_of(input));
    }
    return detail::input_layout(input);
  }

  static void check_out_dtype(at::ScalarType t) {
    if (!detail::is_out_dtype(t)) {
      detail::fail(std::string(detail::kFn) + " output dtype must be float32, float16 or bfloat16, got " +
                   std::string(c10::toString(t)));
    }
  }

  static void check_labels(const at::Tensor& labels, int64_t num_classes) {
    if (!labels.defined()) detail::fail(std::string(detail::kFn) + " labels must be a defined tensor");
    if (!labels.device().is_cuda()) {
      detail::fail(std::string(detail::kFn) + " labels must be a CUDA tensor, got one on " + labels.device().str());
    }
    if (labels.dim() != 1 || !functional::detail::is_index_dtype(labels.scalar_type())) {
      detail::fail(std::string(detail::kFn) + " labels must be a 1-D integer tensor of class indices, got shape " +
                   functional::detail::shape_of(labels) + " and dtype " +
                   std::string(c10::toString(labels.scalar_type())));
    }
    if (num_classes <= 0) {
      detail::fail(std::string(detail::kFn) + " num_classes must be positive, got " + std::to_string(num_classes));
    }
  }

  // Checks one stage's indices (set, 1-D integer with n entries, on `device`) and returns them as contiguous
  // int64, converting (and keeping the copy in `keep`) only when needed.
  static const int64_t* device_indices(const at::Tensor& indices, int64_t n, const at::Device& device,
                                       const char* what, at::Tensor& keep) {
    if (!indices.defined()) {
      detail::fail(std::string(detail::kFn) + " " + what + " must be set (" + std::to_string(n) + " entries)");
    }
    functional::detail::check_indices(indices, n, detail::kFn, what);
    if (indices.device() != device) {
      detail::fail(std::string(detail::kFn) + " " + what + " must be on the device of the batch (" + device.str() +
                   "), got " + indices.device().str());
    }
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
      if (!(mix.mixing >= 0.0 && mix.mixing <= 1.0)) {
        detail::fail(std::string(detail::kFn) + " mixing must be in [0, 1], got " +
                     functional::detail::num(mix.mixing));
      }
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
      const std::string bad = std::to_string(verdict_[static_cast<size_t>(2 * i + 1)]);
      if (what == "labels") {
        detail::fail(std::string(detail::kFn) + " labels must be smaller than num_classes (" +
                     std::to_string(checks_.check[i].hi) + "), got " + bad);
      }
      detail::fail(std::string(detail::kFn) + " " + what + " must lie in [0, " + std::to_string(checks_.check[i].hi) +
                   "), got " + bad);
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
