#pragma once
/// \file
/// The value types the image stages carry: CutMix's box (`stage::BBox`) and CutOut's holes (`stage::CutoutHole`),
/// with the checks that they fit an image. Plain data, torch-free and nvcc-safe, so that the stages
/// (`batch_stages.hpp`), both fused kernels and the functional transforms (`functional::cutmix_batch`,
/// `functional::cutout_batch`, which name them `functional::BBox` and `functional::CutoutHole`) share them.

#include <cstdint>
#include <string>

#include <composer/core/errors.hpp>

namespace composer::kernels::stage {

/// The pasted CutMix box, in Composer's tuple order (x1, y1, x2, y2). As in Composer, the "x" coordinates index
/// dim 2 of an (N, C, D2, D3) batch (the rows, H) and the "y" coordinates index dim 3 (the columns, W); the box
/// covers `input[:, :, x1:x2, y1:y2]` (half-open ranges).
/// Composer counterpart: the `bbox` tuple of `composer.functional.cutmix_batch`.
struct BBox {
  int64_t x1;  ///< first row (dim 2), inclusive
  int64_t y1;  ///< first column (dim 3), inclusive
  int64_t x2;  ///< last row (dim 2), exclusive
  int64_t y2;  ///< last column (dim 3), exclusive
  bool operator==(const BBox&) const = default;
};

/// One rectangular CutOut hole: rows [y1, y2) of dim −2 (H) and columns [x1, x2) of dim −1 (W), half-open.
/// Composer counterpart: one square of the mask `composer.algorithms.cutout.cutout._generate_mask` cuts.
struct CutoutHole {
  int64_t y1;  ///< first row, inclusive
  int64_t x1;  ///< first column, inclusive
  int64_t y2;  ///< last row, exclusive
  int64_t x2;  ///< last column, exclusive
  bool operator==(const CutoutHole&) const = default;
};

/// Throws std::invalid_argument (message starting with `fn`) unless the box lies inside a D2×D3 image:
/// 0 ≤ x1 ≤ x2 ≤ D2 and 0 ≤ y1 ≤ y2 ≤ D3 (an empty box is allowed).
inline void check_bbox(const BBox& b, int64_t dim2, int64_t dim3, const char* fn) {
  const bool ok = 0 <= b.x1 && b.x1 <= b.x2 && b.x2 <= dim2 && 0 <= b.y1 && b.y1 <= b.y2 && b.y2 <= dim3;
  if (!ok) {
    checks::fail(std::string(fn) + " bbox must satisfy 0 <= x1 <= x2 <= " + std::to_string(dim2) +
                 " and 0 <= y1 <= y2 <= " + std::to_string(dim3) + ", got (" + std::to_string(b.x1) + ", " +
                 std::to_string(b.y1) + ", " + std::to_string(b.x2) + ", " + std::to_string(b.y2) + ")");
  }
}

/// Throws std::invalid_argument (message starting with `fn`) unless the hole lies inside an H×W image:
/// 0 ≤ y1 ≤ y2 ≤ H and 0 ≤ x1 ≤ x2 ≤ W (an empty hole is allowed).
inline void check_hole(const CutoutHole& hole, int64_t height, int64_t width, const char* fn) {
  const bool ok = 0 <= hole.y1 && hole.y1 <= hole.y2 && hole.y2 <= height && 0 <= hole.x1 && hole.x1 <= hole.x2 &&
                  hole.x2 <= width;
  if (!ok) {
    checks::fail(std::string(fn) + " hole must satisfy 0 <= y1 <= y2 <= " + std::to_string(height) +
                 " and 0 <= x1 <= x2 <= " + std::to_string(width) + ", got (" + std::to_string(hole.y1) + ", " +
                 std::to_string(hole.x1) + ", " + std::to_string(hole.y2) + ", " + std::to_string(hole.x2) + ")");
  }
}

}  // namespace composer::kernels::stage
