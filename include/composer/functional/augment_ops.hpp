#pragma once
/// \file
/// The image augmentation primitives of AugMix and RandAugment, on tensors, with Composer's severity mappings
/// and augmentation sets. Composer counterpart: `composer.algorithms.utils.augmentation_primitives`.
///
/// Images. Every primitive takes a single image `[C, H, W]` or a batch `[N, C, H, W]` with C = 1 or 3, either
/// uint8 (levels 0..255) or floating point (values in [0, 1]; float16, bfloat16, float32, float64), and returns
/// a new tensor of the same shape, dtype and device. The explicit-parameter forms apply the same parameters to
/// every image of a batch.
///
/// Values. Composer works on PIL images, so each operation is defined by what PIL does to an 8-bit image. On
/// uint8 tensors the primitives reproduce those integer rules (PIL's truncation after blends and bilinear
/// sampling, its 8-bit luma, its histogram equalisation and autocontrast lookup tables). On float tensors the
/// same operations are carried out on the continuous values (the 0..255 scale of PIL maps to 0..1) without
/// quantising to 256 levels, except where the operation is itself a quantisation (posterize, equalize),
/// which round the values to the nearest of the 256 levels k/255 first. Float inputs are expected to lie in
/// [0, 1]; the primitives do not check it.
///
/// Randomness. The random forms (`sample_op`, `random_op`) draw from LibTorch's global CPU generator in the
/// order Composer draws from NumPy's (level, then sign), so `torch::manual_seed` makes them reproducible; the
/// values equal Composer's in distribution only.

#include <composer/functional/common.hpp>

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace composer::functional::augment {

/// One augmentation of Composer's sets. The `*_original` entries apply the same image operation as their
/// plain counterparts and differ only in how the enhancement factor is drawn from the severity.
enum class Augmentation {
  autocontrast,         ///< stretch each channel to the full range; no parameter
  equalize,             ///< histogram equalisation per channel; no parameter
  posterize,            ///< keep the top `bits` bits of each level
  rotate,               ///< rotation by `degrees` (counter-clockwise) about the centre, bilinear, black fill
  solarize,             ///< invert the levels at or above a threshold
  shear_x,              ///< horizontal shear about the top-left corner, bilinear, black fill
  shear_y,              ///< vertical shear about the top-left corner, bilinear, black fill
  translate_x,          ///< horizontal shift, black fill
  translate_y,          ///< vertical shift, black fill
  color,                ///< saturation: blend with the grayscale image
  contrast,             ///< blend with the mean gray level
  brightness,           ///< blend with black
  sharpness,            ///< blend with a smoothed image
  color_original,       ///< `color` with the original AugMix factor 1.8·ℓ/10 + 0.1
  contrast_original,    ///< `contrast` with the original AugMix factor
  brightness_original,  ///< `brightness` with the original AugMix factor
  sharpness_original,   ///< `sharpness` with the original AugMix factor
};

/// Composer's name of an augmentation (`"shear_x"`, `"color_original"`, ...).
[[nodiscard]] constexpr std::string_view name(Augmentation augmentation) noexcept {
  switch (augmentation) {
    case Augmentation::autocontrast: return "autocontrast";
    case Augmentation::equalize: return "equalize";
    case Augmentation::posterize: return "posterize";
    case Augmentation::rotate: return "rotate";
    case Augmentation::solarize: return "solarize";
    case Augmentation::shear_x: return "shear_x";
    case Augmentation::shear_y: return "shear_y";
    case Augmentation::translate_x: return "translate_x";
    case Augmentation::translate_y: return "translate_y";
    case Augmentation::color: return "color";
    case Augmentation::contrast: return "contrast";
    case Augmentation::brightness: return "brightness";
    case Augmentation::sharpness: return "sharpness";
    case Augmentation::color_original: return "color_original";
    case Augmentation::contrast_original: return "contrast_original";
    case Augmentation::brightness_original: return "brightness_original";
    case Augmentation::sharpness_original: return "sharpness_original";
  }
  return "unknown";
}

/// Composer's `augmentation_sets["all"]`: the nine geometric and level operations and the four enhancements.
inline constexpr std::array<Augmentation, 13> all_augmentations{
    Augmentation::autocontrast, Augmentation::equalize,    Augmentation::posterize,   Augmentation::rotate,
    Augmentation::solarize,     Augmentation::shear_x,     Augmentation::shear_y,     Augmentation::translate_x,
    Augmentation::translate_y,  Augmentation::color,       Augmentation::contrast,    Augmentation::brightness,
    Augmentation::sharpness};

/// Composer's `augmentation_sets["safe"]`: "all" without color, contrast, brightness and sharpness, the
/// operations that overlap the corruptions of the ImageNet-C / CIFAR-10-C test sets.
inline constexpr std::array<Augmentation, 9> safe_augmentations{
    Augmentation::autocontrast, Augmentation::equalize, Augmentation::posterize,   Augmentation::rotate,
    Augmentation::solarize,     Augmentation::shear_x,  Augmentation::shear_y,     Augmentation::translate_x,
    Augmentation::translate_y};

/// Composer's `augmentation_sets["original"]`: "all" with the original AugMix sampling of the four enhancement
/// factors.
inline constexpr std::array<Augmentation, 13> original_augmentations{
    Augmentation::autocontrast,      Augmentation::equalize,          Augmentation::posterize,
    Augmentation::rotate,            Augmentation::solarize,          Augmentation::shear_x,
    Augmentation::shear_y,           Augmentation::translate_x,       Augmentation::translate_y,
    Augmentation::color_original,    Augmentation::contrast_original, Augmentation::brightness_original,
    Augmentation::sharpness_original};

/// The augmentation set named `"all"`, `"safe"` or `"original"`. Composer counterpart: `augmentation_sets[name]`.
/// \throws std::invalid_argument for any other name.
[[nodiscard]] inline std::span<const Augmentation> augmentation_set(std::string_view set_name) {
  if (set_name == "all") return all_augmentations;
  if (set_name == "safe") return safe_augmentations;
  if (set_name == "original") return original_augmentations;
  functional::detail::fail("augmentation_set must be one of 'all', 'safe', 'original', got '" + std::string(set_name) +
                           "'");
}

/// One drawn augmentation with its explicit parameter: the bits of posterize, the degrees of rotate, the
/// threshold of solarize, the shear factor, the shift in pixels, or the enhancement factor; unused by
/// autocontrast and equalize.
struct AugmentOp {
  Augmentation augmentation = Augmentation::autocontrast;  ///< which operation
  double magnitude = 0.0;                                  ///< its parameter
  bool operator==(const AugmentOp&) const = default;
};

namespace impl {

/// Throws unless `img` is a `[C, H, W]` or `[N, C, H, W]` image tensor with 1 or 3 channels, uint8 or floating.
inline void check_image(const at::Tensor& img, const char* fn) {
  functional::detail::check_image_or_batch(img, fn);
  const int64_t channels = img.size(-3);
  if (channels != 1 && channels != 3) {
    functional::detail::fail(std::string(fn) + " input must have 1 or 3 channels (dim -3), got " +
                             std::to_string(channels) + " in shape " + functional::detail::shape_of(img));
  }
  if (img.scalar_type() != at::kByte && !at::isFloatingType(img.scalar_type())) {
    functional::detail::fail(std::string(fn) + " input must be uint8 or floating point, got " +
                             std::string(c10::toString(img.scalar_type())));
  }
}

/// Throws unless `value` is finite.
inline void check_finite(double value, const char* fn, const char* arg) {
  if (!std::isfinite(value)) {
    functional::detail::fail(std::string(fn) + " " + arg + " must be finite, got " + functional::detail::num(value));
  }
}

/// Throws unless 0 <= severity <= 10 (Composer's range).
inline void check_severity(int severity, const char* fn) {
  if (severity < 0 || severity > 10) {
    functional::detail::fail(std::string(fn) + " severity must satisfy 0 <= severity <= 10, got " +
                             std::to_string(severity));
  }
}

inline bool is_u8(const at::Tensor& img) { return img.scalar_type() == at::kByte; }

/// Throws unless a floating-point image holds values in [0, 1] (with a margin of 1e-3 for rounding): the
/// augmentations read such values as the levels 0..255 of an 8-bit image, so a normalised image (mean 0,
/// unit variance) must be augmented before its normalisation.
inline void check_unit_range(const at::Tensor& img, const char* fn) {
  if (is_u8(img) || img.numel() == 0) return;
  const at::Tensor bounds = at::stack({img.min(), img.max()}).to(at::kDouble).cpu();
  const double lo = bounds[0].item<double>();
  const double hi = bounds[1].item<double>();
  if (!(lo >= -1e-3 && hi <= 1.0 + 1e-3)) {
    functional::detail::fail(std::string(fn) + " floating-point input must hold images in [0, 1] (augment before " +
                             "normalising), got values in [" + functional::detail::num(lo) + ", " +
                             functional::detail::num(hi) + "]");
  }
}

/// The dtype the arithmetic runs in: double for double images, float32 otherwise (uint8 levels are exact in
/// float32, which is also the precision of PIL's blends).
inline at::Tensor to_work(const at::Tensor& img) {
  return img.to(img.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
}

/// Pixel levels 0..255 of a float image: round(x·255), clamped.
inline at::Tensor float_levels(const at::Tensor& work) { return work.mul(255.0).round_().clamp_(0.0, 255.0); }

/// PIL's 8-bit cast after a blend: truncation towards zero, clamped to [0, 255].
inline at::Tensor truncate_u8(const at::Tensor& v) { return v.trunc().clamp_(0.0, 255.0); }

/// `degenerate + factor·(image − degenerate)` as PIL's `Image.blend` computes it (single precision, then
/// truncated and clamped) for uint8; clamped to [0, 1] for floats.
inline at::Tensor blend(const at::Tensor& img, const at::Tensor& work, const at::Tensor& degenerate, double factor) {
  if (is_u8(img)) {
    const at::Tensor mixed = degenerate + (work - degenerate) * static_cast<float>(factor);
    return truncate_u8(mixed).to(at::kByte);
  }
  return (degenerate + (work - degenerate) * factor).clamp_(0.0, 1.0).to(img.scalar_type());
}

/// The gray level of each pixel, shape `[..., 1, H, W]`, in the work dtype: PIL's 8-bit luma
/// (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16 for uint8, 0.299 R + 0.587 G + 0.114 B for floats; the channel
/// itself for one-channel images.
inline at::Tensor luma(const at::Tensor& img, const at::Tensor& work) {
  if (img.size(-3) == 1) return work;
  if (is_u8(img)) {
    const at::Tensor v = img.to(at::kLong);
    const at::Tensor weighted = v.select(-3, 0) * 19595 + v.select(-3, 1) * 38470 + v.select(-3, 2) * 7471 + 32768;
    return at::div(weighted, 65536, "floor").unsqueeze(-3).to(work.scalar_type());
  }
  return (work.select(-3, 0) * 0.299 + work.select(-3, 1) * 0.587 + work.select(-3, 2) * 0.114).unsqueeze(-3);
}

/// Resamples every channel with PIL's affine transform: output pixel (x, y) takes the input at
/// (a·(x+½) + b·(y+½) + c, d·(x+½) + e·(y+½) + f), bilinearly interpolated between pixel centres with edge
/// pixels replicated; points outside the image give 0. Computed in double; uint8 results are truncated.
inline at::Tensor affine(const at::Tensor& img, const std::array<double, 6>& m) {
  const int64_t h = img.size(-2);
  const int64_t w = img.size(-1);
  const auto dopt = at::TensorOptions().dtype(at::kDouble).device(img.device());
  const at::Tensor xs = at::arange(w, dopt).add_(0.5).view({1, w});
  const at::Tensor ys = at::arange(h, dopt).add_(0.5).view({h, 1});
  const at::Tensor x_in = xs * m[0] + ys * m[1] + m[2];
  const at::Tensor y_in = xs * m[3] + ys * m[4] + m[5];
  const at::Tensor inside = x_in.ge(0.0)
                                .logical_and_(x_in.lt(static_cast<double>(w)))
                                .logical_and_(y_in.ge(0.0))
                                .logical_and_(y_in.lt(static_cast<double>(h)))
                                .flatten();
  const at::Tensor xf = x_in - 0.5;
  const at::Tensor yf = y_in - 0.5;
  const at::Tensor x0 = xf.floor();
  const at::Tensor y0 = yf.floor();
  const at::Tensor dx = (xf - x0).flatten();
  const at::Tensor dy = (yf - y0).flatten();
  const at::Tensor xa = x0.clamp(0.0, static_cast<double>(w - 1)).to(at::kLong);
  const at::Tensor xb = (x0 + 1.0).clamp(0.0, static_cast<double>(w - 1)).to(at::kLong);
  const at::Tensor ya = y0.clamp(0.0, static_cast<double>(h - 1)).to(at::kLong);
  const at::Tensor yb = (y0 + 1.0).clamp(0.0, static_cast<double>(h - 1)).to(at::kLong);

  const at::Tensor flat = img.to(at::kDouble).flatten(-2);
  auto sample = [&](const at::Tensor& yi, const at::Tensor& xi) { return flat.index_select(-1, (yi * w + xi).flatten()); };
  const at::Tensor v00 = sample(ya, xa);
  const at::Tensor v01 = sample(ya, xb);
  const at::Tensor v10 = sample(yb, xa);
  const at::Tensor v11 = sample(yb, xb);
  const at::Tensor top = v00 + (v01 - v00) * dx;
  const at::Tensor bottom = v10 + (v11 - v10) * dx;
  at::Tensor out = at::where(inside, top + (bottom - top) * dy, at::zeros({}, dopt));
  if (is_u8(img)) out = truncate_u8(out);
  return out.view(img.sizes()).to(img.scalar_type());
}

}  // namespace impl

// ------------------------------------------------------------------------------------------------------------
// Explicit-parameter primitives.

/// Stretches each channel of each image linearly so that its darkest level becomes 0 and its brightest 255
/// (1 for floats); a constant channel is left as it is. uint8 follows PIL's lookup table
/// `clip(int(v·s − lo·s))` with s = 255/(hi − lo). Composer counterpart: `autocontrast` (PIL
/// `ImageOps.autocontrast`).
[[nodiscard]] inline at::Tensor autocontrast(const at::Tensor& img) {
  impl::check_image(img, "autocontrast");
  if (img.numel() == 0) return img.clone();
  const at::Tensor work = img.to(at::kDouble).flatten(-2);
  const at::Tensor lo = std::get<0>(work.min(-1, /*keepdim=*/true));
  const at::Tensor hi = std::get<0>(work.max(-1, /*keepdim=*/true));
  const at::Tensor stretchable = hi.gt(lo);
  at::Tensor out;
  if (impl::is_u8(img)) {
    const at::Tensor scale = 255.0 / (hi - lo);
    const at::Tensor offset = -lo * scale;
    out = impl::truncate_u8(work * scale + offset);
  } else {
    out = (work - lo) / (hi - lo);
  }
  out = at::where(stretchable, out, work);
  return out.view(img.sizes()).to(img.scalar_type());
}

/// Equalises the histogram of each channel of each image, as PIL's `ImageOps.equalize`: with the 256-bin
/// histogram h, the count of its last non-empty bin h_last and step = ⌊(H·W − h_last)/255⌋, level v maps to
/// min(255, ⌊(⌊step/2⌋ + Σ_{i<v} h[i]) / step⌋); a channel with a single level or step 0 is left as it is.
/// Float images are binned at round(x·255) and map to the new level / 255. Composer counterpart: `equalize`.
[[nodiscard]] inline at::Tensor equalize(const at::Tensor& img) {
  impl::check_image(img, "equalize");
  if (img.numel() == 0) return img.clone();
  const int64_t pixels = img.size(-2) * img.size(-1);
  const at::Tensor levels =
      (impl::is_u8(img) ? img.to(at::kLong) : impl::float_levels(impl::to_work(img)).to(at::kLong)).reshape({-1, pixels});
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(img.device());
  const at::Tensor hist = at::zeros({levels.size(0), 256}, lopt).scatter_add_(1, levels, at::ones_like(levels));
  const at::Tensor occupied = hist.gt(0);
  const at::Tensor last_bin = (occupied.to(at::kLong) * at::arange(256, lopt)).amax(1, /*keepdim=*/true);
  const at::Tensor last_count = hist.gather(1, last_bin);
  const at::Tensor step = at::div(pixels - last_count, 255, "floor");
  const at::Tensor unchanged = occupied.sum(1, /*keepdim=*/true).le(1).logical_or_(step.eq(0));
  const at::Tensor safe_step = step.clamp_min(1);
  const at::Tensor below = hist.cumsum(1) - hist;
  const at::Tensor lut = at::div(at::div(safe_step, 2, "floor") + below, safe_step, "floor").clamp_max_(255);
  const at::Tensor mapped = lut.gather(1, levels);
  if (impl::is_u8(img)) return at::where(unchanged, levels, mapped).view(img.sizes()).to(at::kByte);
  const at::Tensor work = impl::to_work(img).reshape({-1, pixels});
  return at::where(unchanged, work, mapped.to(work.scalar_type()) / 255.0).view(img.sizes()).to(img.scalar_type());
}

/// Keeps the top `bits` bits of each 8-bit level (v & ~(2^(8−bits) − 1)); bits = 8 is the identity, bits = 0
/// gives black. Float images are first rounded to the nearest level k/255. Composer counterpart: `posterize`
/// (PIL `ImageOps.posterize`).
/// \throws std::invalid_argument unless 0 <= bits <= 8.
[[nodiscard]] inline at::Tensor posterize(const at::Tensor& img, int bits) {
  impl::check_image(img, "posterize");
  if (bits < 0 || bits > 8) functional::detail::fail("posterize bits must satisfy 0 <= bits <= 8, got " + std::to_string(bits));
  const int64_t quantum = int64_t{1} << (8 - bits);
  if (impl::is_u8(img)) return img.bitwise_and(static_cast<int64_t>(255 & ~(quantum - 1)));
  const at::Tensor level = impl::float_levels(impl::to_work(img));
  return level.div(static_cast<double>(quantum)).floor_().mul_(static_cast<double>(quantum)).div_(255.0).to(img.scalar_type());
}

/// Inverts every level at or above `threshold` (on the 0..256 scale: v → 255 − v when v >= threshold);
/// threshold 256 is the identity, 0 inverts everything. For floats: x → 1 − x when x >= threshold/255.
/// Composer counterpart: `solarize` (PIL `ImageOps.solarize`).
/// \throws std::invalid_argument for a non-finite threshold.
[[nodiscard]] inline at::Tensor solarize(const at::Tensor& img, double threshold) {
  impl::check_image(img, "solarize");
  impl::check_finite(threshold, "solarize", "threshold");
  const at::Tensor work = impl::to_work(img);
  if (impl::is_u8(img)) return at::where(work.lt(threshold), work, 255.0 - work).to(at::kByte);
  return at::where(work.lt(threshold / 255.0), work, 1.0 - work).to(img.scalar_type());
}

/// Rotates by `degrees` counter-clockwise about the image centre (W/2, H/2), keeping the size, with bilinear
/// interpolation and black outside the source; PIL's `Image.rotate(degrees, resample=BILINEAR)`, including
/// its rounding of the rotation matrix to 15 decimals (so ±90° and 180° on a square image are exact
/// transposes/flips). Composer counterpart: `rotate`.
/// \throws std::invalid_argument for non-finite degrees.
[[nodiscard]] inline at::Tensor rotate(const at::Tensor& img, double degrees) {
  impl::check_image(img, "rotate");
  impl::check_finite(degrees, "rotate", "degrees");
  if (img.numel() == 0) return img.clone();
  double turn = std::fmod(degrees, 360.0);
  if (turn < 0) turn += 360.0;
  const double angle = -(turn * (std::numbers::pi / 180.0));
  auto round15 = [](double v) { return std::round(v * 1e15) / 1e15; };
  std::array<double, 6> m{round15(std::cos(angle)), round15(std::sin(angle)), 0.0,
                          round15(-std::sin(angle)), round15(std::cos(angle)), 0.0};
  const double cx = static_cast<double>(img.size(-1)) / 2.0;
  const double cy = static_cast<double>(img.size(-2)) / 2.0;
  m[2] = m[0] * -cx + m[1] * -cy + cx;
  m[5] = m[3] * -cx + m[4] * -cy + cy;
  return impl::affine(img, m);
}

/// Shears horizontally: output (x, y) samples the input at x + factor·y (pixel centres, origin at the top-left
/// corner), bilinear, black outside. Composer counterpart: `shear_x` (PIL affine (1, factor, 0, 0, 1, 0)).
/// \throws std::invalid_argument for a non-finite factor.
[[nodiscard]] inline at::Tensor shear_x(const at::Tensor& img, double factor) {
  impl::check_image(img, "shear_x");
  impl::check_finite(factor, "shear_x", "factor");
  if (img.numel() == 0) return img.clone();
  return impl::affine(img, {1.0, factor, 0.0, 0.0, 1.0, 0.0});
}

/// Shears vertically: output (x, y) samples the input at y + factor·x. Composer counterpart: `shear_y`
/// (PIL affine (1, 0, 0, factor, 1, 0)).
/// \throws std::invalid_argument for a non-finite factor.
[[nodiscard]] inline at::Tensor shear_y(const at::Tensor& img, double factor) {
  impl::check_image(img, "shear_y");
  impl::check_finite(factor, "shear_y", "factor");
  if (img.numel() == 0) return img.clone();
  return impl::affine(img, {1.0, 0.0, 0.0, factor, 1.0, 0.0});
}

/// Shifts horizontally: output column x takes input column x + pixels (a positive value moves the content
/// left), black where that falls outside; fractional shifts interpolate. Composer counterpart: `translate_x`
/// (PIL affine (1, 0, pixels, 0, 1, 0)).
/// \throws std::invalid_argument for non-finite pixels.
[[nodiscard]] inline at::Tensor translate_x(const at::Tensor& img, double pixels) {
  impl::check_image(img, "translate_x");
  impl::check_finite(pixels, "translate_x", "pixels");
  if (img.numel() == 0) return img.clone();
  return impl::affine(img, {1.0, 0.0, pixels, 0.0, 1.0, 0.0});
}

/// Shifts vertically: output row y takes input row y + pixels (a positive value moves the content up).
/// Composer counterpart: `translate_y` (PIL affine (1, 0, 0, 0, 1, pixels)).
/// \throws std::invalid_argument for non-finite pixels.
[[nodiscard]] inline at::Tensor translate_y(const at::Tensor& img, double pixels) {
  impl::check_image(img, "translate_y");
  impl::check_finite(pixels, "translate_y", "pixels");
  if (img.numel() == 0) return img.clone();
  return impl::affine(img, {1.0, 0.0, 0.0, 0.0, 1.0, pixels});
}

/// Saturation: blends the image with its gray version, gray + factor·(image − gray); 0 gives grayscale, 1 the
/// image, > 1 more saturated. One-channel images are unchanged. Composer counterpart: `color` (PIL
/// `ImageEnhance.Color`).
/// \throws std::invalid_argument for a non-finite factor.
[[nodiscard]] inline at::Tensor color(const at::Tensor& img, double factor) {
  impl::check_image(img, "color");
  impl::check_finite(factor, "color", "factor");
  if (img.size(-3) == 1 || img.numel() == 0) return img.clone();
  const at::Tensor work = impl::to_work(img);
  return impl::blend(img, work, impl::luma(img, work).expand_as(work), factor);
}

/// Contrast: blends each image with the constant mean of its gray levels (rounded to a whole level for
/// uint8, as PIL does); 0 gives a flat gray image. Composer counterpart: `contrast` (PIL
/// `ImageEnhance.Contrast`).
/// \throws std::invalid_argument for a non-finite factor.
[[nodiscard]] inline at::Tensor contrast(const at::Tensor& img, double factor) {
  impl::check_image(img, "contrast");
  impl::check_finite(factor, "contrast", "factor");
  if (img.numel() == 0) return img.clone();
  const at::Tensor work = impl::to_work(img);
  at::Tensor mean = impl::luma(img, work).to(at::kDouble).mean({-3, -2, -1}, /*keepdim=*/true);
  if (impl::is_u8(img)) mean = (mean + 0.5).floor_();
  return impl::blend(img, work, mean.to(work.scalar_type()).expand_as(work), factor);
}

/// Brightness: blends with black, i.e. factor·image, clamped. Composer counterpart: `brightness` (PIL
/// `ImageEnhance.Brightness`).
/// \throws std::invalid_argument for a non-finite factor.
[[nodiscard]] inline at::Tensor brightness(const at::Tensor& img, double factor) {
  impl::check_image(img, "brightness");
  impl::check_finite(factor, "brightness", "factor");
  const at::Tensor work = impl::to_work(img);
  return impl::blend(img, work, at::zeros_like(work), factor);
}

/// Sharpness: blends with PIL's SMOOTH filter of the image (3×3 kernel [1 1 1; 1 5 1; 1 1 1]/13 on the
/// interior, rounded to a level for uint8; the one-pixel border is left as it is, so it never changes);
/// 0 smooths, > 1 sharpens. Composer counterpart: `sharpness` (PIL `ImageEnhance.Sharpness`).
/// \throws std::invalid_argument for a non-finite factor.
[[nodiscard]] inline at::Tensor sharpness(const at::Tensor& img, double factor) {
  impl::check_image(img, "sharpness");
  impl::check_finite(factor, "sharpness", "factor");
  const int64_t h = img.size(-2);
  const int64_t w = img.size(-1);
  if (h < 3 || w < 3 || img.numel() == 0) return img.clone();
  const at::Tensor work = impl::to_work(img);
  at::Tensor sum = work.slice(-2, 1, h - 1).slice(-1, 1, w - 1) * 4.0;
  for (int64_t dy = 0; dy < 3; ++dy)
    for (int64_t dx = 0; dx < 3; ++dx) sum = sum + work.slice(-2, dy, dy + h - 2).slice(-1, dx, dx + w - 2);
  at::Tensor smooth = sum / 13.0;
  if (impl::is_u8(img)) smooth = (smooth + 0.5).trunc_();
  at::Tensor degenerate = work.clone();
  degenerate.slice(-2, 1, h - 1).slice(-1, 1, w - 1).copy_(smooth);
  return impl::blend(img, work, degenerate, factor);
}

// ------------------------------------------------------------------------------------------------------------
// Severity → parameter mappings (Composer's `_int_parameter` / `_float_parameter` applied to a level ℓ).

/// Posterize bits for level ℓ: 4 − int(ℓ·4/10) (4 at ℓ < 2.5, 1 just below ℓ = 10).
[[nodiscard]] inline int posterize_bits(double level) { return 4 - static_cast<int>(level * 4.0 / 10.0); }
/// Rotation in whole degrees for level ℓ: int(ℓ·30/10) (0..30).
[[nodiscard]] inline int rotate_degrees(double level) { return static_cast<int>(level * 30.0 / 10.0); }
/// Solarize threshold for level ℓ: 256 − int(ℓ·256/10) (254 at ℓ = 0.1, 0 at ℓ = 10).
[[nodiscard]] inline int solarize_threshold(double level) { return 256 - static_cast<int>(level * 256.0 / 10.0); }
/// Shear factor for level ℓ: ℓ·0.3/10 (0..0.3).
[[nodiscard]] inline double shear_factor(double level) { return level * 0.3 / 10.0; }
/// Shift in whole pixels for level ℓ and an image side of `size` pixels: int(ℓ·(size/3)/10) (up to a third).
[[nodiscard]] inline int64_t translate_pixels(double level, int64_t size) {
  return static_cast<int64_t>(level * (static_cast<double>(size) / 3.0) / 10.0);
}
/// The original AugMix enhancement factor for level ℓ: ℓ·1.8/10 + 0.1 (0.1..1.9).
[[nodiscard]] inline double original_enhance_factor(double level) { return level * 1.8 / 10.0 + 0.1; }

// ------------------------------------------------------------------------------------------------------------
// Random draws (global torch generator).

/// A uniform draw in [low, high) (or (high, low] when high < low, as NumPy's `uniform`).
[[nodiscard]] inline double uniform(double low, double high) {
  const double u = at::rand({1}, at::TensorOptions().dtype(at::kDouble)).item<double>();
  return low + (high - low) * u;
}

/// A level ℓ ~ U(0.1, severity). Composer counterpart: `_sample_level`.
[[nodiscard]] inline double sample_level(int severity) { return uniform(0.1, static_cast<double>(severity)); }

/// An enhancement factor that is equally likely to weaken or strengthen: with probability ½ U(1, severity),
/// else U(1 − 0.09·severity, 1). Composer counterpart: `_symmetric_sample`.
[[nodiscard]] inline double sample_symmetric_factor(int severity) {
  if (uniform(0.0, 1.0) > 0.5) return uniform(1.0, static_cast<double>(severity));
  return uniform(1.0 - 0.09 * severity, 1.0);
}

/// Draws the parameter of `augmentation` at `severity` for an image of `height` × `width` pixels, as
/// Composer's primitive `augmentation(img, severity)` does before it transforms the image: the level, then the
/// sign (rotate, shear, translate: negated with probability ½); brightness factors above 1 are scaled by 0.75.
/// \throws std::invalid_argument unless 0 <= severity <= 10.
[[nodiscard]] inline AugmentOp sample_op(Augmentation augmentation, int severity, int64_t height, int64_t width) {
  impl::check_severity(severity, "sample_op");
  auto signed_by_coin = [](double value) { return uniform(0.0, 1.0) > 0.5 ? -value : value; };
  AugmentOp op{augmentation, 0.0};
  switch (augmentation) {
    case Augmentation::autocontrast:
    case Augmentation::equalize:
      break;
    case Augmentation::posterize: op.magnitude = posterize_bits(sample_level(severity)); break;
    case Augmentation::rotate: op.magnitude = signed_by_coin(rotate_degrees(sample_level(severity))); break;
    case Augmentation::solarize: op.magnitude = solarize_threshold(sample_level(severity)); break;
    case Augmentation::shear_x:
    case Augmentation::shear_y: op.magnitude = signed_by_coin(shear_factor(sample_level(severity))); break;
    case Augmentation::translate_x:
      op.magnitude = signed_by_coin(static_cast<double>(translate_pixels(sample_level(severity), width)));
      break;
    case Augmentation::translate_y:
      op.magnitude = signed_by_coin(static_cast<double>(translate_pixels(sample_level(severity), height)));
      break;
    case Augmentation::color:
    case Augmentation::contrast:
    case Augmentation::sharpness: op.magnitude = sample_symmetric_factor(severity); break;
    case Augmentation::brightness: {
      const double factor = sample_symmetric_factor(severity);
      op.magnitude = factor > 1.0 ? factor * 0.75 : factor;
      break;
    }
    case Augmentation::color_original:
    case Augmentation::contrast_original:
    case Augmentation::brightness_original:
    case Augmentation::sharpness_original: op.magnitude = original_enhance_factor(sample_level(severity)); break;
  }
  return op;
}

/// Chooses an augmentation uniformly from `set` and draws its parameter. Composer counterpart:
/// `aug = np.random.choice(augmentation_set)` followed by `aug(img, severity)`.
/// \throws std::invalid_argument for an empty set or a severity outside [0, 10].
[[nodiscard]] inline AugmentOp sample_op(std::span<const Augmentation> set, int severity, int64_t height, int64_t width) {
  if (set.empty()) functional::detail::fail("sample_op augmentation set must not be empty");
  impl::check_severity(severity, "sample_op");
  const auto index = static_cast<std::size_t>(functional::detail::randint(0, static_cast<int64_t>(set.size())));
  return sample_op(set[index], severity, height, width);
}

/// Applies one drawn augmentation with its parameter (the same to every image of a batch).
/// \throws std::invalid_argument for a bad image or parameter (e.g. posterize bits that are not 0..8).
[[nodiscard]] inline at::Tensor apply_op(const at::Tensor& img, const AugmentOp& op) {
  switch (op.augmentation) {
    case Augmentation::autocontrast: return autocontrast(img);
    case Augmentation::equalize: return equalize(img);
    case Augmentation::posterize: {
      if (op.magnitude != std::floor(op.magnitude) || op.magnitude < 0.0 || op.magnitude > 8.0) {
        functional::detail::fail("posterize bits must be a whole number 0..8, got " + functional::detail::num(op.magnitude));
      }
      return posterize(img, static_cast<int>(op.magnitude));
    }
    case Augmentation::rotate: return rotate(img, op.magnitude);
    case Augmentation::solarize: return solarize(img, op.magnitude);
    case Augmentation::shear_x: return shear_x(img, op.magnitude);
    case Augmentation::shear_y: return shear_y(img, op.magnitude);
    case Augmentation::translate_x: return translate_x(img, op.magnitude);
    case Augmentation::translate_y: return translate_y(img, op.magnitude);
    case Augmentation::color:
    case Augmentation::color_original: return color(img, op.magnitude);
    case Augmentation::contrast:
    case Augmentation::contrast_original: return contrast(img, op.magnitude);
    case Augmentation::brightness:
    case Augmentation::brightness_original: return brightness(img, op.magnitude);
    case Augmentation::sharpness:
    case Augmentation::sharpness_original: return sharpness(img, op.magnitude);
  }
  functional::detail::fail("apply_op got an unknown augmentation");
}

/// Applies `ops` in order (an empty list returns a copy).
[[nodiscard]] inline at::Tensor apply_ops(const at::Tensor& img, std::span<const AugmentOp> ops) {
  impl::check_image(img, "apply_ops");
  if (ops.empty()) return img.clone();
  at::Tensor out = img;
  for (const AugmentOp& op : ops) out = apply_op(out, op);
  return out;
}

/// Applies `augmentation` at `severity` with freshly drawn parameters, separately for each image of a batch.
/// Composer counterpart: calling the primitive `augmentation(img, severity)`.
/// \throws std::invalid_argument for a bad image or a severity outside [0, 10].
[[nodiscard]] inline at::Tensor random_op(const at::Tensor& img, Augmentation augmentation, int severity) {
  impl::check_image(img, "random_op");
  impl::check_severity(severity, "random_op");
  const int64_t h = img.size(-2);
  const int64_t w = img.size(-1);
  if (img.dim() == 3) return apply_op(img, sample_op(augmentation, severity, h, w));
  if (img.size(0) == 0) return img.clone();
  std::vector<at::Tensor> out;
  out.reserve(static_cast<std::size_t>(img.size(0)));
  for (int64_t i = 0; i < img.size(0); ++i) out.push_back(apply_op(img[i], sample_op(augmentation, severity, h, w)));
  return at::stack(out);
}

}  // namespace composer::functional::augment
