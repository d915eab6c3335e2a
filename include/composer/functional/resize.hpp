#pragma once
/// \file
/// The per-batch step of progressive resizing (Composer's ProgressiveResizing, after the FixRes observation of
/// Touvron et al., arXiv:1906.06423, that training at lower resolution and finishing at full resolution works)
/// as a free function.

#include <composer/functional/common.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace composer::functional {

/// Top-left corner of a crop window, in input pixels: rows start at `top` (dim 2), columns at `left` (dim 3).
struct CropOffset {
  int64_t top;
  int64_t left;
  bool operator==(const CropOffset&) const = default;
};

namespace detail {

enum class ResizeMode { resize, crop };

inline ResizeMode parse_resize_mode(std::string_view mode) {
  std::string lower(mode);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "resize") return ResizeMode::resize;
  if (lower == "crop") return ResizeMode::crop;
  fail("resize_batch mode must be 'resize' or 'crop', got '" + std::string(mode) + "'");
}

/// Output size of `F.interpolate(scale_factor=s)`: floor(size·s), computed in double.
inline int64_t scaled_size(int64_t size, double scale_factor) {
  return detail::py_int(static_cast<double>(size) * scale_factor);
}

inline void check_resize_args(const at::Tensor& input, const at::Tensor& target, double scale_factor,
                              bool resize_targets) {
  constexpr const char* fn = "resize_batch";
  if (!(scale_factor > 0.0) || !std::isfinite(scale_factor)) {
    fail("resize_batch scale_factor must be a finite value > 0, got " + num(scale_factor));
  }
  check_image_batch(input, fn);
  check_tensor(target, fn, "target", 0);
  if (resize_targets) {
    const bool index_target = is_index_dtype(target.scalar_type());
    if (index_target ? target.dim() != 3 : target.dim() != 4) {
      fail(std::string("resize_batch with resize_targets=true needs class-index targets of shape (N, H, W) or "
                       "dense targets of shape (N, C, H, W), got ") +
           std::string(c10::toString(target.scalar_type())) + " target of shape " + shape_of(target));
    }
    if (target.size(0) != input.size(0)) {
      fail("resize_batch input and target must have the same batch size, got input shape " + shape_of(input) +
           " and target shape " + shape_of(target));
    }
  }
  if (scale_factor < 1.0) {
    const int64_t h = scaled_size(input.size(2), scale_factor);
    const int64_t w = scaled_size(input.size(3), scale_factor);
    if (h <= 0 || w <= 0) {
      fail("resize_batch scale_factor " + num(scale_factor) + " shrinks the " + std::to_string(input.size(2)) + "x" +
           std::to_string(input.size(3)) + " images to an empty " + std::to_string(h) + "x" + std::to_string(w) +
           " image");
    }
  }
}

/// Nearest-neighbour downscale of the last two dims exactly as `F.interpolate(x, scale_factor=s,
/// mode='nearest', recompute_scale_factor=False)`: output floor(H·s)×floor(W·s), source pixel
/// min(floor(dst·(1/s)), in − 1) with the scale passed through to the kernel.
inline at::Tensor nearest_downscale(const at::Tensor& x, double scale_factor) {
  const std::vector<int64_t> size{scaled_size(x.size(2), scale_factor), scaled_size(x.size(3), scale_factor)};
  return at::upsample_nearest2d(x, at::IntArrayRef(size), c10::optional<double>(scale_factor),
                                c10::optional<double>(scale_factor));
}

/// Applies `op` to the target as Composer does: class-index targets go through float32 with a channel dim added
/// and come back in their dtype; dense targets are transformed directly.
template <class Op>
at::Tensor transform_target(const at::Tensor& target, Op&& op) {
  if (is_index_dtype(target.scalar_type())) {
    return op(target.to(at::kFloat).unsqueeze(1)).squeeze(1).to(target.scalar_type());
  }
  return op(target);
}

}  // namespace detail

/// Draws Composer's random crop corner for shrinking an H×W image by `scale_factor`: with Hc = int(s·H) and
/// Wc = int(s·W), top ~ U{0, …, H − Hc − 1} and then left ~ U{0, …, W − Wc − 1}, from `torch.randint` as in
/// Composer (so the same torch seed gives the same corner; note that the last legal offset H − Hc is never drawn).
/// \throws std::invalid_argument unless 0 < scale_factor < 1 and the crop is non-empty.
[[nodiscard]] inline CropOffset sample_crop_offset(int64_t height, int64_t width, double scale_factor) {
  if (!(scale_factor > 0.0 && scale_factor < 1.0)) {
    detail::fail("sample_crop_offset scale_factor must be in (0, 1), got " + detail::num(scale_factor));
  }
  const int64_t hc = detail::scaled_size(height, scale_factor);
  const int64_t wc = detail::scaled_size(width, scale_factor);
  if (hc <= 0 || wc <= 0) {
    detail::fail("sample_crop_offset scale_factor " + detail::num(scale_factor) + " gives an empty crop of the " +
                 std::to_string(height) + "x" + std::to_string(width) + " image");
  }
  const int64_t top = detail::randint(0, height - hc);
  const int64_t left = detail::randint(0, width - wc);
  return CropOffset{top, left};
}

/// Progressive resizing's crop mode with an explicit crop corner: input[:, :, top:top+Hc, left:left+Wc] with
/// Hc = int(s·H), Wc = int(s·W) (a view, like torchvision's crop). With `resize_targets`, the target (N, H', W')
/// or (N, C, H', W') is cropped to int(s·H')×int(s·W') at the corner scaled by H'/H and W'/W (computed in float32,
/// as Composer's tensor arithmetic does). No-op (the same tensors are returned) when s ≥ 1.
/// \throws std::invalid_argument as resize_batch, and for a corner outside 0 ≤ top ≤ H − Hc, 0 ≤ left ≤ W − Wc.
[[nodiscard]] inline InputTarget resize_batch(const at::Tensor& input, const at::Tensor& target, double scale_factor,
                                              CropOffset offset, bool resize_targets = false) {
  detail::check_resize_args(input, target, scale_factor, resize_targets);
  if (scale_factor >= 1.0) return InputTarget{input, target};
  const int64_t h = input.size(2);
  const int64_t w = input.size(3);
  const int64_t hc = detail::scaled_size(h, scale_factor);
  const int64_t wc = detail::scaled_size(w, scale_factor);
  if (offset.top < 0 || offset.top > h - hc || offset.left < 0 || offset.left > w - wc) {
    detail::fail("resize_batch crop offset must satisfy 0 <= top <= " + std::to_string(h - hc) + " and 0 <= left <= " +
                 std::to_string(w - wc) + ", got (" + std::to_string(offset.top) + ", " + std::to_string(offset.left) +
                 ")");
  }
  at::Tensor x = input.slice(2, offset.top, offset.top + hc).slice(3, offset.left, offset.left + wc);
  if (!resize_targets) return InputTarget{std::move(x), target};
  at::Tensor y = detail::transform_target(target, [&](const at::Tensor& t) {
    const int64_t th = t.size(2);
    const int64_t tw = t.size(3);
    const int64_t thc = detail::scaled_size(th, scale_factor);
    const int64_t twc = detail::scaled_size(tw, scale_factor);
    const double height_ratio = static_cast<double>(th) / static_cast<double>(h);
    const double width_ratio = static_cast<double>(tw) / static_cast<double>(w);
    const auto top = static_cast<int64_t>(static_cast<float>(height_ratio) * static_cast<float>(offset.top));
    const auto left = static_cast<int64_t>(static_cast<float>(width_ratio) * static_cast<float>(offset.left));
    return t.slice(2, top, top + thc).slice(3, left, left + twc);
  });
  return InputTarget{std::move(x), std::move(y)};
}

/// Shrinks a batch by `scale_factor` (and optionally its targets), or leaves it alone when scale_factor ≥ 1
/// (returning the same tensor objects).
/// Composer counterpart: `composer.functional.resize_batch(input, target, scale_factor, mode='resize',
/// resize_targets=False)`.
///
/// * mode "resize": nearest-neighbour interpolation exactly as Composer's `F.interpolate(scale_factor=s,
///   mode='nearest', recompute_scale_factor=False)`; output int(s·H)×int(s·W).
/// * mode "crop": a random int(s·H)×int(s·W) window, the same for the whole batch, corner from
///   sample_crop_offset; see the CropOffset overload for the explicit form.
/// Targets are resized only when `resize_targets` is true: class indices (N, H, W) (converted through float32 as
/// in Composer) or dense (N, C, H, W) maps. The mode is case-insensitive.
/// \throws std::invalid_argument for scale_factor ≤ 0, an unknown mode, non-4-D input, a target of the wrong
///         rank or batch size when resize_targets is true, or a scale that empties the image.
[[nodiscard]] inline InputTarget resize_batch(const at::Tensor& input, const at::Tensor& target, double scale_factor,
                                              std::string_view mode = "resize", bool resize_targets = false) {
  const detail::ResizeMode m = detail::parse_resize_mode(mode);
  detail::check_resize_args(input, target, scale_factor, resize_targets);
  if (scale_factor >= 1.0) return InputTarget{input, target};
  if (m == detail::ResizeMode::crop) {
    return resize_batch(input, target, scale_factor, sample_crop_offset(input.size(2), input.size(3), scale_factor),
                        resize_targets);
  }
  at::Tensor x = detail::nearest_downscale(input, scale_factor);
  if (!resize_targets) return InputTarget{std::move(x), target};
  at::Tensor y =
      detail::transform_target(target, [&](const at::Tensor& t) { return detail::nearest_downscale(t, scale_factor); });
  return InputTarget{std::move(x), std::move(y)};
}

}  // namespace composer::functional
