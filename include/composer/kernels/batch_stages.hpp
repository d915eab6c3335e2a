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
/// Per image element x[n,c,h,w] (scaled by 1/255 first for uint8 input), with π the partner indices:
///
///     MixUp      v = (1 − m)·v + m·v[π(n),c,h,w]
///     CutMix     v = v[π'(n),c,h,w]      if (h, w) is inside the box (rows x1..x2, columns y1..y2)
///     CutOut     v = 0                   if (h, w) is inside any hole
///     Normalize  v = (v − mean[c]) / stddev[c]
///
/// where v[k] is image k as the stages before have made it (with MixUp and CutMix, a pasted pixel is the
/// partner's mixed pixel, as the eager mixup-then-cutmix sequence gives), and the dense targets are mixed with the partner's with weight m (MixUp) or 1 − area (CutMix), then smoothed.

#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/functional/cutmix.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/functional/mixup.hpp>

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
  functional::BBox box{0, 0, 0, 0};  ///< rows [x1, x2) of dim 2, columns [y1, y2) of dim 3 (Composer's convention)
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
  std::vector<functional::CutoutHole> holes;  ///< half-open [y1, y2) × [x1, x2), each inside the image

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
