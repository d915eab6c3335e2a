#pragma once
/// \file
/// The per-batch parameters of the fusable after-dataloader transforms ("stages"), shared by the CPU kernel
/// (`fused_batch_cpu.hpp`) and the CUDA kernel (`fused_batch_cuda.cuh`). Plain data plus the sampling rules of
/// Composer's methods; nothing here depends on a device or an instruction set, so it compiles under nvcc too.
///
/// Every stage has a rank `order`: its position in the fixed sequence in which a fused pass applies them,
///
///     MixUp → CutMix → CutOut → Normalize      (on the images)
///     LabelSmoothing                           (on the dense targets only)
///
/// This is the one statement of what the stages compute; the kernels, `apply_stage.hpp` and the tests refer to it.
/// Per image element x[n,c,h,w] of an [N, C, H, W] batch, with π the partner indices of a stage:
///
///     v          = s·x[n,c,h,w]          s = 1/255 for uint8 input, 1 for floating point input
///     MixUp      v ← (1 − m)·v + m·v[π(n),c,h,w]
///     CutMix     v ← v[π'(n),c,h,w]      if (h, w) is inside the box (x1 ≤ h < x2, y1 ≤ w < y2)
///     CutOut     v ← 0                   if (h, w) is inside any hole (y1 ≤ h < y2, x1 ≤ w < x2)
///     Normalize  out = (v − mean[c]) / stddev[c]
///
/// where each arrow acts on the whole batch the stages before produced (v[k] is image k as they made it), which
/// is exactly the eager sequence
///
///     x = x.to(float) (/ 255 for uint8)
///     x = functional::mixup_batch(x, y, m, π).input_mixed
///     x = functional::cutmix_batch(x, y, box, π').input_mixed
///     x = functional::cutout_batch(x, holes)
///     x = (x − mean) / std                   (mean, std broadcast over dim 1)
///
/// So with MixUp and CutMix a pasted pixel is the partner's *mixed* pixel, (1 − m)·x[π'(n)] + m·x[π(π'(n))].
/// CutOut zeroes before normalisation (a hole holds −mean[c]/std[c] in the output) and writes by a fill, so a hole
/// is +0 before normalisation whatever the input held there (inf and NaN included). A fused pass does not read
/// the MixUp partner when m = 0, nor the CutMix partner outside the box, so non-finite values there do not turn
/// into NaN the way eager 0·inf does.
///
/// The dense targets are float32 [N, K]:
///
///     t(n)    = (1 − m)·smooth(onehot(y[n])) + m·smooth(onehot(y[π(n)]))     (m = 0 without MixUp)
///     y_dense = area·t(n) + (1 − area)·t(π'(n))                              (CutMix only)
///
/// with smooth(e) = (1 − s)·e + s/K (s = 0 without LabelSmoothing) and area = 1 − |box|/(H·W), Composer's adjusted
/// λ, for the image size of the last image call (or `set_image_size`): smooth_labels applied to the eager mixed
/// targets. Negative labels give an all-zero one-hot row before smoothing, as in functional::ensure_targets_one_hot.
///
/// Numerics of a fused pass: float32 throughout, a multiply by 1/255 for uint8, the mix as one fused multiply-add
/// and the normalisation as (v − mean)·(1/std): equal to the eager sequence to a few ulp, not bit for bit; float16
/// and bfloat16 output is rounded once (to nearest even) from the float32 result.

#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

// (the functional headers for the draws of `sample()`; the value types come from stage_types.hpp)
#include <composer/functional/cutmix.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/kernels/stage_types.hpp>

namespace composer::kernels::stage {

/// MixUp: v ← (1 − m)·v + m·v[π(n)], targets mixed with the same m and π.
/// Composer counterpart: `composer.functional.mixup_batch(..., mixing=m, indices=π)`.
struct MixUp {
  static constexpr int order = 0;
  double mixing = 0.0;  ///< m ∈ [0, 1], the weight of the permuted partner (Composer's convention, m ≤ 0.5 when drawn)
  at::Tensor indices;   ///< π, a 1-D int64 tensor with N entries in [0, N)

  /// Draws m and π as Composer's MixUp does (the coefficient first, then the permutation) from the global torch
  /// generator: m = min(λ, 1 − λ), λ ~ Beta(α, α); π = randperm(n).
  [[nodiscard]] static MixUp sample(int64_t n, double alpha = 0.2) {
    MixUp s;
    s.mixing = functional::sample_mixup_coef(alpha);
    s.indices = functional::random_permutation(n);
    return s;
  }
};

/// CutMix: inside the box every image takes its partner's pixels, v ← v[π(n)]; targets are mixed with the
/// partner's with weight 1 − area, area being the fraction of the image left its own.
/// Composer counterpart: `composer.functional.cutmix_batch(..., bbox=box, indices=π)`.
struct CutMix {
  static constexpr int order = 1;
  BBox box{0, 0, 0, 0};  ///< rows [x1, x2) of dim 2, columns [y1, y2) of dim 3 (Composer's convention)
  at::Tensor indices;                ///< π, a 1-D int64 tensor with N entries in [0, N)

  /// Whether pixel (h, w) is pasted from the partner.
  [[nodiscard]] bool covers(int64_t h, int64_t w) const {
    return box.x1 <= h && h < box.x2 && box.y1 <= w && w < box.y2;
  }
  /// The fraction of each image that stays its own: 1 − |box| / (H·W) (Composer's adjusted λ).
  [[nodiscard]] double area(int64_t height, int64_t width) const {
    return functional::cutmix_area(height, width, box);
  }

  /// Draws the permutation, λ and the box in the order functional::cutmix_batch does: π = randperm(n),
  /// λ ~ Beta(α, α), then the box of area (1 − λ)·H·W (clipped at the borders).
  [[nodiscard]] static CutMix sample(int64_t n, int64_t height, int64_t width, double alpha = 1.0,
                                     bool uniform_sampling = false) {
    CutMix s;
    s.indices = functional::random_permutation(n);
    const double lambda = functional::sample_cutmix_coef(alpha);
    s.box = functional::cutmix_rand_bbox(height, width, lambda, std::nullopt, std::nullopt, uniform_sampling);
    return s;
  }
};

/// CutOut: v ← 0 inside any hole, the same holes for the whole batch.
/// Composer counterpart: `composer.functional.cutout_batch` (explicit-holes form: functional::cutout_batch(x, holes)).
struct CutOut {
  static constexpr int order = 2;
  std::vector<CutoutHole> holes;  ///< half-open [y1, y2) × [x1, x2), each inside the image

  /// Whether pixel (h, w) is cut.
  [[nodiscard]] bool covers(int64_t h, int64_t w) const {
    for (const auto& hole : holes) {
      if (hole.y1 <= h && h < hole.y2 && hole.x1 <= w && w < hole.x2) return true;
    }
    return false;
  }

  /// Draws holes as functional::cutout_batch(x, num_holes, length, uniform_sampling) does.
  [[nodiscard]] static CutOut sample(int64_t height, int64_t width, int64_t num_holes = 1, double length = 0.5,
                                     bool uniform_sampling = false) {
    CutOut s;
    s.holes = functional::sample_cutout_holes(height, width, num_holes,
                                              functional::cutout_length_pixels(height, width, length),
                                              uniform_sampling);
    return s;
  }
};

/// Per-channel normalisation: out = (v − mean[c]) / stddev[c], applied after the mixing stages and CutOut.
/// Composer counterpart: the `Normalize` step of Composer's data pipelines (torchvision `Normalize`).
struct Normalize {
  static constexpr int order = 3;
  std::vector<double> mean;             ///< C entries
  std::vector<double> stddev;           ///< C entries, finite and non-zero
  at::ScalarType dtype = at::kFloat;    ///< the output dtype: float32, bfloat16 or float16
};

/// Label smoothing of the dense targets: smooth(t) = (1 − s)·t + s/K. Acts on targets only.
/// Composer counterpart: `composer.functional.smooth_labels(logits, target, smoothing)`.
struct LabelSmoothing {
  static constexpr int order = 4;
  double smoothing = 0.1;  ///< s ∈ [0, 1]
};

}  // namespace composer::kernels::stage

namespace composer::kernels {

namespace detail {

/// Whether `S` is one of the five stage types.
template <class S>
inline constexpr bool is_stage_v = std::is_same_v<S, stage::MixUp> || std::is_same_v<S, stage::CutMix> ||
                                   std::is_same_v<S, stage::CutOut> || std::is_same_v<S, stage::Normalize> ||
                                   std::is_same_v<S, stage::LabelSmoothing>;

/// Whether the stages appear in their fixed order (MixUp, CutMix, CutOut, Normalize, LabelSmoothing), each at most
/// once.
template <class... S>
constexpr bool stages_in_order() {
  int prev = -1;
  bool ok = true;
  ((ok = ok && (S::order > prev), prev = S::order), ...);
  (void)prev;
  return ok;
}

}  // namespace detail

/// The parameters of a fused batch transform's stages, one object per stage type, read and set with `get<S>()`:
/// the part the CPU (`kernels::FusedBatchTransform`) and CUDA (`kernels::cuda::FusedBatchTransform`) transforms
/// share. Composer counterpart: the hyperparameters its MixUp, CutMix, CutOut and LabelSmoothing algorithms draw
/// or hold for a batch.
template <class... Stages>
class StageParameters {
  static_assert((detail::is_stage_v<Stages> && ...),
                "FusedBatchTransform stages must be stage::MixUp, stage::CutMix, stage::CutOut, stage::Normalize or "
                "stage::LabelSmoothing");
  static_assert(detail::stages_in_order<Stages...>(),
                "FusedBatchTransform stages must appear at most once each, in the order MixUp, CutMix, CutOut, "
                "Normalize, LabelSmoothing");

 public:
  /// Whether stage S is part of this transform.
  template <class S>
  static constexpr bool has = (std::is_same_v<S, Stages> || ...);

  StageParameters() = default;
  /// Starts with the given stage parameters (one per stage of the pack, in the pack's order).
  explicit StageParameters(Stages... stages)
    requires(sizeof...(Stages) > 0)
      : stages_(std::move(stages)...) {}

  /// The parameters of stage S (set them before a call).
  template <class S>
  [[nodiscard]] S& get() {
    static_assert(has<S>, "this FusedBatchTransform has no such stage");
    return std::get<S>(stages_);
  }
  /// \copydoc get()
  template <class S>
  [[nodiscard]] const S& get() const {
    static_assert(has<S>, "this FusedBatchTransform has no such stage");
    return std::get<S>(stages_);
  }

 protected:
  std::tuple<Stages...> stages_;  ///< one parameter object per stage, in the pack's order
};

}  // namespace composer::kernels
