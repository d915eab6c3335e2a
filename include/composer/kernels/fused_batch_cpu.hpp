#pragma once
/// \file
/// A fused CPU batch transform: MixUp, CutMix, CutOut, per-channel normalisation and the dtype conversion of an
/// image batch in one pass over memory, plus the matching mixed and smoothed dense targets.
///
/// Semantics and numerics: those of the stages, stated once in `batch_stages.hpp` (per element, the eager sequence
/// mixup_batch → cutmix_batch → cutout_batch → (x − mean)/std on uint8 (scaled by 1/255) or float32 input, to a
/// few ulp, and the mixed, smoothed dense targets). The argument checks and the packing of the stage parameters
/// are shared with the CUDA kernel (`host_checks.hpp`).
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

#include <composer/core/argument_checks.hpp>
#include <composer/kernels/batch_stages.hpp>
#include <composer/kernels/host_checks.hpp>

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
/// most once); the order in which they act is always the one `batch_stages.hpp` states. The kernel is
/// instantiated for the input dtype (uint8, float32), output dtype (float32, bfloat16, float16) and which of the pixel
/// stages are present; a MixUp stage with m = 0 runs the no-mix instantiation.
template <class... Stages>
class FusedBatchTransform : public StageParameters<Stages...> {
  using Base = StageParameters<Stages...>;
  using Base::stages_;

  static constexpr const char* kFn = "fused_batch_transform";

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
    host::check_out_dtype(out_dtype, kFn);
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
    host::check_out_buffer(x, out, cl, kFn);
    run(x, out, cl);
  }

  /// Dense targets [N, K] float32 into the internal buffer (reused across calls; overwritten by the next call), as
  /// `batch_stages.hpp` states them.
  /// \param labels 1-D integer CPU tensor of class indices (negative: ignored row), N entries.
  /// \throws std::invalid_argument for bad labels, num_classes ≤ 0, a label ≥ num_classes or bad stage parameters.
  at::Tensor transform_target(const at::Tensor& labels, int64_t num_classes) {
    host::check_labels(labels, num_classes, kFn);
    host::check_device_type(labels, c10::DeviceType::CPU, kFn, "labels");
    const int64_t n = labels.size(0);
    const at::Tensor y = labels.to(at::kLong).contiguous();
    const int64_t* yp = y.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      if (yp[i] >= num_classes) host::fail_label_value(kFn, num_classes, yp[i]);
    }
    host::MixWeights mix;
    const int64_t* perm = nullptr;
    if constexpr (has<stage::MixUp>) {
      mix = host::mix_weights(std::get<stage::MixUp>(stages_).mixing, kFn);
      perm = checked_indices(std::get<stage::MixUp>(stages_).indices, n, perm_, "MixUp indices");
    }
    host::TargetSmoothing smooth;
    if constexpr (has<stage::LabelSmoothing>) {
      smooth = host::target_smoothing(std::get<stage::LabelSmoothing>(stages_).smoothing, num_classes, kFn);
    }
    const int64_t* cut = nullptr;
    float own = 1.0f;
    if constexpr (has<stage::CutMix>) {
      own = host::cutmix_target_area(std::get<stage::CutMix>(stages_), last_image_size_.first,
                                     last_image_size_.second, kFn);
      cut = checked_indices(std::get<stage::CutMix>(stages_).indices, n, cut_perm_, "CutMix indices");
    }
    const float on_scale = smooth.on_scale;
    const float off = smooth.off;
    const float keep = mix.keep;
    const float take = mix.take;
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
    host::check_image_size(height, width, kFn);
    last_image_size_ = {height, width};
  }

  /// Images and targets in one call: {transform_input(input, out_dtype), transform_target(labels, num_classes)}.
  FusedBatchOutput operator()(const at::Tensor& input, const at::Tensor& labels, int64_t num_classes,
                              at::ScalarType out_dtype = at::kFloat) {
    if (input.defined() && labels.defined() && input.dim() >= 1 && labels.dim() >= 1) {
      host::check_same_batch_size(input, labels, kFn);
    }
    at::Tensor images = transform_input(input, out_dtype);
    at::Tensor targets = transform_target(labels, num_classes);
    return FusedBatchOutput{std::move(images), std::move(targets)};
  }

 private:
  static bool is_channels_last(const at::Tensor& x) {
    return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  }

  static at::Tensor prepare_input(const at::Tensor& input) {
    checks::check_image_batch(input, kFn);
    host::check_device_type(input, c10::DeviceType::CPU, kFn, "input");
    if (input.scalar_type() != at::kByte && input.scalar_type() != at::kFloat) {
      checks::fail(std::string(kFn) + " input must be uint8 or float32, got " +
                   std::string(c10::toString(input.scalar_type())));
    }
    if (input.is_contiguous() || input.is_contiguous(at::MemoryFormat::ChannelsLast)) return input;
    return input.contiguous();
  }

  // Validates a stage's index tensor for a batch of n; returns it as int64, kept alive in `keep`.
  static const int64_t* checked_indices(const at::Tensor& indices, int64_t n, at::Tensor& keep, const char* what) {
    host::check_stage_indices(indices, n, at::Device(at::kCPU), kFn, what);
    keep = indices.to(at::kLong).contiguous();
    const int64_t* p = keep.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      if (p[i] < 0 || p[i] >= n) host::fail_index_value(kFn, what, n, p[i]);
    }
    return p;
  }

  void run(const at::Tensor& x, at::Tensor& out, bool channels_last) {
    const int64_t n = x.size(0);
    const int64_t c = x.size(1);
    const int64_t h = x.size(2);
    const int64_t w = x.size(3);

    detail::KernelArgs args;
    bool mix = false;
    if constexpr (has<stage::MixUp>) {
      const host::MixWeights weights = host::mix_weights(std::get<stage::MixUp>(stages_).mixing, kFn);
      args.perm = checked_indices(std::get<stage::MixUp>(stages_).indices, n, perm_, "MixUp indices");
      args.keep = weights.keep;
      args.take = weights.take;
      mix = weights.active;
    }

    // Hole spans per image row, in row elements (one pixel is C elements in channels-last rows).
    const int64_t per_pixel = channels_last ? c : 1;
    if constexpr (has<stage::CutMix>) {
      const auto& box = std::get<stage::CutMix>(stages_).box;
      stage::check_bbox(box, h, w, kFn);
      args.cut_perm = checked_indices(std::get<stage::CutMix>(stages_).indices, n, cut_perm_, "CutMix indices");
      args.box_row_begin = box.x1;
      args.box_row_end = box.x2;
      args.box_col_begin = box.y1 * per_pixel;
      args.box_col_end = box.y2 * per_pixel;
      last_image_size_ = {h, w};
    }
    span_offsets_.assign(static_cast<size_t>(h + 1), 0);
    spans_.clear();
    if constexpr (has<stage::CutOut>) {
      const auto& holes = std::get<stage::CutOut>(stages_).holes;
      host::check_holes(holes, h, w, kFn);
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
      host::check_normalize(nm.mean, nm.stddev, c, kFn);
      mean_pattern_.resize(static_cast<size_t>(c * w));
      inv_std_pattern_.resize(static_cast<size_t>(c * w));
      for (int64_t ch = 0; ch < c; ++ch) {
        const host::ChannelAffine affine = host::channel_affine(nm.mean, nm.stddev, static_cast<size_t>(ch));
        for (int64_t col = 0; col < w; ++col) {
          const size_t idx = static_cast<size_t>(channels_last ? col * c + ch : ch * w + col);
          mean_pattern_[idx] = affine.mean;
          inv_std_pattern_[idx] = affine.inv_std;
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
  std::pair<int64_t, int64_t> last_image_size_{0, 0};
  std::vector<int64_t> span_offsets_;
  std::vector<int64_t> spans_;
  std::vector<std::pair<int64_t, int64_t>> intervals_;
  std::vector<float> mean_pattern_;
  std::vector<float> inv_std_pattern_;
};

}  // namespace composer::kernels
