#pragma once
/// \file
/// A fused CPU batch transform: MixUp, CutMix, CutOut, per-channel normalisation and the dtype conversion of an
/// image batch in one pass over memory, plus the matching mixed and smoothed dense targets.
///
/// Semantics. For an input batch x of shape [N, C, H, W] (uint8 or float32), the image output is, per element,
///
///     v        = s·x[n,c,h,w]                       s = 1/255 for uint8 input, 1 for float32 input
///     v        = (1 − m)·v + m·v[π(n)]              MixUp stage (m = mixing weight of the partner, π = indices)
///     v        = v[π'(n)]  if (h, w) is in the box  CutMix stage (its own indices π'; rows x1..x2, columns y1..y2)
///     v        = 0   if (h, w) lies in any hole      CutOut stage (the same holes for every image and channel)
///     out      = (v − mean[c]) / stddev[c]          Normalize stage
///
/// where each line acts on the batch the lines before produced, which is exactly the eager sequence
///
///     x = x.to(float) / 255                              (uint8 input only)
///     x = functional::mixup_batch(x, y, m, π).input_mixed
///     x = functional::cutmix_batch(x, y, box, π').input_mixed
///     x = functional::cutout_batch(x, holes)
///     x = (x − mean) / std                               (mean, std broadcast over dim 1)
///
/// (so with MixUp and CutMix a pasted pixel is the partner's mixed pixel).
/// Each stage is optional (leave it out of the stage pack). Note that CutOut zeroes *before* normalisation: a hole
/// holds −mean[c]/std[c] in the output, exactly what eager cutout-then-normalise gives (and not 0, which is what
/// cutting out an already normalised batch would give). Holes are written by a fill, so they are +0 before
/// normalisation whatever the input held there (inf and NaN included), as in functional::cutout_batch.
/// With m = 0 the partner is not read at all, so a non-finite partner value does not turn into NaN the way
/// eager 0·inf does.
///
/// The targets are t(n) = (1 − m)·smooth(onehot(y[n])) + m·smooth(onehot(y[π(n)])) with
/// smooth(e) = (1 − s_l)·e + s_l/K (LabelSmoothing stage; s_l = 0 without it, m = 0 and π = id without MixUp),
/// and with CutMix y_dense(n) = a·t(n) + (1 − a)·t(π'(n)), a = 1 − |box|/(H·W) (Composer's adjusted λ, for the
/// last transformed batch's size or `set_image_size`), float32 [N, K]. Negative labels give an all-zero one-hot row before smoothing, as in
/// functional::ensure_targets_one_hot.
///
/// Numerics: the fused pass computes in float32 with a multiply by 1/255 instead of a division, the mix as one
/// fused multiply-add and the normalisation as (v − mean)·(1/std), so it matches the eager sequence to a few ulp,
/// not bit for bit. bfloat16 and float16 output is rounded once (to nearest even) from the float32 result.
///
/// Layout: contiguous NCHW input gives contiguous NCHW output; channels-last input (NHWC in memory) is processed
/// natively and gives channels-last output (as the eager ops do). Any other strided input is first copied with
/// `.contiguous()` (one extra pass and an allocation per call; avoid it on the hot path).
///
/// Build flags (all optional; the results are correct without any of them):
///  * SIMD: compile with `-mavx2 -mfma` or `-march=native` (at -O2 or higher) for wide vectors. The kernel's
///    per-element stage functions have a float form and an at::vec::Vectorized<float> form. LibTorch only gives
///    Vectorized<float> its AVX2/AVX-512 intrinsics when the translation unit defines ATen's capability macros
///    (`-DCPU_CAPABILITY=AVX2 -DCPU_CAPABILITY_AVX2 -mavx2 -mfma`, as ATen's own kernels are built; this needs
///    LibTorch's bundled sleef.h, which Debian's libtorch-dev lacks); the Vectorized form is used then. Otherwise
///    the generic Vectorized would pass its lanes through memory, so the kernel runs fixed-length lane loops that
///    the compiler vectorises for the target ISA instead. `-DCOMPOSER_FUSED_USE_ATEN_VEC` forces the Vectorized
///    form (slow with the generic type; meant for testing that path).
///  * Threads: with LibTorch's OpenMP backend (the usual build) at::parallel_for opens its `omp parallel` region
///    inline in the caller, so the translation unit must be compiled with `-fopenmp` to use more than one thread;
///    without it the kernel runs on the calling thread only.
///
/// Buffers: the transform keeps its image and target outputs and reuses them while the shape, dtype and layout
/// are unchanged, so a steady-state call allocates nothing large. The returned tensors therefore alias that
/// storage and are overwritten by the next call: clone them to keep them. `transform_input_into` writes into a
/// caller-provided buffer instead. A transform object is not safe to call from several threads at once (the
/// kernel itself runs on at::parallel_for's threads).

#include <composer/functional/common.hpp>
#include <composer/kernels/batch_stages.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/functional/mixup.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace composer::kernels {

namespace detail {
using Vec = at::vec::Vectorized<float>;
inline constexpr int64_t kLanes = static_cast<int64_t>(Vec::size());
/// Whether the kernel computes with Vectorized<float>: when it is one of ATen's intrinsic specialisations (ATen
/// capability macros set), or when forced with COMPOSER_FUSED_USE_ATEN_VEC (used to test that path). Otherwise
/// the generic Vectorized would pass its lanes through memory, so the kernel computes fixed-length lane loops
/// straight from and to memory instead, which the compiler turns into SIMD code under -mavx2 -mfma or
/// -march=native; both paths apply the same per-element stage functions.
#if defined(CPU_CAPABILITY_AVX2) || defined(CPU_CAPABILITY_AVX512) || defined(COMPOSER_FUSED_USE_ATEN_VEC)
inline constexpr bool kUseAtenVec = true;
#else
inline constexpr bool kUseAtenVec = false;
#endif
/// Elements per step of the lane loops: four vectors, so that uint8 → float conversions fill whole vectors too
/// and the constant trip count lets the compiler vectorise even under its cheapest cost model (-O2).
inline constexpr int64_t kBlock = 4 * kLanes;
/// Elements per full step of a span.
inline constexpr int64_t kStep = kUseAtenVec ? kLanes : kBlock;
}  // namespace detail

namespace detail {
/// MixUp's per-element function: keep·self + take·partner with keep = 1 − m, take = m (one lane or a vector).
inline float mix_apply(float self, float partner, float keep, float take) { return std::fma(self, keep, partner * take); }
inline Vec mix_apply(const Vec& self, const Vec& partner, const Vec& keep, const Vec& take) {
  return at::vec::fmadd(self, keep, partner * take);
}
/// Normalize's per-element function: (v − mean)·inv_std (one lane or a vector of lanes).
inline float normalize_apply(float v, float mean_v, float inv_std_v) { return (v - mean_v) * inv_std_v; }
inline Vec normalize_apply(const Vec& v, const Vec& mean_v, const Vec& inv_std_v) { return (v - mean_v) * inv_std_v; }
}  // namespace detail

/// The fused result: the transformed images and the dense targets (both alias the transform's buffers).
struct FusedBatchOutput {
  at::Tensor input;
  at::Tensor target;
};

namespace detail {

[[noreturn]] inline void fail(const std::string& message) { functional::detail::fail(message); }

// Loads `count` lanes (all kLanes when kFull, so that the fixed-size load is used on the hot path), converting
// uint8 to float scaled by 1/255.
template <bool kFull, class In>
inline Vec load_lanes(const In* p, int64_t count) {
  if constexpr (std::is_same_v<In, float>) {
    if constexpr (kFull) {
      return Vec::loadu(p);
    } else {
      return Vec::loadu(p, count);
    }
  } else {
    alignas(64) float buf[kLanes] = {};
    if constexpr (kFull) {
      for (int64_t i = 0; i < kLanes; ++i) buf[i] = static_cast<float>(p[i]);
    } else {
      for (int64_t i = 0; i < count; ++i) buf[i] = static_cast<float>(p[i]);
    }
    return Vec::loadu(buf) * Vec(1.0f / 255.0f);
  }
}

// float → output element. bfloat16: round to nearest even, NaN → quiet NaN (the same rule as c10::BFloat16's
// constructor), written branch-free so that lane loops vectorise.
template <class Out>
inline Out to_out(float v) {
  if constexpr (std::is_same_v<Out, float>) {
    return v;
  } else if constexpr (std::is_same_v<Out, c10::Half>) {
    return c10::Half(v);  // round to nearest even
  } else {
    const uint32_t u = std::bit_cast<uint32_t>(v);
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const uint16_t bits = static_cast<uint16_t>(v != v ? 0x7FC0u : rounded);
    return c10::BFloat16(bits, c10::BFloat16::from_bits());
  }
}

template <bool kFull, class Out>
inline void store_lanes(const Vec& v, Out* p, int64_t count) {
  if constexpr (std::is_same_v<Out, float>) {
    if constexpr (kFull) {
      v.store(p);
    } else {
      v.store(p, static_cast<int>(count));
    }
  } else {
    alignas(64) float buf[kLanes];
    v.store(buf);
    if constexpr (kFull) {
      for (int64_t i = 0; i < kLanes; ++i) p[i] = to_out<Out>(buf[i]);
    } else {
      for (int64_t i = 0; i < count; ++i) p[i] = to_out<Out>(buf[i]);
    }
  }
}

/// Everything the row kernel needs, in element units of the memory layout.
struct KernelArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int64_t rows = 0;             ///< N·C·H (NCHW) or N·H (NHWC)
  int64_t row_len = 0;          ///< W (NCHW) or W·C (NHWC)
  int64_t rows_per_sample = 0;  ///< C·H (NCHW) or H (NHWC)
  int64_t height = 0;
  int64_t channels = 0;
  bool channels_last = false;
  const int64_t* perm = nullptr;
  float keep = 1.0f;
  float take = 0.0f;
  const float* mean_pattern = nullptr;     ///< C·W floats: per channel a row (NCHW) or one interleaved row (NHWC)
  const float* inv_std_pattern = nullptr;  ///< same layout as mean_pattern
  const int64_t* cut_perm = nullptr;       ///< CutMix partner indices (null without CutMix)
  int64_t box_row_begin = 0;               ///< CutMix box rows [begin, end) of H (empty without CutMix)
  int64_t box_row_end = 0;
  int64_t box_col_begin = 0;               ///< CutMix box columns [begin, end), in row elements
  int64_t box_col_end = 0;
  const int64_t* span_offsets = nullptr;   ///< H + 1 offsets into spans (in pairs)
  const int64_t* spans = nullptr;          ///< per row h: sorted disjoint hole intervals [b, e) in row elements
};

template <class In>
inline float lane_to_float(In x) {
  if constexpr (std::is_same_v<In, float>) {
    return x;
  } else {
    return static_cast<float>(x) * (1.0f / 255.0f);
  }
}

// One step of a span: `count` elements (kStep when kFull).
template <bool kFull, class In, class Out, bool kMix, bool kNorm>
inline void span_step(const In* __restrict a, const In* __restrict b, Out* __restrict o,
                      const float* __restrict mean, const float* __restrict inv_std, int64_t count, float keep,
                      float take) {
  if constexpr (!kUseAtenVec) {
    // A lane loop straight from and to memory (no staging arrays, which would cost store-forwarding stalls);
    // `o` never overlaps the inputs.
    const int64_t lanes = kFull ? kBlock : count;
    for (int64_t j = 0; j < lanes; ++j) {
      float v = lane_to_float(a[j]);
      if constexpr (kMix) v = detail::mix_apply(v, lane_to_float(b[j]), keep, take);
      if constexpr (kNorm) v = detail::normalize_apply(v, mean[j], inv_std[j]);
      o[j] = to_out<Out>(v);
    }
  } else {
    Vec v = load_lanes<kFull>(a, count);
    if constexpr (kMix) v = detail::mix_apply(v, load_lanes<kFull>(b, count), Vec(keep), Vec(take));
    if constexpr (kNorm) {
      v = detail::normalize_apply(v, load_lanes<kFull>(mean, count), load_lanes<kFull>(inv_std, count));
    }
    store_lanes<kFull>(v, o, count);
  }
}

// Mixes (optionally) and normalises (optionally) `len` elements of a row outside the holes.
template <class In, class Out, bool kMix, bool kNorm>
inline void run_span(const In* a, const In* b, Out* o, const float* mean, const float* inv_std, int64_t len,
                     float keep, float take) {
  int64_t i = 0;
  for (; i + kStep <= len; i += kStep) {
    span_step<true, In, Out, kMix, kNorm>(a + i, b + i, o + i, mean + i, inv_std + i, kStep, keep, take);
  }
  if (i < len) {
    span_step<false, In, Out, kMix, kNorm>(a + i, b + i, o + i, mean + i, inv_std + i, len - i, keep, take);
  }
}

// Writes the value of a cut pixel: 0, normalised when the Normalize stage is present.
template <class Out, bool kNorm>
inline void fill_span(Out* o, const float* mean, const float* inv_std, int64_t len) {
  if constexpr (!kUseAtenVec) {
    for (int64_t j = 0; j < len; ++j) {
      o[j] = to_out<Out>(kNorm ? detail::normalize_apply(0.0f, mean[j], inv_std[j]) : 0.0f);
    }
    return;
  }
  int64_t i = 0;
  const Vec zero(0.0f);
  for (; i + kLanes <= len; i += kLanes) {
    Vec v = zero;
    if constexpr (kNorm) v = detail::normalize_apply(v, Vec::loadu(mean + i), Vec::loadu(inv_std + i));
    store_lanes<true>(v, o + i, kLanes);
  }
  if (i < len) {
    Vec v = zero;
    if constexpr (kNorm) {
      v = detail::normalize_apply(v, Vec::loadu(mean + i, len - i), Vec::loadu(inv_std + i, len - i));
    }
    store_lanes<false>(v, o + i, len - i);
  }
}

// Writes row elements [begin, end) from the rows `a` (self) and `b` (MixUp partner), cutting the hole spans of
// the row that fall inside; `k` is the row's first span index, advanced past the spans used up.
template <class In, class Out, bool kMix, bool kNorm>
inline void run_segment(const KernelArgs& args, const In* a, const In* b, Out* o, const float* mean,
                        const float* inv_std, int64_t begin, int64_t end, int64_t& k, int64_t k_end) {
  int64_t pos = begin;
  for (; k < k_end; ++k) {
    const int64_t s = std::max(args.spans[2 * k], pos);
    const int64_t e = std::min(args.spans[2 * k + 1], end);
    if (s >= end) break;
    if (e > s) {
      run_span<In, Out, kMix, kNorm>(a + pos, b + pos, o + pos, mean + pos, inv_std + pos, s - pos, args.keep,
                                     args.take);
      fill_span<Out, kNorm>(o + s, mean + s, inv_std + s, e - s);
      pos = e;
    }
    if (args.spans[2 * k + 1] > end) break;  // the span goes on into the next segment
  }
  run_span<In, Out, kMix, kNorm>(a + pos, b + pos, o + pos, mean + pos, inv_std + pos, end - pos, args.keep,
                                 args.take);
}

template <class In, class Out, bool kMix, bool kNorm>
void run_kernel(const KernelArgs& args) {
  const In* in = static_cast<const In*>(args.in);
  Out* out = static_cast<Out*>(args.out);
  const int64_t len = args.row_len;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, len));
  at::parallel_for(0, args.rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / args.rows_per_sample;
      const int64_t within = r - n * args.rows_per_sample;
      const int64_t h = r % args.height;
      const int64_t pattern_offset = args.channels_last ? 0 : ((r / args.height) % args.channels) * len;
      const auto row_of = [&](int64_t image) { return in + (image * args.rows_per_sample + within) * len; };
      const In* a = in + r * len;
      const In* b = kMix ? row_of(args.perm[n]) : a;
      Out* o = out + r * len;
      const float* mean = args.mean_pattern + pattern_offset;
      const float* inv_std = args.inv_std_pattern + pattern_offset;
      int64_t k = args.span_offsets[h];
      const int64_t k_end = args.span_offsets[h + 1];
      if (args.cut_perm != nullptr && args.box_row_begin <= h && h < args.box_row_end &&
          args.box_col_begin < args.box_col_end) {
        // Inside the CutMix box the row comes from the partner image (mixed with its own MixUp partner).
        const int64_t partner = args.cut_perm[n];
        const In* pa = row_of(partner);
        const In* pb = kMix ? row_of(args.perm[partner]) : pa;
        run_segment<In, Out, kMix, kNorm>(args, a, b, o, mean, inv_std, 0, args.box_col_begin, k, k_end);
        run_segment<In, Out, kMix, kNorm>(args, pa, pb, o, mean, inv_std, args.box_col_begin, args.box_col_end, k,
                                          k_end);
        run_segment<In, Out, kMix, kNorm>(args, a, b, o, mean, inv_std, args.box_col_end, len, k, k_end);
      } else {
        run_segment<In, Out, kMix, kNorm>(args, a, b, o, mean, inv_std, 0, len, k, k_end);
      }
    }
  });
}

template <class In, class Out>
void dispatch_flags(const KernelArgs& args, bool mix, bool norm) {
  if (mix) {
    if (norm) {
      run_kernel<In, Out, true, true>(args);
    } else {
      run_kernel<In, Out, true, false>(args);
    }
  } else {
    if (norm) {
      run_kernel<In, Out, false, true>(args);
    } else {
      run_kernel<In, Out, false, false>(args);
    }
  }
}

inline bool ranges_overlap(const at::Tensor& a, const at::Tensor& b) {
  const auto* a0 = static_cast<const char*>(a.data_ptr());
  const auto* b0 = static_cast<const char*>(b.data_ptr());
  const auto* a1 = a0 + a.numel() * static_cast<int64_t>(a.element_size());
  const auto* b1 = b0 + b.numel() * static_cast<int64_t>(b.element_size());
  return a0 < b1 && b0 < a1;
}

}  // namespace detail

/// A fused batch transform over a compile-time list of stages, e.g.
///
///     FusedBatchTransform<stage::MixUp, stage::CutOut, stage::Normalize, stage::LabelSmoothing> t;
///     t.get<stage::MixUp>() = stage::MixUp::sample(n, 0.2);
///     t.get<stage::CutOut>() = stage::CutOut::sample(h, w);
///     t.get<stage::Normalize>() = {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
///     auto [x, y] = t(images, labels, num_classes);
///
/// The stages must be listed in their fixed order MixUp, CutMix, CutOut, Normalize, LabelSmoothing (any subset, each at
/// most once); the order in which they act is always the one documented at the top of this file. The kernel is
/// instantiated for the input dtype (uint8, float32), output dtype (float32, bfloat16, float16) and which of the pixel
/// stages are present; a MixUp stage with m = 0 runs the no-mix instantiation.
template <class... Stages>
class FusedBatchTransform : public StageParameters<Stages...> {
  using Base = StageParameters<Stages...>;
  using Base::stages_;

 public:
  using Base::Base;
  /// Whether stage S is part of this transform.
  template <class S>
  static constexpr bool has = Base::template has<S>;

  /// Transforms the image batch into the internal buffer, reused across calls with the same shape, dtype and
  /// layout; the result is overwritten by the next call.
  /// \param input  [N, C, H, W] uint8 or float32 CPU tensor (NCHW, channels-last, or strided: copied).
  /// \param out_dtype float32 (default), bfloat16 or float16.
  /// \throws std::invalid_argument for a bad input, stage parameters or dtype.
  at::Tensor transform_input(const at::Tensor& input, at::ScalarType out_dtype = at::kFloat) {
    const at::Tensor x = prepare_input(input);
    check_out_dtype(out_dtype);
    const bool cl = is_channels_last(x);
    const auto fmt = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    const bool reusable = image_buffer_.defined() && image_buffer_.sizes() == x.sizes() &&
                          image_buffer_.scalar_type() == out_dtype && image_buffer_.is_contiguous(fmt);
    if (!reusable) image_buffer_ = at::empty(x.sizes(), at::TensorOptions().dtype(out_dtype).memory_format(fmt));
    run(x, image_buffer_, cl);
    return image_buffer_;
  }

  /// Transforms the image batch into `out`, which must have the input's shape, a float32, bfloat16 or float16 dtype, be
  /// on the CPU, be contiguous in the input's layout (NCHW, or channels-last for channels-last input) and not
  /// overlap the input.
  void transform_input_into(const at::Tensor& input, at::Tensor& out) {
    const at::Tensor x = prepare_input(input);
    const bool cl = is_channels_last(x);
    constexpr const char* fn = "fused_batch_transform";
    if (!out.defined()) detail::fail(std::string(fn) + " out must be a defined tensor");
    if (!out.device().is_cpu()) detail::fail(std::string(fn) + " out must be a CPU tensor");
    check_out_dtype(out.scalar_type());
    if (out.sizes() != x.sizes()) {
      detail::fail(std::string(fn) + " out must have the input's shape " + functional::detail::shape_of(x) +
                   ", got " + functional::detail::shape_of(out));
    }
    if (!out.is_contiguous(cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)) {
      detail::fail(std::string(fn) + " out must be contiguous in the input's layout (" +
                   (cl ? "channels-last" : "NCHW") + ")");
    }
    if (out.numel() > 0 && detail::ranges_overlap(out, x)) {
      detail::fail(std::string(fn) + " out must not overlap the input");
    }
    run(x, out, cl);
  }

  /// Dense targets [N, K] float32 into the internal buffer (reused across calls; overwritten by the next call):
  /// (1 − m)·smooth(onehot(y)) + m·smooth(onehot(y[π])).
  /// \param labels 1-D integer CPU tensor of class indices (negative: ignored row), N entries.
  /// \throws std::invalid_argument for bad labels, num_classes ≤ 0, a label ≥ num_classes or bad stage parameters.
  at::Tensor transform_target(const at::Tensor& labels, int64_t num_classes) {
    constexpr const char* fn = "fused_batch_transform";
    if (!labels.defined()) detail::fail(std::string(fn) + " labels must be a defined tensor");
    if (!labels.device().is_cpu()) detail::fail(std::string(fn) + " labels must be a CPU tensor");
    if (labels.dim() != 1 || !functional::detail::is_index_dtype(labels.scalar_type())) {
      detail::fail(std::string(fn) + " labels must be a 1-D integer tensor of class indices, got shape " +
                   functional::detail::shape_of(labels) + " and dtype " +
                   std::string(c10::toString(labels.scalar_type())));
    }
    if (num_classes <= 0) detail::fail(std::string(fn) + " num_classes must be positive, got " +
                                       std::to_string(num_classes));
    const int64_t n = labels.size(0);
    const at::Tensor y = labels.to(at::kLong).contiguous();
    const int64_t* yp = y.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      if (yp[i] >= num_classes) {
        detail::fail(std::string(fn) + " labels must be smaller than num_classes (" + std::to_string(num_classes) +
                     "), got " + std::to_string(yp[i]));
      }
    }
    float keep = 1.0f;
    float take = 0.0f;
    const int64_t* perm = nullptr;
    if constexpr (has<stage::MixUp>) {
      perm = checked_perm(n);
      keep = static_cast<float>(1.0 - std::get<stage::MixUp>(stages_).mixing);
      take = static_cast<float>(std::get<stage::MixUp>(stages_).mixing);
    }
    double s = 0.0;
    if constexpr (has<stage::LabelSmoothing>) {
      s = std::get<stage::LabelSmoothing>(stages_).smoothing;
      if (!(s >= 0.0 && s <= 1.0)) {
        detail::fail(std::string(fn) + " smoothing must be in [0, 1], got " + functional::detail::num(s));
      }
    }
    const int64_t* cut = nullptr;
    float own = 1.0f;
    if constexpr (has<stage::CutMix>) {
      if (last_image_size_.first <= 0)
        detail::fail(std::string(fn) + " CutMix targets need the image size: transform the images first or call "
                     "set_image_size(H, W)");
      const auto& box = std::get<stage::CutMix>(stages_).box;
      functional::detail::check_bbox(box, last_image_size_.first, last_image_size_.second, fn);
      cut = checked_indices(std::get<stage::CutMix>(stages_).indices, n, cut_perm_, "CutMix indices");
      own = static_cast<float>(functional::cutmix_area(last_image_size_.first, last_image_size_.second, box));
    }
    const float on_scale = static_cast<float>(1.0 - s);
    const float off = static_cast<float>(s / static_cast<double>(num_classes));
    if (!(target_buffer_.defined() && target_buffer_.size(0) == n && target_buffer_.size(1) == num_classes)) {
      target_buffer_ = at::empty({n, num_classes}, at::TensorOptions().dtype(at::kFloat));
    }
    float* t = target_buffer_.data_ptr<float>();
    const int64_t grain = std::max<int64_t>(1, 32768 / num_classes);
    // t(i): smoothed one-hot of y[i], mixed with that of its MixUp partner.
    const auto mixed = [&](int64_t i, int64_t k) {
      const float a = (k == yp[i] ? 1.0f : 0.0f) * on_scale + off;
      if (!perm) return a;
      const float b = (k == yp[perm[i]] ? 1.0f : 0.0f) * on_scale + off;
      return a * keep + b * take;
    };
    at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float* row = t + i * num_classes;
        for (int64_t k = 0; k < num_classes; ++k)
          row[k] = cut ? own * mixed(i, k) + (1.0f - own) * mixed(cut[i], k) : mixed(i, k);
      }
    });
    return target_buffer_;
  }

  /// Sets the image size CutMix's target weights are computed for (otherwise the last transformed batch's).
  void set_image_size(int64_t height, int64_t width) {
    if (height <= 0 || width <= 0)
      detail::fail("fused_batch_transform image size must be positive, got " + std::to_string(height) + "x" +
                   std::to_string(width));
    last_image_size_ = {height, width};
  }

  /// Images and targets in one call: {transform_input(input, out_dtype), transform_target(labels, num_classes)}.
  FusedBatchOutput operator()(const at::Tensor& input, const at::Tensor& labels, int64_t num_classes,
                              at::ScalarType out_dtype = at::kFloat) {
    if (input.defined() && labels.defined() && input.dim() >= 1 && labels.dim() >= 1 &&
        input.size(0) != labels.size(0)) {
      detail::fail("fused_batch_transform input and labels must have the same batch size, got " +
                   std::to_string(input.size(0)) + " and " + std::to_string(labels.size(0)));
    }
    at::Tensor images = transform_input(input, out_dtype);
    at::Tensor targets = transform_target(labels, num_classes);
    return FusedBatchOutput{std::move(images), std::move(targets)};
  }

 private:
  static bool is_channels_last(const at::Tensor& x) {
    return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  }

  static void check_out_dtype(at::ScalarType t) {
    if (t != at::kFloat && t != at::kBFloat16 && t != at::kHalf) {
      detail::fail("fused_batch_transform output dtype must be float32, bfloat16 or float16, got " +
                   std::string(c10::toString(t)));
    }
  }

  static at::Tensor prepare_input(const at::Tensor& input) {
    constexpr const char* fn = "fused_batch_transform";
    functional::detail::check_image_batch(input, fn);
    if (!input.device().is_cpu()) detail::fail(std::string(fn) + " input must be a CPU tensor");
    if (input.scalar_type() != at::kByte && input.scalar_type() != at::kFloat) {
      detail::fail(std::string(fn) + " input must be uint8 or float32, got " +
                   std::string(c10::toString(input.scalar_type())));
    }
    if (input.is_contiguous() || input.is_contiguous(at::MemoryFormat::ChannelsLast)) return input;
    return input.contiguous();
  }

  // Validates the MixUp indices for a batch of n and returns them as int64 (kept alive in perm_).
  const int64_t* checked_perm(int64_t n)
    requires has<stage::MixUp>
  {
    const stage::MixUp& mix = std::get<stage::MixUp>(stages_);
    if (!(mix.mixing >= 0.0 && mix.mixing <= 1.0)) {
      detail::fail("fused_batch_transform mixing must be in [0, 1], got " + functional::detail::num(mix.mixing));
    }
    return checked_indices(mix.indices, n, perm_, "MixUp indices");
  }

  // Validates a permutation-like index tensor for a batch of n; returns it as int64, kept alive in `keep`.
  static const int64_t* checked_indices(const at::Tensor& indices, int64_t n, at::Tensor& keep, const char* what) {
    constexpr const char* fn = "fused_batch_transform";
    if (!indices.defined()) detail::fail(std::string(fn) + " " + what + " must be set (N entries)");
    functional::detail::check_indices(indices, n, fn, what);
    if (!indices.device().is_cpu()) detail::fail(std::string(fn) + " " + what + " must be a CPU tensor");
    keep = indices.to(at::kLong).contiguous();
    const int64_t* p = keep.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      if (p[i] < 0 || p[i] >= n) {
        detail::fail(std::string(fn) + " " + what + " must lie in [0, " + std::to_string(n) + "), got " +
                     std::to_string(p[i]));
      }
    }
    return p;
  }

  void run(const at::Tensor& x, at::Tensor& out, bool channels_last) {
    constexpr const char* fn = "fused_batch_transform";
    const int64_t n = x.size(0);
    const int64_t c = x.size(1);
    const int64_t h = x.size(2);
    const int64_t w = x.size(3);

    detail::KernelArgs args;
    bool mix = false;
    if constexpr (has<stage::MixUp>) {
      args.perm = checked_perm(n);
      args.keep = static_cast<float>(1.0 - std::get<stage::MixUp>(stages_).mixing);
      args.take = static_cast<float>(std::get<stage::MixUp>(stages_).mixing);
      mix = std::get<stage::MixUp>(stages_).mixing != 0.0;
    }

    // Hole spans per image row, in row elements (one pixel is C elements in channels-last rows).
    const int64_t per_pixel = channels_last ? c : 1;
    if constexpr (has<stage::CutMix>) {
      const auto& box = std::get<stage::CutMix>(stages_).box;
      functional::detail::check_bbox(box, h, w, fn);
      args.cut_perm = checked_indices(std::get<stage::CutMix>(stages_).indices, n, cut_perm_, "CutMix indices");
      args.box_row_begin = box.x1;
      args.box_row_end = box.x2;
      args.box_col_begin = box.y1 * per_pixel;
      args.box_col_end = box.y2 * per_pixel;
      last_area_ = functional::cutmix_area(h, w, box);
      last_image_size_ = {h, w};
    }
    span_offsets_.assign(static_cast<size_t>(h + 1), 0);
    spans_.clear();
    if constexpr (has<stage::CutOut>) {
      const auto& holes = std::get<stage::CutOut>(stages_).holes;
      for (const auto& hole : holes) {
        const bool ok = 0 <= hole.y1 && hole.y1 <= hole.y2 && hole.y2 <= h && 0 <= hole.x1 && hole.x1 <= hole.x2 &&
                        hole.x2 <= w;
        if (!ok) {
          detail::fail(std::string(fn) + " hole must satisfy 0 <= y1 <= y2 <= " + std::to_string(h) +
                       " and 0 <= x1 <= x2 <= " + std::to_string(w) + ", got (" + std::to_string(hole.y1) + ", " +
                       std::to_string(hole.x1) + ", " + std::to_string(hole.y2) + ", " + std::to_string(hole.x2) +
                       ")");
        }
      }
      for (int64_t row = 0; row < h; ++row) {
        intervals_.clear();
        for (const auto& hole : holes) {
          if (hole.y1 <= row && row < hole.y2 && hole.x1 < hole.x2) intervals_.emplace_back(hole.x1, hole.x2);
        }
        std::sort(intervals_.begin(), intervals_.end());
        const size_t first = spans_.size();
        for (const auto& [b, e] : intervals_) {
          if (spans_.size() > first && b <= spans_.back() / per_pixel) {
            spans_.back() = std::max(spans_.back(), e * per_pixel);
          } else {
            spans_.push_back(b * per_pixel);
            spans_.push_back(e * per_pixel);
          }
        }
        span_offsets_[static_cast<size_t>(row + 1)] = static_cast<int64_t>(spans_.size() / 2);
      }
    }

    // Normalisation constants laid out like an image row: per channel a W-long row (NCHW) or one interleaved
    // W·C row (channels-last).
    bool norm = false;
    if constexpr (has<stage::Normalize>) {
      const auto& nm = std::get<stage::Normalize>(stages_);
      if (static_cast<int64_t>(nm.mean.size()) != c || static_cast<int64_t>(nm.stddev.size()) != c) {
        detail::fail(std::string(fn) + " mean and std must have one entry per channel (" + std::to_string(c) +
                     "), got " + std::to_string(nm.mean.size()) + " and " + std::to_string(nm.stddev.size()));
      }
      for (int64_t ch = 0; ch < c; ++ch) {
        const double sd = nm.stddev[static_cast<size_t>(ch)];
        if (!(std::isfinite(sd) && sd != 0.0) || !std::isfinite(nm.mean[static_cast<size_t>(ch)])) {
          detail::fail(std::string(fn) + " mean must be finite and std finite and non-zero, got mean " +
                       functional::detail::num(nm.mean[static_cast<size_t>(ch)]) + " and std " +
                       functional::detail::num(sd) + " for channel " + std::to_string(ch));
        }
      }
      mean_pattern_.resize(static_cast<size_t>(c * w));
      inv_std_pattern_.resize(static_cast<size_t>(c * w));
      for (int64_t ch = 0; ch < c; ++ch) {
        const float mean_c = static_cast<float>(nm.mean[static_cast<size_t>(ch)]);
        const float inv_c = static_cast<float>(1.0 / nm.stddev[static_cast<size_t>(ch)]);
        for (int64_t col = 0; col < w; ++col) {
          const size_t idx = static_cast<size_t>(channels_last ? col * c + ch : ch * w + col);
          mean_pattern_[idx] = mean_c;
          inv_std_pattern_[idx] = inv_c;
        }
      }
      norm = true;
    } else {
      // Unused by the kernel, but keeps every pattern pointer it forms valid.
      mean_pattern_.assign(static_cast<size_t>(c * w), 0.0f);
      inv_std_pattern_.assign(static_cast<size_t>(c * w), 1.0f);
    }
    if (x.numel() == 0) return;

    args.in = x.data_ptr();
    args.out = out.data_ptr();
    args.channels_last = channels_last;
    args.rows = channels_last ? n * h : n * c * h;
    args.row_len = channels_last ? w * c : w;
    args.rows_per_sample = channels_last ? h : c * h;
    args.height = h;
    args.channels = c;
    args.mean_pattern = mean_pattern_.data();
    args.inv_std_pattern = inv_std_pattern_.data();
    args.span_offsets = span_offsets_.data();
    args.spans = spans_.data();

    const bool u8 = x.scalar_type() == at::kByte;
    const auto launch = [&]<class In>() {
      switch (out.scalar_type()) {
        case at::kBFloat16: detail::dispatch_flags<In, c10::BFloat16>(args, mix, norm); break;
        case at::kHalf: detail::dispatch_flags<In, c10::Half>(args, mix, norm); break;
        default: detail::dispatch_flags<In, float>(args, mix, norm); break;
      }
    };
    if (u8) {
      launch.template operator()<uint8_t>();
    } else {
      launch.template operator()<float>();
    }
  }

  at::Tensor image_buffer_;
  at::Tensor target_buffer_;
  at::Tensor perm_;
  at::Tensor cut_perm_;
  double last_area_ = 1.0;
  std::pair<int64_t, int64_t> last_image_size_{0, 0};
  std::vector<int64_t> span_offsets_;
  std::vector<int64_t> spans_;
  std::vector<std::pair<int64_t, int64_t>> intervals_;
  std::vector<float> mean_pattern_;
  std::vector<float> inv_std_pattern_;
};

}  // namespace composer::kernels
