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
  std::vector<double> mean;    ///< C entries
  std::vector<double> stddev;  ///< C entries, finite and non-zero
};

/// Label smoothing of the dense targets: smooth(t) = (1 − s)·t + s/K. Acts on targets only.
/// Composer counterpart: `composer.functional.smooth_labels(logits, target, smoothing)`.
struct LabelSmoothing {
  static constexpr int order = 4;
  double smoothing = 0.1;  ///< s ∈ [0, 1]
};

}  // namespace composer::kernels::stage
