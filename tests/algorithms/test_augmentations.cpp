// AugMix and RandAugment: each augmentation primitive against hand-computed values (PIL's integer rules on
// uint8, the continuous version on floats), the severity mappings and the ranges of the random draws, the
// convexity of AugMix's mixture, RandAugment's operation count, argument checks, and the two policies in an
// Engine at AFTER_DATALOADER.
#include <torch/torch.h>

#include <composer/algorithms/augmix.hpp>
#include <composer/algorithms/randaugment.hpp>
#include <composer/core/engine.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/augment_ops.hpp>
#include <composer/functional/augmix.hpp>
#include <composer/functional/randaugment.hpp>

// After LibTorch: some LibTorch builds log through glog, whose CHECK macros must not shadow doctest's.
#include <doctest/doctest.h>

#include "../support/error_messages.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace cf = composer::functional;
namespace aug = composer::functional::augment;
using aug::Augmentation;
using aug::AugmentOp;
using composer::Event;
using composer::algorithms::AugMix;
using composer::algorithms::RandAugment;

namespace {

// A uint8 tensor of the given shape holding `values` in row-major order.
torch::Tensor u8(const std::vector<int64_t>& values, std::vector<int64_t> shape) {
  return torch::tensor(values, torch::TensorOptions().dtype(torch::kLong)).view(shape).to(torch::kByte);
}

// The same levels as a float image in [0, 1].
torch::Tensor as_float(const torch::Tensor& levels, torch::ScalarType dtype = torch::kFloat) {
  return levels.to(torch::kDouble).div(255.0).to(dtype);
}

std::vector<int64_t> ints(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kCPU, torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<double> doubles(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Checks that a float result equals the expected levels / 255 to within `tol`.
void check_levels(const torch::Tensor& result, const std::vector<double>& levels, double tol = 1e-6) {
  const std::vector<double> got = doubles(result);
  REQUIRE(got.size() == levels.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CAPTURE(got[i] * 255.0);
    CHECK(std::abs(got[i] - levels[i] / 255.0) <= tol);
  }
}

using composer_test::invalid_argument_message;

// Asserts that `f` throws std::invalid_argument with a message that starts with "composer: " and contains `part`.
template <class F>
void check_bad_argument(F&& f, const std::string& part) {
  const std::string message = invalid_argument_message(std::forward<F>(f));
  CAPTURE(message);
  CAPTURE(part);
  CHECK(message.rfind("composer: ", 0) == 0);
  CHECK(message.find(part) != std::string::npos);
}

// A random uint8 image batch (or single image when n < 0).
torch::Tensor random_u8(int64_t n, int64_t c, int64_t h, int64_t w) {
  std::vector<int64_t> shape{c, h, w};
  if (n >= 0) shape.insert(shape.begin(), n);
  return torch::randint(0, 256, shape, torch::TensorOptions().dtype(torch::kLong)).to(torch::kByte);
}

// An algorithm that keeps a copy of the batch inputs it sees at AFTER_DATALOADER.
struct InputSnapshot {
  static constexpr composer::EventSet events{Event::AFTER_DATALOADER};
  torch::Tensor seen;
  void apply(Event, composer::State& state) { seen = state.batch.inputs.clone(); }
};

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// Sets and mappings

TEST_CASE("the augmentation sets are Composer's") {
  CHECK(aug::augmentation_set("all").size() == 13);
  CHECK(aug::augmentation_set("safe").size() == 9);
  CHECK(aug::augmentation_set("original").size() == 13);

  std::vector<std::string> all_names;
  for (Augmentation a : aug::augmentation_set("all")) all_names.emplace_back(aug::name(a));
  CHECK(all_names == std::vector<std::string>{"autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x",
                                              "shear_y", "translate_x", "translate_y", "color", "contrast",
                                              "brightness", "sharpness"});

  // "safe" leaves out exactly the four enhancements that overlap ImageNet-C / CIFAR-10-C corruptions.
  const auto safe = aug::augmentation_set("safe");
  for (Augmentation a : {Augmentation::color, Augmentation::contrast, Augmentation::brightness, Augmentation::sharpness})
    CHECK(std::find(safe.begin(), safe.end(), a) == safe.end());
  CHECK(std::equal(safe.begin(), safe.end(), aug::all_augmentations.begin()));

  std::vector<std::string> original_tail;
  const auto original = aug::augmentation_set("original");
  for (std::size_t i = 9; i < original.size(); ++i) original_tail.emplace_back(aug::name(original[i]));
  CHECK(original_tail ==
        std::vector<std::string>{"color_original", "contrast_original", "brightness_original", "sharpness_original"});
  CHECK(std::equal(original.begin(), original.begin() + 9, aug::all_augmentations.begin()));

  check_bad_argument([] { (void)aug::augmentation_set("everything"); },
                     "augmentation_set must be one of 'all', 'safe', 'original', got 'everything'");
}

TEST_CASE("severity mappings match Composer's formulas at their endpoints") {
  CHECK(aug::posterize_bits(0.1) == 4);
  CHECK(aug::posterize_bits(2.4) == 4);
  CHECK(aug::posterize_bits(2.5) == 3);
  CHECK(aug::posterize_bits(9.99) == 1);
  CHECK(aug::posterize_bits(10.0) == 0);

  CHECK(aug::rotate_degrees(0.1) == 0);
  CHECK(aug::rotate_degrees(5.0) == 15);
  CHECK(aug::rotate_degrees(9.99) == 29);
  CHECK(aug::rotate_degrees(10.0) == 30);

  CHECK(aug::solarize_threshold(0.1) == 254);
  CHECK(aug::solarize_threshold(5.0) == 128);
  CHECK(aug::solarize_threshold(10.0) == 0);

  CHECK(aug::shear_factor(0.0) == 0.0);
  CHECK(aug::shear_factor(10.0) == doctest::Approx(0.3));
  CHECK(aug::shear_factor(5.0) == doctest::Approx(0.15));

  CHECK(aug::translate_pixels(0.1, 32) == 0);
  CHECK(aug::translate_pixels(10.0, 32) == 10);
  CHECK(aug::translate_pixels(9.99, 30) == 9);
  CHECK(aug::translate_pixels(10.0, 30) == 10);

  CHECK(aug::original_enhance_factor(0.0) == doctest::Approx(0.1));
  CHECK(aug::original_enhance_factor(10.0) == doctest::Approx(1.9));
  CHECK(aug::original_enhance_factor(1.0) == doctest::Approx(0.28));
}

TEST_CASE("random parameters stay in Composer's ranges") {
  torch::manual_seed(7);
  bool weaker = false;
  bool stronger = false;
  for (int i = 0; i < 400; ++i) {
    const double level = aug::sample_level(3);
    CHECK(level >= 0.1);
    CHECK(level < 3.0);
    const double factor = aug::sample_symmetric_factor(3);
    CHECK(factor >= 1.0 - 0.09 * 3);
    CHECK(factor <= 3.0);
    weaker = weaker || factor < 1.0;
    stronger = stronger || factor > 1.0;
  }
  CHECK(weaker);
  CHECK(stronger);

  std::set<double> bits;
  std::set<int> rotation_signs;
  std::set<std::string> chosen;
  for (int i = 0; i < 600; ++i) {
    const AugmentOp p = aug::sample_op(Augmentation::posterize, 10, 32, 24);
    bits.insert(p.magnitude);
    const AugmentOp r = aug::sample_op(Augmentation::rotate, 10, 32, 24);
    CHECK(std::abs(r.magnitude) <= 29.0);
    CHECK(r.magnitude == std::floor(r.magnitude));
    if (r.magnitude != 0) rotation_signs.insert(r.magnitude > 0 ? 1 : -1);
    const AugmentOp s = aug::sample_op(Augmentation::solarize, 10, 32, 24);
    CHECK(s.magnitude >= 1.0);
    CHECK(s.magnitude <= 254.0);
    const AugmentOp sh = aug::sample_op(Augmentation::shear_y, 10, 32, 24);
    CHECK(std::abs(sh.magnitude) < 0.3);
    // translate_x is relative to the width (24 → at most int(9.99·8/10) = 7), translate_y to the height.
    CHECK(std::abs(aug::sample_op(Augmentation::translate_x, 10, 32, 24).magnitude) <= 7.0);
    CHECK(std::abs(aug::sample_op(Augmentation::translate_y, 10, 32, 24).magnitude) <= 10.0);
    const AugmentOp b = aug::sample_op(Augmentation::brightness, 10, 32, 24);
    CHECK(b.magnitude >= 0.1 - 1e-12);
    CHECK(b.magnitude <= 7.5);
    const AugmentOp o = aug::sample_op(Augmentation::contrast_original, 10, 32, 24);
    CHECK(o.magnitude >= 0.118 - 1e-12);
    CHECK(o.magnitude < 1.9);
    chosen.insert(std::string(aug::name(aug::sample_op(aug::all_augmentations, 5, 8, 8).augmentation)));
  }
  CHECK(bits == std::set<double>{1.0, 2.0, 3.0, 4.0});
  CHECK(rotation_signs == std::set<int>{-1, 1});
  CHECK(chosen.size() == 13);

  // Severity 0 is allowed: levels fall in (0, 0.1], which leaves posterize at 4 bits and rotation at 0°.
  for (int i = 0; i < 20; ++i) {
    CHECK(aug::sample_op(Augmentation::posterize, 0, 8, 8).magnitude == 4.0);
    CHECK(aug::sample_op(Augmentation::rotate, 0, 8, 8).magnitude == 0.0);
    CHECK(aug::sample_op(Augmentation::color, 0, 8, 8).magnitude <= 1.0);
  }
}

// ------------------------------------------------------------------------------------------------------------
// Primitives

TEST_CASE("posterize keeps the top bits of each level") {
  const torch::Tensor img = u8({0, 17, 130, 255}, {1, 1, 4});
  CHECK(ints(aug::posterize(img, 2)) == std::vector<int64_t>{0, 0, 128, 192});
  CHECK(ints(aug::posterize(img, 4)) == std::vector<int64_t>{0, 16, 128, 240});
  CHECK(ints(aug::posterize(img, 1)) == std::vector<int64_t>{0, 0, 128, 128});
  CHECK(ints(aug::posterize(img, 8)) == std::vector<int64_t>{0, 17, 130, 255});
  CHECK(ints(aug::posterize(img, 0)) == std::vector<int64_t>{0, 0, 0, 0});
  CHECK((aug::posterize(img, 2).scalar_type() == torch::kByte));

  const torch::Tensor f = aug::posterize(as_float(img), 2);
  CHECK((f.scalar_type() == torch::kFloat));
  check_levels(f, {0, 0, 128, 192});
  check_levels(aug::posterize(as_float(img, torch::kDouble), 4), {0, 16, 128, 240});
}

TEST_CASE("solarize inverts the levels at or above the threshold") {
  const torch::Tensor img = u8({0, 127, 128, 255}, {1, 1, 4});
  CHECK(ints(aug::solarize(img, 128)) == std::vector<int64_t>{0, 127, 127, 0});
  CHECK(ints(aug::solarize(img, 256)) == std::vector<int64_t>{0, 127, 128, 255});
  CHECK(ints(aug::solarize(img, 0)) == std::vector<int64_t>{255, 128, 127, 0});
  check_levels(aug::solarize(as_float(img), 128), {0, 127, 127, 0});
  check_levels(aug::solarize(as_float(img, torch::kDouble), 0), {255, 128, 127, 0});
}

TEST_CASE("autocontrast stretches each channel to the full range") {
  // Channel 0 spans 64..192 (scale 255/128, offset −127.5), channel 1 is constant, channel 2 already spans 0..255.
  const torch::Tensor img = u8({64, 100, 128, 192, 7, 7, 7, 7, 0, 10, 20, 255}, {3, 1, 4});
  CHECK(ints(aug::autocontrast(img)) == std::vector<int64_t>{0, 71, 127, 255, 7, 7, 7, 7, 0, 10, 20, 255});

  const torch::Tensor f = aug::autocontrast(as_float(img));
  const std::vector<double> got = doubles(f);
  CHECK(got[0] == doctest::Approx(0.0));
  CHECK(got[1] == doctest::Approx(36.0 / 128.0));
  CHECK(got[2] == doctest::Approx(0.5));
  CHECK(got[3] == doctest::Approx(1.0));
  CHECK(got[4] == doctest::Approx(7.0 / 255.0));
  CHECK(got[11] == doctest::Approx(1.0));

  // Each image of a batch is stretched on its own.
  const torch::Tensor batch = torch::stack({img, torch::div(img, 2, "floor").to(torch::kByte)});
  const torch::Tensor out = aug::autocontrast(batch);
  CHECK(torch::equal(out[0], aug::autocontrast(img)));
  CHECK(ints(out[1].select(0, 2)) == std::vector<int64_t>{0, 10, 20, 255});
}

TEST_CASE("equalize follows PIL's cumulative-histogram lookup table") {
  // 1024 pixels, 256 each of the levels 10, 20, 30, 40: step = (1024 − 256) // 255 = 3, and level v maps to
  // (1 + #pixels below v) // 3, clipped to 255: 10 → 0, 20 → 85, 30 → 171, 40 → 256 → 255.
  const torch::Tensor levels = (torch::div(torch::arange(1024, torch::kLong), 256, "floor") + 1) * 10;
  const torch::Tensor img = levels.view({1, 32, 32}).to(torch::kByte);
  const torch::Tensor out = aug::equalize(img);
  CHECK((out.scalar_type() == torch::kByte));
  const torch::Tensor expected = torch::tensor({0, 85, 171, 255}, torch::kLong).repeat_interleave(256).view({1, 32, 32});
  CHECK(torch::equal(out.to(torch::kLong), expected));

  const torch::Tensor f = aug::equalize(as_float(img));
  CHECK(torch::allclose(f.to(torch::kDouble), expected.to(torch::kDouble) / 255.0, 0.0, 1e-6));

  // 544 pixels: 255 of level 5, 255 of level 50, 34 of level 200: step = (544 − 34) // 255 = 2, so
  // 5 → 1 // 2 = 0, 50 → (1 + 255) // 2 = 128, 200 → (1 + 510) // 2 = 255.
  const torch::Tensor uneven = torch::cat({torch::full({255}, 5, torch::kLong), torch::full({255}, 50, torch::kLong),
                                           torch::full({34}, 200, torch::kLong)})
                                   .view({1, 16, 34});
  const torch::Tensor uneven_expected =
      torch::cat({torch::full({255}, 0, torch::kLong), torch::full({255}, 128, torch::kLong),
                  torch::full({34}, 255, torch::kLong)})
          .view({1, 16, 34});
  CHECK(torch::equal(aug::equalize(uneven.to(torch::kByte)).to(torch::kLong), uneven_expected));
  CHECK(torch::allclose(aug::equalize(as_float(uneven, torch::kDouble)), uneven_expected.to(torch::kDouble) / 255.0,
                        0.0, 1e-12));

  // Channels are equalised on their own: a constant channel, and a channel whose step is 0, stay as they are.
  const torch::Tensor small = torch::arange(16, torch::kLong).view({1, 4, 4}) * 10;
  const torch::Tensor three = torch::cat({img, torch::full({1, 32, 32}, 99, torch::kLong).to(torch::kByte),
                                          small.repeat({1, 8, 8}).to(torch::kByte)});
  const torch::Tensor eq3 = aug::equalize(three);
  CHECK(torch::equal(eq3[0], out[0]));
  CHECK(torch::equal(eq3[1], three[1]));
  CHECK(!torch::equal(eq3[2], three[2]));
  CHECK(torch::equal(aug::equalize(small.to(torch::kByte)), small.to(torch::kByte)));
  const torch::Tensor flat_float = torch::full({1, 4, 4}, 0.3, torch::kFloat);
  CHECK(torch::equal(aug::equalize(flat_float), flat_float));
}

TEST_CASE("rotate turns counter-clockwise about the centre; 90° steps are exact") {
  torch::manual_seed(1);
  for (torch::ScalarType dtype : {torch::kByte, torch::kFloat, torch::kDouble}) {
    CAPTURE(c10::toString(dtype));
    const torch::Tensor raw = random_u8(2, 3, 5, 5);
    const torch::Tensor img = dtype == torch::kByte ? raw : as_float(raw, dtype);
    CHECK(torch::equal(aug::rotate(img, 90), img.transpose(-2, -1).flip(-2)));
    CHECK(torch::equal(aug::rotate(img, -90), img.transpose(-2, -1).flip(-1)));
    CHECK(torch::equal(aug::rotate(img, 270), img.transpose(-2, -1).flip(-1)));
    CHECK(torch::equal(aug::rotate(img, 180), img.flip({-2, -1})));
    CHECK(torch::equal(aug::rotate(img, 0), img));
    CHECK(torch::equal(aug::rotate(img, 450), aug::rotate(img, 90)));
  }
  // A pixel in the top-right corner moves to the top-left corner.
  torch::Tensor corner = torch::zeros({1, 3, 3}, torch::kByte);
  corner[0][0][2] = 200;
  const torch::Tensor turned = aug::rotate(corner, 90);
  CHECK(turned[0][0][0].item<int>() == 200);
  CHECK(turned.sum().item<int>() == 200);

  // A small rotation keeps the centre and fills the corners with black.
  const torch::Tensor white = torch::full({3, 9, 9}, 255, torch::kLong).to(torch::kByte);
  const torch::Tensor tilted = aug::rotate(white, 30);
  CHECK(tilted[0][4][4].item<int>() == 255);
  CHECK(tilted[1][0][0].item<int>() == 0);
  CHECK(tilted[2][8][8].item<int>() == 0);
  CHECK(!torch::equal(tilted, white));
}

TEST_CASE("translate shifts the content and fills with black") {
  const torch::Tensor img = u8({1, 2, 3, 4, 5, 6}, {1, 2, 3});
  CHECK(ints(aug::translate_x(img, 1)) == std::vector<int64_t>{2, 3, 0, 5, 6, 0});
  CHECK(ints(aug::translate_x(img, -1)) == std::vector<int64_t>{0, 1, 2, 0, 4, 5});
  CHECK(ints(aug::translate_x(img, 3)) == std::vector<int64_t>{0, 0, 0, 0, 0, 0});
  CHECK(ints(aug::translate_y(img, 1)) == std::vector<int64_t>{4, 5, 6, 0, 0, 0});
  CHECK(ints(aug::translate_y(img, -1)) == std::vector<int64_t>{0, 0, 0, 1, 2, 3});
  CHECK(ints(aug::translate_x(img, 0)) == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
  check_levels(aug::translate_x(as_float(img), -1), {0, 1, 2, 0, 4, 5});

  // Half a pixel interpolates between neighbours (and truncates on uint8, as PIL does).
  const torch::Tensor row = u8({0, 101, 200}, {1, 1, 3});
  CHECK(ints(aug::translate_x(row, 0.5)) == std::vector<int64_t>{50, 150, 0});
  check_levels(aug::translate_x(as_float(row), 0.5), {50.5, 150.5, 0});
}

TEST_CASE("shear samples the source at x + factor·y (and y + factor·x)") {
  // One row (y = 0, centre 0.5): with factor 1 output x reads the source at x + 1 (pixel centres), i.e. halfway
  // between source pixels x and x + 1; the last column reads outside the image.
  const torch::Tensor row = u8({0, 101, 200, 50}, {1, 1, 4});
  CHECK(ints(aug::shear_x(row, 1.0)) == std::vector<int64_t>{50, 150, 125, 0});
  check_levels(aug::shear_x(as_float(row), 1.0), {50.5, 150.5, 125, 0});
  const torch::Tensor column = row.view({1, 4, 1});
  CHECK(ints(aug::shear_y(column, 1.0)) == std::vector<int64_t>{50, 150, 125, 0});
  CHECK(ints(aug::shear_x(row, 0.0)) == ints(row));

  // Rows further down shift further: factor 2 moves row y left by 2y + 1 pixels.
  const torch::Tensor two_rows = u8({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 4});
  CHECK(ints(aug::shear_x(two_rows, 2.0)) == std::vector<int64_t>{2, 3, 4, 0, 8, 0, 0, 0});
}

TEST_CASE("brightness, contrast, color and sharpness blend with PIL's degenerate images") {
  const torch::Tensor img = u8({0, 100, 201, 255}, {1, 1, 4});
  CHECK(ints(aug::brightness(img, 0.5)) == std::vector<int64_t>{0, 50, 100, 127});
  CHECK(ints(aug::brightness(img, 2.0)) == std::vector<int64_t>{0, 200, 255, 255});
  CHECK(ints(aug::brightness(img, 1.0)) == ints(img));
  check_levels(aug::brightness(as_float(img), 0.5), {0, 50, 100.5, 127.5});
  check_levels(aug::brightness(as_float(img), 2.0), {0, 200, 255, 255});

  // Contrast blends with the mean gray level, rounded on uint8: mean(0, 100, 200, 255) = 138.75 → 139.
  const torch::Tensor gray = u8({0, 100, 200, 255}, {1, 1, 4});
  CHECK(ints(aug::contrast(gray, 0.0)) == std::vector<int64_t>{139, 139, 139, 139});
  CHECK(ints(aug::contrast(gray, 0.5)) == std::vector<int64_t>{69, 119, 169, 197});
  CHECK(ints(aug::contrast(gray, 2.0)) == std::vector<int64_t>{0, 61, 255, 255});
  check_levels(aug::contrast(as_float(gray), 0.0), {138.75, 138.75, 138.75, 138.75});
  // For RGB the mean is that of PIL's luma; a gray RGB image has luma equal to its level.
  CHECK(ints(aug::contrast(gray.expand({3, 1, 4}).contiguous(), 0.0)) == std::vector<int64_t>(12, 139));

  // Color: factor 0 gives PIL's 8-bit luma (R·19595 + G·38470 + B·7471 + 2^15) >> 16 in every channel.
  const torch::Tensor rgb = u8({255, 0, 0, 0, 255, 0, 0, 0, 255}, {3, 1, 3});
  CHECK(ints(aug::color(rgb, 0.0)) == std::vector<int64_t>{76, 150, 29, 76, 150, 29, 76, 150, 29});
  CHECK(ints(aug::color(rgb, 1.0)) == ints(rgb));
  const std::vector<double> luma = doubles(aug::color(as_float(rgb, torch::kDouble), 0.0));
  CHECK(luma[0] == doctest::Approx(0.299));
  CHECK(luma[4] == doctest::Approx(0.587));
  CHECK(luma[8] == doctest::Approx(0.114));
  CHECK(ints(aug::color(img, 0.0)) == ints(img));  // one channel: nothing to desaturate

  // Sharpness: the degenerate image is the 3×3 SMOOTH filter (centre weight 5 of 13) on the interior.
  const torch::Tensor spot = u8({0, 0, 0, 0, 130, 0, 0, 0, 0}, {1, 3, 3});
  CHECK(ints(aug::sharpness(spot, 0.0)) == std::vector<int64_t>{0, 0, 0, 0, 50, 0, 0, 0, 0});
  CHECK(ints(aug::sharpness(spot, 2.0)) == std::vector<int64_t>{0, 0, 0, 0, 210, 0, 0, 0, 0});
  CHECK(ints(aug::sharpness(spot, 1.0)) == ints(spot));
  check_levels(aug::sharpness(as_float(spot), 0.0), {0, 0, 0, 0, 50, 0, 0, 0, 0});
  // 134·5/13 = 51.54: the smoothed level is rounded (PIL's filter), not truncated.
  CHECK(ints(aug::sharpness(u8({0, 0, 0, 0, 134, 0, 0, 0, 0}, {1, 3, 3}), 0.0))[4] == 52);
  // The border never changes.
  const torch::Tensor ring = u8({10, 20, 30, 40, 50, 60, 70, 80, 90}, {1, 3, 3});
  const std::vector<int64_t> sharp = ints(aug::sharpness(ring, 0.0));
  CHECK(sharp[0] == 10);
  CHECK(sharp[3] == 40);
  CHECK(sharp[8] == 90);
  CHECK(sharp[4] == 50);  // (10+20+30+40+60+70+80+90 + 5·50)/13 = 50
}

TEST_CASE("every operation keeps dtype, shape and device, and apply_op dispatches on the operation") {
  torch::manual_seed(3);
  const torch::Tensor raw = random_u8(2, 3, 7, 6);
  for (Augmentation a : aug::all_augmentations) {
    CAPTURE(std::string(aug::name(a)));
    const AugmentOp op = aug::sample_op(a, 10, 7, 6);
    for (torch::ScalarType dtype : {torch::kByte, torch::kHalf, torch::kBFloat16, torch::kFloat, torch::kDouble}) {
      CAPTURE(c10::toString(dtype));
      const torch::Tensor img = dtype == torch::kByte ? raw : as_float(raw, dtype);
      const torch::Tensor out = aug::apply_op(img, op);
      CHECK((out.scalar_type() == dtype));
      CHECK(out.sizes() == img.sizes());
      CHECK(out.device() == img.device());
      const torch::Tensor single = aug::apply_op(img[0], op);
      CHECK(single.sizes() == img[0].sizes());
      if (dtype != torch::kByte) {
        CHECK(out.to(torch::kFloat).min().item<float>() >= -1e-6f);
        CHECK(out.to(torch::kFloat).max().item<float>() <= 1.0f + 1e-6f);
      }
    }
  }
  const torch::Tensor img = random_u8(-1, 3, 5, 5);
  CHECK(torch::equal(aug::apply_op(img, {Augmentation::posterize, 3}), aug::posterize(img, 3)));
  CHECK(torch::equal(aug::apply_op(img, {Augmentation::solarize, 100}), aug::solarize(img, 100)));
  CHECK(torch::equal(aug::apply_op(img, {Augmentation::rotate, -7}), aug::rotate(img, -7)));
  CHECK(torch::equal(aug::apply_op(img, {Augmentation::translate_y, 2}), aug::translate_y(img, 2)));
  CHECK(torch::equal(aug::apply_op(img, {Augmentation::color_original, 0.4}), aug::color(img, 0.4)));
  CHECK(torch::equal(aug::apply_op(img, {Augmentation::sharpness_original, 1.5}), aug::sharpness(img, 1.5)));
  CHECK(torch::equal(aug::apply_op(img, {Augmentation::equalize, 0}), aug::equalize(img)));
}

TEST_CASE("random_op draws separately for each image of a batch") {
  torch::manual_seed(11);
  const torch::Tensor one = random_u8(-1, 3, 12, 12);
  const torch::Tensor batch = one.unsqueeze(0).repeat({4, 1, 1, 1});
  const torch::Tensor out = aug::random_op(batch, Augmentation::rotate, 10);
  CHECK(out.sizes() == batch.sizes());
  int distinct = 0;
  for (int i = 1; i < 4; ++i) distinct += torch::equal(out[i], out[0]) ? 0 : 1;
  CHECK(distinct > 0);

  // The random form is the drawn parameter applied by the explicit form.
  torch::manual_seed(5);
  const AugmentOp op = aug::sample_op(Augmentation::shear_x, 6, 12, 12);
  torch::manual_seed(5);
  CHECK(torch::equal(aug::random_op(one, Augmentation::shear_x, 6), aug::shear_x(one, op.magnitude)));
}

// ------------------------------------------------------------------------------------------------------------
// AugMix

TEST_CASE("an AugMix plan has width chains, Dirichlet weights and a Beta mixing weight") {
  torch::manual_seed(21);
  for (int i = 0; i < 50; ++i) {
    const cf::AugMixPlan plan = cf::sample_augmix_plan(8, 8);
    REQUIRE(plan.chains.size() == 3);
    REQUIRE(plan.chain_weights.size() == 3);
    double sum = 0;
    for (double w : plan.chain_weights) {
      CHECK(w >= 0.0);
      sum += w;
    }
    CHECK(sum == doctest::Approx(1.0));
    CHECK(plan.mixing_weight >= 0.0);
    CHECK(plan.mixing_weight <= 1.0);
    for (const auto& chain : plan.chains) {
      CHECK(chain.size() >= 1);
      CHECK(chain.size() <= 3);
    }
  }
  const cf::AugMixPlan fixed = cf::sample_augmix_plan(8, 8, 3, 2, 5, 0.5, aug::safe_augmentations);
  CHECK(fixed.chains.size() == 5);
  for (const auto& chain : fixed.chains) {
    CHECK(chain.size() == 2);
    for (const AugmentOp& op : chain)
      CHECK(std::find(aug::safe_augmentations.begin(), aug::safe_augmentations.end(), op.augmentation) !=
            aug::safe_augmentations.end());
  }
  // Random depth: every depth 1..3 occurs.
  std::set<std::size_t> depths;
  for (int i = 0; i < 30; ++i)
    for (const auto& chain : cf::sample_augmix_plan(8, 8).chains) depths.insert(chain.size());
  CHECK(depths == std::set<std::size_t>{1, 2, 3});
}

TEST_CASE("augmix_image is a convex combination of the image and its chain outputs") {
  for (torch::ScalarType dtype : {torch::kByte, torch::kFloat, torch::kDouble, torch::kHalf}) {
    CAPTURE(c10::toString(dtype));
    for (int trial = 0; trial < 10; ++trial) {
      torch::manual_seed(100 + trial);
      const torch::Tensor raw = random_u8(-1, 3, 8, 8);
      const torch::Tensor img = dtype == torch::kByte ? raw : as_float(raw, dtype);
      const cf::AugMixPlan plan = cf::sample_augmix_plan(8, 8, 6, -1, 3, 1.0);
      const torch::Tensor out = cf::augmix_image(img, plan);
      CHECK((out.scalar_type() == dtype));
      CHECK(out.sizes() == img.sizes());

      std::vector<torch::Tensor> parts{img.to(torch::kDouble)};
      torch::Tensor combined = torch::zeros_like(parts[0]);
      for (std::size_t i = 0; i < plan.chains.size(); ++i) {
        const torch::Tensor chain = aug::apply_ops(img, plan.chains[i]).to(torch::kDouble);
        parts.push_back(chain);
        combined = combined + chain * plan.chain_weights[i];
      }
      const torch::Tensor expected = parts[0] * (1.0 - plan.mixing_weight) + combined * plan.mixing_weight;
      const torch::Tensor stacked = torch::stack(parts);
      const torch::Tensor lo = std::get<0>(stacked.min(0));
      const torch::Tensor hi = std::get<0>(stacked.max(0));
      const double tol = dtype == torch::kHalf ? 1e-3 : (dtype == torch::kByte ? 0.0 : 1e-6);
      const torch::Tensor o = out.to(torch::kDouble);
      CHECK(o.ge(lo - tol).all().item<bool>());
      CHECK(o.le(hi + tol).all().item<bool>());
      if (dtype == torch::kByte) {
        CHECK(torch::equal(out, expected.round().to(torch::kByte)));
      } else if (dtype == torch::kDouble) {
        CHECK(torch::allclose(o, expected, 0.0, 1e-12));
      }
    }
  }
}

TEST_CASE("augmix_image with m = 0 is the image, with m = 1 and one chain the chain's output") {
  torch::manual_seed(4);
  const torch::Tensor img = random_u8(-1, 3, 8, 8);
  const std::vector<AugmentOp> chain{{Augmentation::solarize, 100}, {Augmentation::posterize, 3}};
  cf::AugMixPlan keep{{chain}, {1.0}, 0.0};
  CHECK(torch::equal(cf::augmix_image(img, keep), img));
  cf::AugMixPlan replace{{chain}, {1.0}, 1.0};
  CHECK(torch::equal(cf::augmix_image(img, replace), aug::posterize(aug::solarize(img, 100), 3)));
  // Two chains, equal weights, full mix: the rounded average of the two chain outputs.
  cf::AugMixPlan halves{{{{Augmentation::brightness, 0.0}}, {{Augmentation::brightness, 1.0}}}, {0.5, 0.5}, 1.0};
  CHECK(torch::equal(cf::augmix_image(img, halves), img.to(torch::kDouble).mul(0.5).round().to(torch::kByte)));
}

TEST_CASE("augmix_image draws a plan per image, from the global generator") {
  const torch::Tensor one = []() {
    torch::manual_seed(8);
    return random_u8(-1, 3, 10, 10);
  }();
  // The random form is a sampled plan applied by the explicit form.
  torch::manual_seed(42);
  const cf::AugMixPlan plan = cf::sample_augmix_plan(10, 10, 3, -1, 3, 1.0, aug::all_augmentations);
  const torch::Tensor explicit_out = cf::augmix_image(one, plan);
  torch::manual_seed(42);
  const torch::Tensor random_out = cf::augmix_image(one);
  CHECK(torch::equal(random_out, explicit_out));
  CHECK(!torch::equal(random_out, one));

  // A batch: one plan per image, in order; identical images come out different.
  const torch::Tensor batch = one.unsqueeze(0).repeat({4, 1, 1, 1});
  torch::manual_seed(43);
  std::vector<torch::Tensor> per_image;
  for (int i = 0; i < 4; ++i) per_image.push_back(cf::augmix_image(one, cf::sample_augmix_plan(10, 10, 5, 2, 4, 0.7)));
  torch::manual_seed(43);
  const torch::Tensor out = cf::augmix_image(batch, 5, 2, 4, 0.7, "all");
  CHECK(out.sizes() == batch.sizes());
  CHECK((out.scalar_type() == torch::kByte));
  CHECK(torch::equal(out, torch::stack(per_image)));
  CHECK(!torch::equal(out[0], out[1]));

  // Same seed, same output; the input is not modified.
  const torch::Tensor before = batch.clone();
  torch::manual_seed(44);
  const torch::Tensor a = cf::augmix_image(batch, 3, -1, 3, 1.0, "safe");
  torch::manual_seed(44);
  const torch::Tensor b = cf::augmix_image(batch, 3, -1, 3, 1.0, aug::safe_augmentations);
  CHECK(torch::equal(a, b));
  CHECK(torch::equal(batch, before));
}

TEST_CASE("augmix_image and randaugment_image keep dtype and shape for images and batches") {
  torch::manual_seed(9);
  for (torch::ScalarType dtype : {torch::kByte, torch::kHalf, torch::kBFloat16, torch::kFloat, torch::kDouble}) {
    for (int64_t channels : {1, 3}) {
      for (int64_t n : {-1, 3}) {
        CAPTURE(c10::toString(dtype));
        CAPTURE(channels);
        CAPTURE(n);
        const torch::Tensor raw = random_u8(n, channels, 6, 5);
        const torch::Tensor img = dtype == torch::kByte ? raw : as_float(raw, dtype);
        for (const torch::Tensor& out : {cf::augmix_image(img), cf::augmix_image(img, 10, 3, 2, 0.3, "original"),
                                         cf::randaugment_image(img), cf::randaugment_image(img, 10, 4, "safe")}) {
          CHECK((out.scalar_type() == dtype));
          CHECK(out.sizes() == img.sizes());
          CHECK(out.device() == img.device());
        }
      }
    }
  }
  // An empty batch stays empty.
  const torch::Tensor empty = torch::zeros({0, 3, 4, 4}, torch::kByte);
  CHECK(cf::augmix_image(empty).sizes() == empty.sizes());
  CHECK(cf::randaugment_image(empty).sizes() == empty.sizes());
}

// ------------------------------------------------------------------------------------------------------------
// RandAugment

TEST_CASE("randaugment_image applies exactly depth operations, in order") {
  const torch::Tensor img = u8({0, 17, 130, 255}, {1, 1, 4});
  // Explicit operations apply in the order given.
  const std::vector<AugmentOp> ops{{Augmentation::posterize, 2}, {Augmentation::solarize, 128}};
  CHECK(ints(cf::randaugment_image(img, ops)) == std::vector<int64_t>{0, 0, 127, 63});
  const std::vector<AugmentOp> reversed{{Augmentation::solarize, 128}, {Augmentation::posterize, 2}};
  CHECK(ints(cf::randaugment_image(img, reversed)) == std::vector<int64_t>{0, 0, 64, 0});
  CHECK(ints(cf::randaugment_image(img, std::vector<AugmentOp>{})) == ints(img));

  torch::manual_seed(2);
  const torch::Tensor photo = random_u8(-1, 3, 9, 9);
  for (int depth : {0, 1, 2, 5}) {
    CAPTURE(depth);
    torch::manual_seed(50 + depth);
    const std::vector<AugmentOp> drawn = cf::sample_randaugment_ops(9, 9, 9, depth);
    CHECK(drawn.size() == static_cast<std::size_t>(depth));
    torch::Tensor expected = photo;
    for (const AugmentOp& op : drawn) expected = aug::apply_op(expected, op);
    torch::manual_seed(50 + depth);
    const torch::Tensor out = cf::randaugment_image(photo, 9, depth);
    CHECK(torch::equal(out, expected));
    if (depth == 0) {
      CHECK(torch::equal(out, photo));
      CHECK(out.data_ptr() != photo.data_ptr());
    }
  }

  // A batch draws its operations image by image.
  const torch::Tensor batch = photo.unsqueeze(0).repeat({3, 1, 1, 1});
  torch::manual_seed(60);
  std::vector<torch::Tensor> per_image;
  for (int i = 0; i < 3; ++i) per_image.push_back(aug::apply_ops(photo, cf::sample_randaugment_ops(9, 9, 7, 3)));
  torch::manual_seed(60);
  const torch::Tensor out = cf::randaugment_image(batch, 7, 3);
  CHECK(torch::equal(out, torch::stack(per_image)));
}

// ------------------------------------------------------------------------------------------------------------
// Argument checks

TEST_CASE("bad arguments are refused with a composer: message") {
  const torch::Tensor img = torch::zeros({3, 4, 4}, torch::kByte);
  check_bad_argument([&] { (void)cf::augmix_image(img, 11); }, "augmix_image severity must satisfy 0 <= severity <= 10, got 11");
  check_bad_argument([&] { (void)cf::augmix_image(img, -1); }, "severity must satisfy 0 <= severity <= 10, got -1");
  check_bad_argument([&] { (void)cf::augmix_image(img, 3, -1, 0); }, "augmix_image width must be >= 1, got 0");
  check_bad_argument([&] { (void)cf::augmix_image(img, 3, -1, 3, 0.0); }, "augmix_image alpha must be a finite value > 0, got 0");
  check_bad_argument([&] { (void)cf::augmix_image(img, 3, -1, 3, -1.0); }, "alpha must be a finite value > 0");
  check_bad_argument([&] { (void)cf::augmix_image(img, 3, -1, 3, std::nan("")); }, "alpha must be a finite value > 0");
  check_bad_argument([&] { (void)cf::augmix_image(img, 3, 0); }, "augmix_image depth must be -1");
  check_bad_argument([&] { (void)cf::augmix_image(img, 3, -2); }, "depth must be -1 (a random depth of 1 to 3 per chain) or >= 1, got -2");
  check_bad_argument([&] { (void)cf::augmix_image(img, 3, -1, 3, 1.0, "fancy"); }, "augmentation_set must be one of");
  check_bad_argument([&] { (void)cf::augmix_image(img, 3, -1, 3, 1.0, std::span<const Augmentation>{}); },
                     "augmentation set must not be empty");
  check_bad_argument([&] { (void)cf::augmix_image(torch::zeros({4, 4}, torch::kByte)); }, "augmix_image input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape [4, 4]");
  check_bad_argument([&] { (void)cf::augmix_image(torch::zeros({1, 1, 3, 4, 4}, torch::kByte)); }, "must be 3-D");
  check_bad_argument([&] { (void)cf::augmix_image(torch::zeros({2, 4, 4}, torch::kByte)); }, "augmix_image input must have 1 or 3 channels (dim -3), got 2");
  check_bad_argument([&] { (void)cf::augmix_image(torch::zeros({3, 4, 4}, torch::kInt)); }, "augmix_image input must be uint8 or floating point, got Int");
  check_bad_argument([&] { (void)cf::augmix_image(torch::full({3, 4, 4}, -0.5)); }, "augmix_image floating-point input must hold images in [0, 1]");
  check_bad_argument([&] { (void)cf::augmix_image(torch::Tensor()); }, "augmix_image input must be a defined tensor");

  check_bad_argument([&] { (void)cf::augmix_image(img, cf::AugMixPlan{}); }, "augmix_image plan must have at least one chain");
  check_bad_argument([&] { (void)cf::augmix_image(img, cf::AugMixPlan{{{}}, {0.5}, 0.5}); }, "chain weights must sum to 1, got 0.5");
  check_bad_argument([&] { (void)cf::augmix_image(img, cf::AugMixPlan{{{}, {}}, {1.0}, 0.5}); }, "one weight per chain, got 1 weights for 2 chains");
  check_bad_argument([&] { (void)cf::augmix_image(img, cf::AugMixPlan{{{}, {}}, {1.5, -0.5}, 0.5}); }, "must be finite and >= 0, got -0.5");
  check_bad_argument([&] { (void)cf::augmix_image(img, cf::AugMixPlan{{{}}, {1.0}, 1.5}); }, "mixing_weight must be in [0, 1], got 1.5");

  check_bad_argument([&] { (void)cf::randaugment_image(img, 11); }, "randaugment_image severity must satisfy 0 <= severity <= 10, got 11");
  check_bad_argument([&] { (void)cf::randaugment_image(img, 9, -1); }, "randaugment_image depth must be >= 0, got -1");
  check_bad_argument([&] { (void)cf::randaugment_image(img, 9, 2, "none"); }, "augmentation_set must be one of 'all', 'safe', 'original', got 'none'");
  check_bad_argument([&] { (void)cf::randaugment_image(torch::zeros({4, 4, 4}, torch::kFloat)); }, "randaugment_image input must have 1 or 3 channels");
  check_bad_argument([&] { (void)cf::randaugment_image(torch::full({3, 4, 4}, 2.0)); }, "got values in [2, 2]");

  check_bad_argument([&] { (void)aug::posterize(img, 9); }, "posterize bits must satisfy 0 <= bits <= 8, got 9");
  check_bad_argument([&] { (void)aug::apply_op(img, {Augmentation::posterize, 2.5}); }, "posterize bits must be a whole number 0..8, got 2.5");
  check_bad_argument([&] { (void)aug::rotate(img, std::nan("")); }, "rotate degrees must be finite");
  check_bad_argument([&] { (void)aug::brightness(img, std::numeric_limits<double>::infinity()); }, "brightness factor must be finite, got inf");
  check_bad_argument([&] { (void)aug::solarize(torch::zeros({3, 4, 4}, torch::kLong), 3); }, "solarize input must be uint8 or floating point, got Long");
  check_bad_argument([&] { (void)aug::sample_op(Augmentation::rotate, 12, 4, 4); }, "sample_op severity must satisfy 0 <= severity <= 10, got 12");
  check_bad_argument([&] { (void)aug::sample_op(std::span<const Augmentation>{}, 3, 4, 4); }, "sample_op augmentation set must not be empty");
  check_bad_argument([&] { (void)aug::random_op(img, Augmentation::color, 11); }, "random_op severity");

  check_bad_argument([] { AugMix bad(11); }, "AugMix severity must satisfy 0 <= severity <= 10, got 11");
  check_bad_argument([] { AugMix bad(3, -1, 0); }, "AugMix width must be >= 1, got 0");
  check_bad_argument([] { AugMix bad(3, -1, 3, 0.0); }, "AugMix alpha must be a finite value > 0");
  check_bad_argument([] { AugMix bad(composer::algorithms::AugMixOptions{.augmentation_set = "most"}); }, "augmentation_set must be one of");
  check_bad_argument([] { RandAugment bad(9, -1); }, "RandAugment depth must be >= 0, got -1");
  check_bad_argument([] { RandAugment bad(-3); }, "RandAugment severity must satisfy 0 <= severity <= 10, got -3");

  composer::State state;
  state.batch = {torch::zeros({3, 4, 4}, torch::kByte), torch::zeros({3}, torch::kLong)};
  check_bad_argument([&] { AugMix().apply(Event::AFTER_DATALOADER, state); }, "AugMix needs a batch of images [N, C, H, W] in state.batch.inputs, got shape [3, 4, 4]");
  check_bad_argument([&] { RandAugment().apply(Event::AFTER_DATALOADER, state); }, "RandAugment needs a batch of images");
}

// ------------------------------------------------------------------------------------------------------------
// Policies

TEST_CASE("the policies declare Composer's defaults, AFTER_DATALOADER and first placement") {
  const AugMix augmix;
  CHECK(augmix.severity() == 3);
  CHECK(augmix.depth() == -1);
  CHECK(augmix.width() == 3);
  CHECK(augmix.alpha() == 1.0);
  CHECK(augmix.augmentation_set() == "all");
  const RandAugment randaugment;
  CHECK(randaugment.severity() == 9);
  CHECK(randaugment.depth() == 2);
  CHECK(randaugment.augmentation_set() == "all");
  const AugMix custom({.severity = 5, .width = 2, .augmentation_set = "safe"});
  CHECK(custom.severity() == 5);
  CHECK(custom.width() == 2);
  CHECK(custom.augmentation_set() == "safe");

  static_assert(AugMix::events == composer::EventSet{Event::AFTER_DATALOADER});
  static_assert(RandAugment::events == composer::EventSet{Event::AFTER_DATALOADER});
  static_assert(composer::placement_of<AugMix> == composer::Placement::first);
  static_assert(composer::placement_of<RandAugment> == composer::Placement::first);
  static_assert(composer::role_of<AugMix> == composer::Role::algorithm);
}

TEST_CASE("AugMix and RandAugment change the batch at AFTER_DATALOADER and leave the targets alone") {
  for (torch::ScalarType dtype : {torch::kByte, torch::kFloat}) {
    CAPTURE(c10::toString(dtype));
    torch::manual_seed(31);
    const torch::Tensor raw = random_u8(4, 3, 8, 8);
    const torch::Tensor inputs = dtype == torch::kByte ? raw : as_float(raw, dtype);
    const torch::Tensor targets = torch::tensor({0, 1, 2, 1}, torch::kLong);

    composer::State state;
    state.batch = {inputs, targets};
    composer::BasicEngine<composer::State, AugMix> engine(state);
    engine.run<Event::BATCH_START>();
    CHECK(state.batch.inputs.is_same(inputs));
    engine.run<Event::AFTER_DATALOADER>();
    CHECK(!torch::equal(state.batch.inputs, inputs));
    CHECK(state.batch.inputs.sizes() == inputs.sizes());
    CHECK((state.batch.inputs.scalar_type() == dtype));
    CHECK(state.batch.targets.is_same(targets));
    CHECK(ints(state.batch.targets) == std::vector<int64_t>{0, 1, 2, 1});
    CHECK(torch::equal(inputs, dtype == torch::kByte ? raw : as_float(raw, dtype)));  // the loader's tensor is intact

    composer::State state2;
    state2.batch = {inputs, targets};
    composer::BasicEngine<composer::State, RandAugment> engine2(state2, RandAugment(9, 2, "safe"));
    engine2.run_event(Event::AFTER_DATALOADER);
    CHECK(!torch::equal(state2.batch.inputs, inputs));
    CHECK(state2.batch.inputs.sizes() == inputs.sizes());
    CHECK((state2.batch.inputs.scalar_type() == dtype));
    CHECK(state2.batch.targets.is_same(targets));
  }
}

TEST_CASE("the augmentation runs before the other algorithms at AFTER_DATALOADER") {
  // AFTER_DATALOADER reverses the declared order (FILO), which would run the snapshot first; the first
  // placement puts AugMix and RandAugment ahead of it.
  torch::manual_seed(12);
  const torch::Tensor inputs = random_u8(3, 3, 8, 8);
  {
    composer::State state;
    state.batch = {inputs, torch::zeros({3}, torch::kLong)};
    composer::BasicEngine<composer::State, AugMix, InputSnapshot> engine(state);
    engine.run<Event::AFTER_DATALOADER>();
    const torch::Tensor& seen = engine.get<InputSnapshot>().seen;
    REQUIRE(seen.defined());
    CHECK(torch::equal(seen, state.batch.inputs));
    CHECK(!torch::equal(seen, inputs));
  }
  {
    composer::State state;
    state.batch = {inputs, torch::zeros({3}, torch::kLong)};
    composer::BasicEngine<composer::State, RandAugment, InputSnapshot> engine(state);
    engine.run<Event::AFTER_DATALOADER>();
    CHECK(torch::equal(engine.get<InputSnapshot>().seen, state.batch.inputs));
    CHECK(!torch::equal(engine.get<InputSnapshot>().seen, inputs));
  }
}

TEST_CASE("check_randaugment_arguments and check_augmix_arguments: one range for the functions and the policies") {
  using composer_test::check_bad_argument;
  CHECK_NOTHROW(cf::check_randaugment_arguments("RandAugment", 0, 0));
  CHECK_NOTHROW(cf::check_randaugment_arguments("RandAugment", 10, 5));
  check_bad_argument([] { cf::check_randaugment_arguments("who", 11, 2); },
                     {"who severity", "0 <= severity <= 10", "11"});
  check_bad_argument([] { cf::check_randaugment_arguments("who", 3, -1); }, {"who depth must be >= 0", "-1"});
  check_bad_argument([] { RandAugment bad(3, -1); }, {"RandAugment depth must be >= 0", "-1"});

  CHECK_NOTHROW(cf::check_augmix_arguments("AugMix", 3, -1, 3, 1.0));
  CHECK_NOTHROW(cf::check_augmix_arguments("AugMix", 0, 1, 1, 0.01));
  check_bad_argument([] { cf::check_augmix_arguments("who", -1, 1, 3, 1.0); }, {"who severity", "-1"});
  check_bad_argument([] { cf::check_augmix_arguments("who", 3, 0, 3, 1.0); }, {"who depth must be -1", "got 0"});
  check_bad_argument([] { cf::check_augmix_arguments("who", 3, -2, 3, 1.0); }, {"who depth", "got -2"});
  check_bad_argument([] { cf::check_augmix_arguments("who", 3, 1, 0, 1.0); }, {"who width must be >= 1", "got 0"});
  check_bad_argument([] { cf::check_augmix_arguments("who", 3, 1, 3, 0.0); }, {"who alpha must be a finite value > 0"});
  check_bad_argument([] { cf::check_augmix_arguments("who", 3, 1, 3, std::numeric_limits<double>::infinity()); },
                     {"who alpha", "inf"});
  check_bad_argument([] { AugMix bad(3, 1, 0); }, {"AugMix width must be >= 1"});
}
