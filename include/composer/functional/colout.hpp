#pragma once
/// \file
/// ColOut (Composer's "column out": drop random rows and columns of every image) as free functions.

#include <composer/functional/common.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace composer::functional {

/// The rows (dim −2) and columns (dim −1) ColOut keeps, as 1-D int64 tensors.
struct ColOutIndices {
  at::Tensor kept_rows;  ///< indices of the kept rows, ascending when drawn by sample_colout_indices
  at::Tensor kept_cols;  ///< indices of the kept columns, ascending when drawn by sample_colout_indices
};

/// Whether ColOut also drops rows/columns of the target: `true`, `false`, or "auto" (the default): only when the
/// target has more than 2 dimensions and the same trailing (H, W) as the input, i.e. a segmentation mask.
/// Composer counterpart: the `resize_target: bool | str = 'auto'` argument.
class ResizeTarget {
 public:
  enum class Mode { no, yes, automatic };

  ResizeTarget(bool resize) : mode_(resize ? Mode::yes : Mode::no) {}  // NOLINT(google-explicit-constructor)
  ResizeTarget(const char* text) : mode_(parse(text)) {}                // NOLINT(google-explicit-constructor)
  ResizeTarget(const std::string& text) : mode_(parse(text)) {}         // NOLINT(google-explicit-constructor)

  [[nodiscard]] Mode mode() const { return mode_; }

 private:
  static Mode parse(std::string_view text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower != "auto") detail::fail("resize_target must be true, false or 'auto', got '" + std::string(text) + "'");
    return Mode::automatic;
  }
  static Mode parse(const char* text) {
    if (text == nullptr) detail::fail("resize_target must be true, false or 'auto', got a null string");
    return parse(std::string_view(text));
  }

  Mode mode_;
};

namespace detail {

inline void check_colout_p(double p, const char* arg) {
  if (!(p >= 0.0 && p <= 1.0)) fail(std::string("colout_batch ") + arg + " must be in [0, 1], got " + num(p));
}

/// Keeps the given rows and columns of the last two dimensions.
inline at::Tensor colout_gather(const at::Tensor& x, const at::Tensor& rows, const at::Tensor& cols) {
  return x.index_select(-2, rows.to(x.device())).index_select(-1, cols.to(x.device()));
}

inline void check_colout_indices(const ColOutIndices& kept) {
  check_indices(kept.kept_rows, -1, "colout_batch", "kept_rows");
  check_indices(kept.kept_cols, -1, "colout_batch", "kept_cols");
}

inline bool colout_resizes_target(const at::Tensor& input, const at::Tensor& target, ResizeTarget resize_target) {
  switch (resize_target.mode()) {
    case ResizeTarget::Mode::no:
      return false;
    case ResizeTarget::Mode::yes:
      if (target.dim() < 2) {
        fail("colout_batch resize_target=true needs a target with at least 2 dimensions, got shape " +
             shape_of(target));
      }
      return true;
    case ResizeTarget::Mode::automatic:
      return target.dim() > 2 && target.size(-2) == input.size(-2) && target.size(-1) == input.size(-1);
  }
  return false;
}

}  // namespace detail

/// Draws the rows and columns ColOut keeps in an H×W image: the first int((1 − p_row)·H) entries of a random
/// permutation of the rows, sorted, then likewise for the columns. Uses `torch.randperm` as Composer does, so the
/// same torch seed gives the same rows and columns.
/// \throws std::invalid_argument for p_row or p_col outside [0, 1].
[[nodiscard]] inline ColOutIndices sample_colout_indices(int64_t height, int64_t width, double p_row = 0.15,
                                                         double p_col = 0.15) {
  detail::check_colout_p(p_row, "p_row");
  detail::check_colout_p(p_col, "p_col");
  if (height < 0 || width < 0) detail::fail("colout_batch image size must be >= 0");
  const int64_t kept_rows = detail::py_int((1.0 - p_row) * static_cast<double>(height));
  const int64_t kept_cols = detail::py_int((1.0 - p_col) * static_cast<double>(width));
  const auto opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor rows = std::get<0>(at::randperm(height, opts).slice(0, 0, kept_rows).sort());
  at::Tensor cols = std::get<0>(at::randperm(width, opts).slice(0, 0, kept_cols).sort());
  return ColOutIndices{std::move(rows), std::move(cols)};
}

/// Keeps only the given rows and columns of `input` ((C, H, W) or (N, C, H, W)), in the given order.
/// The explicit form of colout_batch: `colout_batch(x, sample_colout_indices(H, W, p_row, p_col))` equals
/// `colout_batch(x, p_row, p_col)` under the same seed.
/// \throws std::invalid_argument for a non-image input or index tensors that are not 1-D integer tensors;
///         out-of-range indices raise LibTorch's index error.
[[nodiscard]] inline at::Tensor colout_batch(const at::Tensor& input, const ColOutIndices& kept) {
  detail::check_image_or_batch(input, "colout_batch");
  detail::check_colout_indices(kept);
  return detail::colout_gather(input, kept.kept_rows, kept.kept_cols);
}

/// Explicit form of the pair overload: keeps the given rows and columns of `input`, and of `target` when
/// `resize_target` says so (otherwise the target is returned as the same tensor object).
[[nodiscard]] inline InputTarget colout_batch(const at::Tensor& input, const at::Tensor& target,
                                              const ColOutIndices& kept, ResizeTarget resize_target = "auto") {
  detail::check_image_or_batch(input, "colout_batch");
  detail::check_tensor(target, "colout_batch", "target", 0);
  detail::check_colout_indices(kept);
  at::Tensor x = detail::colout_gather(input, kept.kept_rows, kept.kept_cols);
  if (!detail::colout_resizes_target(input, target, resize_target)) return InputTarget{std::move(x), target};
  return InputTarget{std::move(x), detail::colout_gather(target, kept.kept_rows, kept.kept_cols)};
}

/// Drops the same random rows and columns from every image: keeps int((1 − p_row)·H) rows and
/// int((1 − p_col)·W) columns, in their original order.
/// Composer counterpart: `composer.functional.colout_batch(sample, p_row=0.15, p_col=0.15, resize_target='auto')`
/// with a single tensor as `sample`.
/// \param input (C, H, W) image or (N, C, H, W) batch; dtype and device preserved.
/// \throws std::invalid_argument for a non-image input or p_row / p_col outside [0, 1].
[[nodiscard]] inline at::Tensor colout_batch(const at::Tensor& input, double p_row = 0.15, double p_col = 0.15) {
  detail::check_image_or_batch(input, "colout_batch");
  return colout_batch(input, sample_colout_indices(input.size(-2), input.size(-1), p_row, p_col));
}

/// ColOut on an (input, target) pair: the input loses the same random rows and columns as in the single-tensor
/// form; the target loses the same ones when `resize_target` is true, or is "auto" and the target is a
/// same-sized mask (more than 2 dimensions, equal trailing H, W). An untouched target is returned as the same
/// tensor object.
/// Composer counterpart: `composer.functional.colout_batch((input, target), p_row, p_col, resize_target)`, which
/// returns only the input when the target is not resized; here the pair is always returned.
/// \throws std::invalid_argument for a non-image input, p values outside [0, 1], or resize_target=true with a
///         target of fewer than 2 dimensions.
[[nodiscard]] inline InputTarget colout_batch(const at::Tensor& input, const at::Tensor& target, double p_row = 0.15,
                                              double p_col = 0.15, ResizeTarget resize_target = "auto") {
  detail::check_image_or_batch(input, "colout_batch");
  detail::check_tensor(target, "colout_batch", "target", 0);
  const ColOutIndices kept = sample_colout_indices(input.size(-2), input.size(-1), p_row, p_col);
  return colout_batch(input, target, kept, resize_target);
}

}  // namespace composer::functional
