// Functional batch transforms: values against hand-computed expectations and Composer's formulas, the
// distributions of the random draws, dtype/shape preservation, and every argument check with its message.
#include <composer/functional.hpp>

#include <torch/torch.h>

// After LibTorch: some LibTorch builds log through glog, whose CHECK macros must not shadow doctest's.
#include <doctest/doctest.h>

#include "../support/error_messages.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace cf = composer::functional;

namespace {

using composer_test::invalid_argument_message;

using composer_test::check_bad_argument;

torch::Tensor long_tensor(const std::vector<int64_t>& values) {
  return torch::tensor(values, torch::TensorOptions().dtype(torch::kLong));
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kCPU, torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// A batch whose every element is distinct and non-zero: value = 1 + flat index.
torch::Tensor distinct_batch(std::vector<int64_t> shape, torch::ScalarType dtype = torch::kFloat) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  return torch::arange(1, numel + 1, torch::TensorOptions().dtype(torch::kDouble)).view(shape).to(dtype);
}

const std::vector<torch::ScalarType> kFloatingDtypes = {torch::kFloat, torch::kDouble, torch::kHalf};

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Beta draws and MixUp
// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("sample_beta matches Beta(alpha, alpha): mean 1/2, variance 1/(4(2 alpha + 1))") {
  torch::manual_seed(1234);
  for (const double alpha : {0.2, 0.5, 1.0, 3.0}) {
    CAPTURE(alpha);
    const int draws = 20000;
    double sum = 0.0;
    double sum_sq = 0.0;
    std::vector<double> values;
    values.reserve(draws);
    for (int i = 0; i < draws; ++i) {
      const double lambda = cf::sample_beta(alpha);
      REQUIRE(lambda >= 0.0);
      REQUIRE(lambda <= 1.0);
      values.push_back(lambda);
      sum += lambda;
      sum_sq += lambda * lambda;
    }
    const double mean = sum / draws;
    const double var = sum_sq / draws - mean * mean;
    CHECK(mean == doctest::Approx(0.5).epsilon(0.03));
    CHECK(var == doctest::Approx(1.0 / (4.0 * (2.0 * alpha + 1.0))).epsilon(0.04));

    // Distribution checks where the CDF has a closed form: alpha = 1 is uniform, alpha = 1/2 the arcsine law.
    auto cdf_at = [&](double x) {
      return static_cast<double>(std::count_if(values.begin(), values.end(), [x](double v) { return v <= x; })) /
             draws;
    };
    if (alpha == 1.0) {
      for (const double x : {0.1, 0.25, 0.5, 0.9}) CHECK(std::abs(cdf_at(x) - x) < 0.015);
    }
    if (alpha == 0.5) {
      for (const double x : {0.02, 0.2, 0.5, 0.8}) {
        const double expected = 2.0 / M_PI * std::asin(std::sqrt(x));
        CHECK(std::abs(cdf_at(x) - expected) < 0.015);
      }
    }
  }
  CHECK(cf::sample_beta(0.0) == 0.0);
}

TEST_CASE("sample_mixup_coef is min(lambda, 1 - lambda): in [0, 0.5] with Composer's means") {
  torch::manual_seed(7);
  // E[min(l, 1 - l)] for l ~ Beta(a, a): 1/4 for a = 1 (uniform); about 0.1012 for a = 0.2 (numerical integration).
  for (const auto& [alpha, expected_mean] : std::vector<std::pair<double, double>>{{1.0, 0.25}, {0.2, 0.1012}}) {
    CAPTURE(alpha);
    const int draws = 20000;
    double sum = 0.0;
    for (int i = 0; i < draws; ++i) {
      const double m = cf::sample_mixup_coef(alpha);
      REQUIRE(m >= 0.0);
      REQUIRE(m <= 0.5);
      sum += m;
    }
    CHECK(std::abs(sum / draws - expected_mean) < 0.005);
  }
  CHECK(cf::sample_mixup_coef(0.0) == 0.0);
}

TEST_CASE("mixup_batch with explicit mixing and indices is exactly (1 - m) x + m x[perm]") {
  for (const auto dtype : kFloatingDtypes) {
    CAPTURE(dtype);
    torch::manual_seed(3);
    const torch::Tensor x = torch::randn({5, 3, 4, 4}).to(dtype);
    const torch::Tensor y = long_tensor({10, 11, 12, 13, 14});
    const torch::Tensor perm = long_tensor({2, 0, 4, 1, 3});
    const double m = 0.3;

    auto [x_mixed, y_perm, mixing] = cf::mixup_batch(x, y, m, perm);
    CHECK(mixing == m);
    CHECK((x_mixed.scalar_type() == dtype));
    CHECK((x_mixed.sizes() == x.sizes()));
    CHECK(torch::equal(x_mixed, (1.0 - m) * x + m * x.index_select(0, perm)));
    CHECK((to_vector(y_perm) == std::vector<int64_t>{12, 10, 14, 11, 13}));

    // Sample by sample, against a double-precision reference.
    const auto perm_v = to_vector(perm);
    for (int64_t i = 0; i < 5; ++i) {
      const torch::Tensor expected = (1.0 - m) * x[i].to(torch::kDouble) + m * x[perm_v[i]].to(torch::kDouble);
      const double tol = dtype == torch::kHalf ? 5e-3 : 1e-6;
      CHECK(torch::allclose(x_mixed[i].to(torch::kDouble), expected, tol, tol));
    }
  }
}

TEST_CASE("mixup_batch on a hand-computed 2x2 example") {
  const torch::Tensor x = torch::tensor({{1.0, 2.0}, {3.0, 4.0}});
  const torch::Tensor y = long_tensor({0, 1});
  const auto result = cf::mixup_batch(x, y, 0.25, long_tensor({1, 0}));
  CHECK((torch::equal(result.input_mixed, torch::tensor({{1.5, 2.5}, {2.5, 3.5}}))));
  CHECK((to_vector(result.target_perm) == std::vector<int64_t>{1, 0}));
  CHECK(result.mixing == 0.25);
  // The defaulted form with optional arguments gives the same result.
  const auto same = cf::mixup_batch(x, y, 0.25, 0.2, long_tensor({1, 0}));
  CHECK(torch::equal(same.input_mixed, result.input_mixed));
}

TEST_CASE("mixup_batch with random draws: mixing in [0, 0.5], a permutation, reproducible under a seed") {
  const torch::Tensor x = torch::randn({8, 3, 2, 2});
  const torch::Tensor y = torch::arange(8, torch::TensorOptions().dtype(torch::kLong));
  for (const double alpha : {0.2, 1.0, 4.0}) {
    CAPTURE(alpha);
    for (int trial = 0; trial < 50; ++trial) {
      auto [x_mixed, y_perm, mixing] = cf::mixup_batch(x, y, std::nullopt, alpha);
      REQUIRE(mixing >= 0.0);
      REQUIRE(mixing <= 0.5);
      // y = arange, so y_perm is the permutation itself.
      std::vector<int64_t> p = to_vector(y_perm);
      std::vector<int64_t> sorted = p;
      std::sort(sorted.begin(), sorted.end());
      CHECK(sorted == to_vector(y));
      CHECK(torch::equal(x_mixed, (1.0 - mixing) * x + mixing * x.index_select(0, y_perm)));
    }
  }
  torch::manual_seed(11);
  const auto a = cf::mixup_batch(x, y);
  torch::manual_seed(11);
  const auto b = cf::mixup_batch(x, y);
  CHECK(a.mixing == b.mixing);
  CHECK(torch::equal(a.input_mixed, b.input_mixed));
  CHECK(torch::equal(a.target_perm, b.target_perm));

  // alpha = 0 switches mixing off: m = 0 and the input comes back unchanged.
  const auto off = cf::mixup_batch(x, y, std::nullopt, 0.0);
  CHECK(off.mixing == 0.0);
  CHECK(torch::equal(off.input_mixed, x));
}

TEST_CASE("mixup_batch argument checks") {
  const torch::Tensor x = torch::randn({4, 3});
  const torch::Tensor y = long_tensor({0, 1, 2, 3});
  check_bad_argument([&] { (void)cf::mixup_batch(x, y, std::nullopt, -0.5); }, {"alpha", "-0.5"});
  check_bad_argument([&] { (void)cf::sample_mixup_coef(-1.0); }, {"alpha", "-1"});
  check_bad_argument([&] { (void)cf::sample_beta(-2.0); }, {"alpha", "-2"});
  check_bad_argument([&] { (void)cf::mixup_batch(x, y, 1.5, long_tensor({0, 1, 2, 3})); }, {"mixing", "1.5"});
  check_bad_argument([&] { (void)cf::mixup_batch(x, long_tensor({0, 1, 2})); }, {"batch size", "[4, 3]", "[3]"});
  check_bad_argument([&] { (void)cf::mixup_batch(x, y, 0.1, long_tensor({0, 1, 2})); }, {"indices", "4", "3"});
  check_bad_argument([&] { (void)cf::mixup_batch(x, y, 0.1, torch::zeros({4})); }, {"indices", "integer", "Float"});
  check_bad_argument([&] { (void)cf::mixup_batch(x, y, 0.1, torch::zeros({2, 2}, torch::kLong)); },
                     {"indices", "1-D", "[2, 2]"});
  check_bad_argument([&] { (void)cf::mixup_batch(torch::Tensor(), y); }, {"input", "defined"});
}

// ---------------------------------------------------------------------------------------------------------------
// CutMix
// ---------------------------------------------------------------------------------------------------------------

namespace {

// Composer's test oracle: inside the (dim 2, dim 3) box every pixel comes from the partner, outside from self.
void check_cutmix_pixels(const torch::Tensor& x, const torch::Tensor& perm, const torch::Tensor& out,
                         const cf::BBox& box) {
  const auto p = to_vector(perm);
  const torch::Tensor xd = x.to(torch::kDouble);
  const torch::Tensor od = out.to(torch::kDouble);
  int64_t mismatches = 0;
  for (int64_t i = 0; i < x.size(0); ++i) {
    for (int64_t j = 0; j < x.size(2); ++j) {
      for (int64_t k = 0; k < x.size(3); ++k) {
        const bool inside = j >= box.x1 && j < box.x2 && k >= box.y1 && k < box.y2;
        const int64_t src = inside ? p[i] : i;
        if (!torch::equal(od.index({i, torch::indexing::Slice(), j, k}),
                          xd.index({src, torch::indexing::Slice(), j, k}))) {
          ++mismatches;
        }
      }
    }
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("cutmix_batch with an explicit box pastes exactly the box from the permuted batch") {
  for (const auto dtype : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kByte}) {
    CAPTURE(dtype);
    // D2 = 5 rows, D3 = 7 columns: the box's x coordinates index dim 2 and its y coordinates dim 3.
    const torch::Tensor x = distinct_batch({4, 2, 5, 7}, torch::kDouble).remainder(250).to(dtype);
    const torch::Tensor y = long_tensor({100, 101, 102, 103});
    const torch::Tensor perm = long_tensor({3, 2, 0, 1});
    const cf::BBox box{1, 2, 4, 6};
    auto [x_mixed, y_perm, area, bbox] = cf::cutmix_batch(x, y, box, perm);
    CHECK((x_mixed.scalar_type() == dtype));
    CHECK((x_mixed.sizes() == x.sizes()));
    CHECK(bbox == box);
    CHECK(area == doctest::Approx(1.0 - 12.0 / 35.0));
    CHECK((to_vector(y_perm) == std::vector<int64_t>{103, 102, 100, 101}));
    check_cutmix_pixels(x, perm, x_mixed, box);
    // The input is not modified.
    CHECK((torch::equal(x, distinct_batch({4, 2, 5, 7}, torch::kDouble).remainder(250).to(dtype))));
  }
}

TEST_CASE("cutmix_rand_bbox: Composer's box rule, clipping at borders and corners, and the area") {
  // lambda = 0.75 -> r = sqrt(0.25) = 0.5 exactly; on 8x8 the cut is 4 and the half-side 2.
  CHECK((cf::cutmix_rand_bbox(8, 8, 0.75, 4, 4) == cf::BBox{2, 2, 6, 6}));
  CHECK(cf::cutmix_area(8, 8, cf::BBox{2, 2, 6, 6}) == 0.75);  // unclipped: area equals lambda
  CHECK((cf::cutmix_rand_bbox(8, 8, 0.75, 0, 0) == cf::BBox{0, 0, 2, 2}));  // top-left corner, clipped
  CHECK((cf::cutmix_area(8, 8, cf::BBox{0, 0, 2, 2}) == 1.0 - 4.0 / 64.0));
  CHECK((cf::cutmix_rand_bbox(8, 8, 0.75, 7, 7) == cf::BBox{5, 5, 8, 8}));  // bottom-right corner, clipped
  CHECK((cf::cutmix_area(8, 8, cf::BBox{5, 5, 8, 8}) == 1.0 - 9.0 / 64.0));
  // Non-square 6 x 10: cuts int(6 * 0.5) = 3 and int(10 * 0.5) = 5, half-sides 1 and 2 (odd cuts lose a pixel).
  CHECK((cf::cutmix_rand_bbox(6, 10, 0.75, 3, 5) == cf::BBox{2, 3, 4, 7}));
  CHECK((cf::cutmix_rand_bbox(6, 10, 0.75, 0, 9) == cf::BBox{0, 7, 1, 10}));
  CHECK((cf::cutmix_area(6, 10, cf::BBox{0, 7, 1, 10}) == doctest::Approx(1.0 - 3.0 / 60.0)));
  // Centres outside the image (possible with uniform sampling) clip to an edge strip or to nothing.
  CHECK((cf::cutmix_rand_bbox(8, 8, 0.75, -2, 4) == cf::BBox{0, 2, 0, 6}));
  CHECK((cf::cutmix_rand_bbox(8, 8, 0.75, 9, 4) == cf::BBox{7, 2, 8, 6}));
  // lambda = 1 keeps everything (empty box); lambda = 0 with a centred box covers the whole image.
  CHECK((cf::cutmix_rand_bbox(8, 8, 1.0, 4, 4) == cf::BBox{4, 4, 4, 4}));
  CHECK((cf::cutmix_area(8, 8, cf::BBox{4, 4, 4, 4}) == 1.0));
  CHECK((cf::cutmix_rand_bbox(6, 10, 0.0, 3, 5) == cf::BBox{0, 0, 6, 10}));
  CHECK((cf::cutmix_area(6, 10, cf::BBox{0, 0, 6, 10}) == 0.0));

  // Random centres: boxes always lie inside the image; uniform sampling reaches the border strips too.
  torch::manual_seed(5);
  bool touched_top = false;
  for (int i = 0; i < 300; ++i) {
    const cf::BBox b = cf::cutmix_rand_bbox(9, 13, 0.5, std::nullopt, std::nullopt, i % 2 == 0);
    REQUIRE(0 <= b.x1);
    REQUIRE(b.x1 <= b.x2);
    REQUIRE(b.x2 <= 9);
    REQUIRE(0 <= b.y1);
    REQUIRE(b.y1 <= b.y2);
    REQUIRE(b.y2 <= 13);
    // Side before clipping is 2 * (cut // 2) with cut = int(D * sqrt(0.5)).
    CHECK(b.x2 - b.x1 <= 2 * (static_cast<int64_t>(9 * std::sqrt(0.5)) / 2));
    CHECK(b.y2 - b.y1 <= 2 * (static_cast<int64_t>(13 * std::sqrt(0.5)) / 2));
    touched_top = touched_top || b.x1 == 0;
  }
  CHECK(touched_top);
}

TEST_CASE("cutmix_batch random box: pixels follow the returned box and area; bbox round-trips") {
  const torch::Tensor x = distinct_batch({6, 3, 9, 11});
  const torch::Tensor y = torch::arange(6, torch::TensorOptions().dtype(torch::kLong));
  for (const bool uniform : {false, true}) {
    for (const double alpha : {0.2, 1.0}) {
      CAPTURE(uniform);
      CAPTURE(alpha);
      for (int trial = 0; trial < 10; ++trial) {
        auto [x_mixed, y_perm, area, bbox] = cf::cutmix_batch(x, y, std::nullopt, alpha, std::nullopt, std::nullopt,
                                                              uniform);
        CHECK(area == doctest::Approx(1.0 - static_cast<double>((bbox.x2 - bbox.x1) * (bbox.y2 - bbox.y1)) / 99.0));
        CHECK(area == cf::cutmix_area(9, 11, bbox));
        CHECK(area >= 0.0);
        CHECK(area <= 1.0);
        check_cutmix_pixels(x, y_perm, x_mixed, bbox);  // y = arange, so y_perm is the permutation
        // Feeding the returned box (in Composer's (x1, y1, x2, y2) order) and permutation back reproduces it.
        const auto again = cf::cutmix_batch(x, y, std::nullopt, 1.0, bbox, y_perm);
        CHECK(torch::equal(again.input_mixed, x_mixed));
        CHECK(again.area == area);
        CHECK(again.bbox == bbox);
      }
    }
  }
  torch::manual_seed(21);
  const auto a = cf::cutmix_batch(x, y);
  torch::manual_seed(21);
  const auto b = cf::cutmix_batch(x, y);
  CHECK(a.bbox == b.bbox);
  CHECK(torch::equal(a.input_mixed, b.input_mixed));
}

TEST_CASE("cutmix_batch with length sizes the box as Composer's code does: side ~ sqrt(1 - length^2) of the image") {
  // Composer's cutmix_batch(length=l) takes λ = int(l·W)·int(l·H)/(H·W) and passes it to _rand_bbox as the kept
  // fraction, so the cuts are int(D·√(1 − λ)) (its docstring says l·D instead). By hand, for an 8×12 image:
  //   l     int(8l) int(12l)  λ              √(1 − λ)   cut2 = int(8·√)  cut3 = int(12·√)  box before clipping
  //   0.5   4       6         24/96 = 0.25   0.8660     6 (6.93)         10 (10.39)        6 × 10
  //   0.75  6       9         54/96          0.6614     5 (5.29)         7 (7.94)          4 × 6
  //   0.9   7       10        70/96          0.5204     4 (4.16)         6 (6.25)          4 × 6
  //   1     8       12        1              0          0                0                 empty
  //   0     0       0         0              1          8                12                8 × 12
  // (a box of cut c around centre m is [m − c//2, m + c//2), clipped to the image).
  struct Row {
    double length;
    double lambda;
    int64_t cut2;
    int64_t cut3;
  };
  const std::vector<Row> rows = {
      {0.5, 0.25, 6, 10}, {0.75, 54.0 / 96.0, 5, 7}, {0.9, 70.0 / 96.0, 4, 6}, {1.0, 1.0, 0, 0}, {0.0, 0.0, 8, 12}};
  const torch::Tensor x = distinct_batch({2, 1, 8, 12});
  const torch::Tensor y = long_tensor({0, 1});
  for (const Row& row : rows) {
    CAPTURE(row.length);
    CHECK(cf::cutmix_length_lambda(8, 12, row.length) == row.lambda);
    bool saw_full_box = false;
    for (uint64_t trial = 0; trial < 40; ++trial) {
      CAPTURE(trial);
      torch::manual_seed(300 + trial);
      auto [x_mixed, y_perm, area, bbox] = cf::cutmix_batch(x, y, row.length);
      // The same draws again: the permutation, then the centre on dim 2 and on dim 3 (no λ is drawn).
      torch::manual_seed(300 + trial);
      (void)cf::random_permutation(2);
      const int64_t c2 = cf::detail::randint(0, 8);
      const int64_t c3 = cf::detail::randint(0, 12);
      const cf::BBox expected{std::clamp<int64_t>(c2 - row.cut2 / 2, 0, 8),
                              std::clamp<int64_t>(c3 - row.cut3 / 2, 0, 12),
                              std::clamp<int64_t>(c2 + row.cut2 / 2, 0, 8),
                              std::clamp<int64_t>(c3 + row.cut3 / 2, 0, 12)};
      CHECK(bbox == expected);
      CHECK(area == cf::cutmix_area(8, 12, bbox));
      check_cutmix_pixels(x, y_perm, x_mixed, bbox);
      saw_full_box = saw_full_box || (bbox.x2 - bbox.x1 == row.cut2 / 2 * 2 && bbox.y2 - bbox.y1 == row.cut3 / 2 * 2);
    }
    CHECK(saw_full_box);
  }
  // length 1 pastes nothing: the batch is unchanged and the targets keep all their weight.
  torch::manual_seed(5);
  const auto whole = cf::cutmix_batch(x, y, 1.0);
  CHECK(whole.area == 1.0);
  CHECK(torch::equal(whole.input_mixed, x));
  check_bad_argument([] { (void)cf::cutmix_length_lambda(8, 12, -0.5); }, {"length", "-0.5"});
  check_bad_argument([] { (void)cf::cutmix_length_lambda(0, 12, 0.5); }, {"image size", "0x12"});
}

TEST_CASE("cutmix_batch argument checks") {
  const torch::Tensor x = torch::randn({4, 3, 8, 8});
  const torch::Tensor y = long_tensor({0, 1, 2, 3});
  check_bad_argument([&] { (void)cf::cutmix_batch(x, y, 0.5, 1.0, cf::BBox{0, 0, 2, 2}); },
                     {"length", "bbox", "0.5"});
  check_bad_argument([&] { (void)cf::cutmix_batch(x, y, std::nullopt, -1.0); }, {"alpha", "-1"});
  check_bad_argument([&] { (void)cf::cutmix_batch(torch::randn({4, 8, 8}), y); }, {"4-D", "[4, 8, 8]"});
  check_bad_argument([&] { (void)cf::cutmix_batch(x, long_tensor({0, 1})); }, {"batch size", "[2]"});
  check_bad_argument([&] { (void)cf::cutmix_batch(x, y, cf::BBox{0, 0, 2, 2}, long_tensor({0, 1, 2})); },
                     {"indices", "4", "3"});
  check_bad_argument([&] { (void)cf::cutmix_batch(x, y, cf::BBox{0, 0, 9, 2}, long_tensor({0, 1, 2, 3})); },
                     {"bbox", "(0, 0, 9, 2)"});
  check_bad_argument([&] { (void)cf::cutmix_batch(x, y, cf::BBox{3, 0, 2, 2}, long_tensor({0, 1, 2, 3})); },
                     {"bbox", "(3, 0, 2, 2)"});
  check_bad_argument([&] { (void)cf::cutmix_batch(x, y, 1.5); }, {"length", "1.5"});
  check_bad_argument([&] { (void)cf::cutmix_rand_bbox(8, 8, 1.2); }, {"cutmix_lambda", "1.2"});
  check_bad_argument([&] { (void)cf::sample_cutmix_coef(-0.1); }, {"alpha", "-0.1"});
}

// ---------------------------------------------------------------------------------------------------------------
// CutOut
// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("cutout_hole reproduces Composer's mask boxes at corners, edges and the centre") {
  // 16 x 16, side 4: half-side 2.
  CHECK((cf::cutout_hole(16, 16, 7, 7, 4) == cf::CutoutHole{5, 5, 9, 9}));
  CHECK((cf::cutout_hole(16, 16, 0, 0, 4) == cf::CutoutHole{0, 0, 2, 2}));
  CHECK((cf::cutout_hole(16, 16, 16, 16, 4) == cf::CutoutHole{14, 14, 16, 16}));
  // 16 x 32 with centre (y = 16, x = 0).
  CHECK((cf::cutout_hole(16, 32, 16, 0, 4) == cf::CutoutHole{14, 0, 16, 2}));
  // Odd side 3 gives a 2 x 2 hole (half-side 1); side 1 gives no hole at all.
  CHECK((cf::cutout_hole(16, 16, 7, 7, 3) == cf::CutoutHole{6, 6, 8, 8}));
  CHECK((cf::cutout_hole(16, 16, 7, 7, 1) == cf::CutoutHole{7, 7, 7, 7}));
  CHECK(cf::cutout_length_pixels(32, 20, 0.5) == 10);
  CHECK(cf::cutout_length_pixels(7, 9, 0.3) == 2);
}

TEST_CASE("cutout_batch with explicit holes zeroes exactly the holes") {
  for (const auto dtype : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kByte}) {
    CAPTURE(dtype);
    const torch::Tensor x = distinct_batch({2, 3, 6, 7}, torch::kDouble).remainder(200).add(1).to(dtype);
    const std::vector<cf::CutoutHole> holes{{1, 2, 3, 5}, {2, 4, 5, 6}};  // overlapping
    const torch::Tensor out = cf::cutout_batch(x, holes);
    CHECK((out.scalar_type() == dtype));
    CHECK((out.sizes() == x.sizes()));
    const torch::Tensor xd = x.to(torch::kDouble);
    const torch::Tensor od = out.to(torch::kDouble);
    int64_t wrong = 0;
    int64_t zeros = 0;
    for (int64_t n = 0; n < 2; ++n) {
      for (int64_t c = 0; c < 3; ++c) {
        for (int64_t i = 0; i < 6; ++i) {
          for (int64_t j = 0; j < 7; ++j) {
            const bool in_hole = (i >= 1 && i < 3 && j >= 2 && j < 5) || (i >= 2 && i < 5 && j >= 4 && j < 6);
            const double v = od[n][c][i][j].item<double>();
            if (in_hole) {
              zeros += v == 0.0 ? 1 : 0;
              wrong += v == 0.0 ? 0 : 1;
            } else {
              wrong += v == xd[n][c][i][j].item<double>() ? 0 : 1;
            }
          }
        }
      }
    }
    CHECK(wrong == 0);
    CHECK(zeros == 2 * 3 * (6 + 6 - 1));  // 2x3 and 3x2 holes overlapping in one pixel
  }
  // A single (C, H, W) image works too; the holes are a fill, so negative and infinite values become +0.
  torch::Tensor img = -torch::ones({2, 4, 4});
  img[0][1][1] = std::numeric_limits<float>::infinity();
  const torch::Tensor out = cf::cutout_batch(img, {cf::CutoutHole{0, 0, 2, 2}});
  CHECK(out[0][1][1].item<float>() == 0.0f);
  CHECK(!std::signbit(out[1][0][0].item<float>()));
  CHECK(out[1][3][3].item<float>() == -1.0f);
  CHECK((torch::equal(cf::cutout_batch(img, std::vector<cf::CutoutHole>{}), img)));
}

TEST_CASE("cutout_batch random holes: the same square holes for every image and channel, reproducible") {
  const torch::Tensor x = distinct_batch({3, 2, 20, 24});
  for (const bool uniform : {false, true}) {
    CAPTURE(uniform);
    for (int trial = 0; trial < 20; ++trial) {
      torch::manual_seed(100 + trial);
      const torch::Tensor out = cf::cutout_batch(x, 1, 0.5, uniform);
      torch::manual_seed(100 + trial);
      const auto holes = cf::sample_cutout_holes(20, 24, 1, cf::cutout_length_pixels(20, 24, 0.5), uniform);
      REQUIRE(holes.size() == 1);
      CHECK(torch::equal(out, cf::cutout_batch(x, holes)));
      // Side L = int(20 * 0.5) = 10: the hole is at most 10 x 10, and exactly that when not clipped.
      const auto& h = holes[0];
      CHECK(h.y2 - h.y1 <= 10);
      CHECK(h.x2 - h.x1 <= 10);
      if (h.y1 > 0 && h.y2 < 20) CHECK(h.y2 - h.y1 == 10);
      if (h.x1 > 0 && h.x2 < 24) CHECK(h.x2 - h.x1 == 10);
      const torch::Tensor mask = out.eq(0);
      for (int64_t n = 0; n < 3; ++n) {
        for (int64_t c = 0; c < 2; ++c) CHECK(torch::equal(mask[n][c], mask[0][0]));
      }
      CHECK(mask[0][0].sum().item<int64_t>() == (h.y2 - h.y1) * (h.x2 - h.x1));
    }
  }
  // Several holes: every drawn hole is zero.
  torch::manual_seed(4);
  const auto holes = cf::sample_cutout_holes(20, 24, 3, 6);
  CHECK(holes.size() == 3);
  const torch::Tensor out = cf::cutout_batch(x, holes);
  for (const auto& h : holes) {
    CHECK(out.slice(2, h.y1, h.y2).slice(3, h.x1, h.x2).eq(0).all().item<bool>());
  }
}

TEST_CASE("uniform_sampling centres use floor division and cover every row equally often") {
  // Python's -L // 2 floors: -5 // 2 == -3, where C++ division would give -2.
  CHECK(composer::functional::detail::floor_div(-5, 2) == -3);
  CHECK(composer::functional::detail::floor_div(-4, 2) == -2);
  CHECK(composer::functional::detail::floor_div(5, 2) == 2);
  CHECK(composer::functional::detail::floor_div(0, 2) == 0);

  // Side 4 on 10 rows: centres in {-2, ..., 11}, so each row is covered by 4 of the 14 centres.
  torch::manual_seed(77);
  const int draws = 14000;
  std::vector<double> uniform_cover(10, 0.0);
  std::vector<double> plain_cover(10, 0.0);
  for (int i = 0; i < draws; ++i) {
    const auto u = cf::sample_cutout_holes(10, 10, 1, 4, true)[0];
    for (int64_t r = u.y1; r < u.y2; ++r) uniform_cover[static_cast<size_t>(r)] += 1.0 / draws;
    const auto p = cf::sample_cutout_holes(10, 10, 1, 4, false)[0];
    for (int64_t r = p.y1; r < p.y2; ++r) plain_cover[static_cast<size_t>(r)] += 1.0 / draws;
  }
  for (size_t r = 0; r < 10; ++r) {
    CAPTURE(r);
    CHECK(std::abs(uniform_cover[r] - 4.0 / 14.0) < 0.02);
  }
  // Without uniform sampling the border rows are cut less often (by 3 of the 10 centres instead of 4).
  CHECK(std::abs(plain_cover[0] - 0.3) < 0.02);
  CHECK(std::abs(plain_cover[5] - 0.4) < 0.02);

  // Odd side 5 (half-side 2) with uniform sampling: centres in {-3, ..., 11}; a centre at -3 or -2 clips to an
  // empty band, so 2 in 15 holes are empty along the rows.
  int empty = 0;
  for (int i = 0; i < draws; ++i) {
    const auto h = cf::sample_cutout_holes(10, 10, 1, 5, true)[0];
    empty += h.y1 == h.y2 ? 1 : 0;
  }
  CHECK(std::abs(static_cast<double>(empty) / draws - 2.0 / 15.0) < 0.015);

  // The same rule for CutMix boxes (cut 4 on 10 rows with lambda = 1 - 0.16 -> r = 0.4).
  std::vector<double> cutmix_cover(10, 0.0);
  for (int i = 0; i < draws; ++i) {
    const cf::BBox b = cf::cutmix_rand_bbox(10, 10, 0.84, std::nullopt, std::nullopt, true);
    for (int64_t r = b.x1; r < b.x2; ++r) cutmix_cover[static_cast<size_t>(r)] += 1.0 / draws;
  }
  for (size_t r = 0; r < 10; ++r) {
    CAPTURE(r);
    CHECK(std::abs(cutmix_cover[r] - 4.0 / 14.0) < 0.02);
  }
}

TEST_CASE("cutout_batch argument checks") {
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  check_bad_argument([&] { (void)cf::cutout_batch(torch::randn({8, 8})); }, {"input", "[8, 8]"});
  check_bad_argument([&] { (void)cf::cutout_batch(torch::randn({1, 2, 3, 8, 8})); }, {"input", "[1, 2, 3, 8, 8]"});
  check_bad_argument([&] { (void)cf::cutout_batch(x, -1); }, {"num_holes", "-1"});
  check_bad_argument([&] { (void)cf::cutout_batch(x, 1, 0.0); }, {"length", "0"});
  check_bad_argument([&] { (void)cf::cutout_batch(x, 1, 1.5); }, {"length", "1.5"});
  check_bad_argument([&] { (void)cf::cutout_batch(x, {cf::CutoutHole{0, 0, 9, 2}}); }, {"hole", "(0, 0, 9, 2)"});
}

// ---------------------------------------------------------------------------------------------------------------
// ColOut
// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("colout_batch with explicit indices keeps exactly the given rows and columns") {
  for (const auto dtype : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kLong}) {
    CAPTURE(dtype);
    const torch::Tensor x = distinct_batch({2, 3, 5, 6}, dtype);
    const cf::ColOutIndices kept{long_tensor({0, 2, 4}), long_tensor({1, 3, 5})};
    const torch::Tensor out = cf::colout_batch(x, kept);
    CHECK((out.scalar_type() == dtype));
    CHECK((out.sizes() == torch::IntArrayRef({2, 3, 3, 3})));
    const std::vector<int64_t> rows{0, 2, 4};
    const std::vector<int64_t> cols{1, 3, 5};
    int64_t wrong = 0;
    for (int64_t n = 0; n < 2; ++n) {
      for (int64_t c = 0; c < 3; ++c) {
        for (int64_t i = 0; i < 3; ++i) {
          for (int64_t j = 0; j < 3; ++j) {
            wrong += out[n][c][i][j].item<double>() == x[n][c][rows[i]][cols[j]].item<double>() ? 0 : 1;
          }
        }
      }
    }
    CHECK(wrong == 0);
    // Nothing from a dropped row (1 or 3) or a dropped column (0, 2, 4) survives.
    const torch::Tensor dropped = torch::cat({x.index_select(2, long_tensor({1, 3})).flatten(),
                                              x.index_select(3, long_tensor({0, 2, 4})).flatten()});
    CHECK(!torch::isin(out.flatten().to(torch::kDouble), dropped.to(torch::kDouble)).any().item<bool>());
  }
}

TEST_CASE("colout_batch random rows and columns: Composer's output sizes, sorted indices, seeds") {
  struct Case {
    std::vector<int64_t> shape;
    double p_row;
    double p_col;
  };
  for (const Case& c : std::vector<Case>{{{1, 3, 32, 32}, 0.15, 0.15},
                                         {{4, 3, 31, 17}, 0.15, 0.3},
                                         {{3, 16, 20}, 0.5, 0.25},
                                         {{2, 1, 10, 10}, 0.0, 1.0}}) {
    CAPTURE(c.shape.size());
    const torch::Tensor x = distinct_batch(c.shape);
    const int64_t h = c.shape[c.shape.size() - 2];
    const int64_t w = c.shape.back();
    torch::manual_seed(8);
    const torch::Tensor out = cf::colout_batch(x, c.p_row, c.p_col);
    CHECK(out.size(-2) == static_cast<int64_t>((1.0 - c.p_row) * h));
    CHECK(out.size(-1) == static_cast<int64_t>((1.0 - c.p_col) * w));
    CHECK(out.dim() == x.dim());
    torch::manual_seed(8);
    const cf::ColOutIndices kept = cf::sample_colout_indices(h, w, c.p_row, c.p_col);
    CHECK(torch::equal(out, cf::colout_batch(x, kept)));
    for (const auto& idx : {kept.kept_rows, kept.kept_cols}) {
      const auto v = to_vector(idx);
      CHECK(std::is_sorted(v.begin(), v.end()));
      CHECK(std::adjacent_find(v.begin(), v.end()) == v.end());
    }
  }
  // p = 0 keeps everything.
  const torch::Tensor x = distinct_batch({2, 3, 6, 6});
  CHECK(torch::equal(cf::colout_batch(x, 0.0, 0.0), x));
}

TEST_CASE("colout_batch on (input, target): 'auto' resizes same-sized masks only; untouched targets are the same") {
  const torch::Tensor x = distinct_batch({2, 3, 8, 10});
  const torch::Tensor labels = long_tensor({4, 5});
  const torch::Tensor mask = distinct_batch({2, 8, 10}, torch::kLong);
  const cf::ColOutIndices kept{long_tensor({0, 1, 5, 7}), long_tensor({2, 3, 4, 8, 9})};

  const auto [x1, y1] = cf::colout_batch(x, labels, kept);
  CHECK(y1.is_same(labels));
  CHECK(torch::equal(x1, x.index_select(2, kept.kept_rows).index_select(3, kept.kept_cols)));

  const auto [x2, y2] = cf::colout_batch(x, mask, kept);
  CHECK(torch::equal(y2, mask.index_select(1, kept.kept_rows).index_select(2, kept.kept_cols)));

  const auto [x3, y3] = cf::colout_batch(x, mask, kept, false);
  CHECK(y3.is_same(mask));
  const auto [x4, y4] = cf::colout_batch(x, mask, kept, "AUTO");
  CHECK((y4.sizes() == torch::IntArrayRef({2, 4, 5})));

  // A mask with a different spatial size is left alone by 'auto' but cut when forced.
  const torch::Tensor small_mask = torch::zeros({2, 8, 9});
  CHECK(cf::colout_batch(x, small_mask, kept).target.is_same(small_mask));
  const torch::Tensor wide = distinct_batch({2, 8, 12});
  CHECK((cf::colout_batch(x, wide, kept, true).target.sizes() == torch::IntArrayRef({2, 4, 5})));

  // The random pair form drops the same rows and columns from both.
  torch::manual_seed(31);
  const auto [xr, yr] = cf::colout_batch(x, x.select(1, 0), 0.25, 0.5);
  CHECK(torch::equal(xr.select(1, 0), yr));
  CHECK((xr.sizes() == torch::IntArrayRef({2, 3, 6, 5})));
}

TEST_CASE("colout_batch argument checks") {
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  check_bad_argument([&] { (void)cf::colout_batch(x, -0.1); }, {"p_row", "-0.1"});
  check_bad_argument([&] { (void)cf::colout_batch(x, 0.1, 1.5); }, {"p_col", "1.5"});
  check_bad_argument([&] { (void)cf::colout_batch(torch::randn({8})); }, {"input", "[8]"});
  check_bad_argument([&] { (void)cf::colout_batch(x, long_tensor({0, 1}), 0.1, 0.1, "sometimes"); },
                     {"resize_target", "sometimes"});
  check_bad_argument([&] { (void)cf::colout_batch(x, long_tensor({0, 1}), 0.1, 0.1, true); },
                     {"resize_target", "[2]"});
  check_bad_argument([&] { (void)cf::colout_batch(x, cf::ColOutIndices{torch::zeros({2}), long_tensor({0})}); },
                     {"kept_rows", "integer"});
}

// ---------------------------------------------------------------------------------------------------------------
// Label smoothing
// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("smooth_labels: (1 - s) onehot + s / C, exact small cases and rows summing to 1") {
  const torch::Tensor logits = torch::randn({3, 4});
  const torch::Tensor y = long_tensor({0, 3, 1});
  const torch::Tensor smoothed = cf::smooth_labels(logits, y, 0.1);
  CHECK((smoothed.scalar_type() == torch::kFloat));
  CHECK((smoothed.sizes() == logits.sizes()));
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t c = 0; c < 4; ++c) {
      const double expected = c == to_vector(y)[static_cast<size_t>(i)] ? 0.925 : 0.025;
      CHECK(smoothed[i][c].item<float>() == doctest::Approx(expected).epsilon(1e-6));
    }
  }
  CHECK((torch::allclose(smoothed.sum(1), torch::ones({3}), 1e-6, 1e-6)));

  // One-hot targets give the same result as index targets; soft targets follow the same formula.
  const torch::Tensor one_hot = torch::nn::functional::one_hot(y, 4).to(torch::kFloat);
  CHECK(torch::equal(cf::smooth_labels(logits, one_hot, 0.1), smoothed));
  const torch::Tensor soft = torch::tensor({{0.2f, 0.8f}});
  const torch::Tensor soft_smoothed = cf::smooth_labels(torch::zeros({1, 2}), soft, 0.1);
  CHECK(soft_smoothed[0][0].item<float>() == doctest::Approx(0.23).epsilon(1e-6));
  CHECK(soft_smoothed[0][1].item<float>() == doctest::Approx(0.77).epsilon(1e-6));

  // The smoothing range [0, 1]: 0 leaves one-hot rows alone, 1 gives the uniform distribution.
  for (const double s : {0.0, 0.1, 0.5, 0.9, 1.0}) {
    CAPTURE(s);
    const torch::Tensor out = cf::smooth_labels(logits, y, s);
    CHECK(torch::allclose(out, one_hot * (1.0 - s) + s / 4.0));
    CHECK((torch::allclose(out.sum(1), torch::ones({3}), 1e-6, 1e-6)));
  }
  CHECK(torch::equal(cf::smooth_labels(logits, y, 0.0), one_hot));
  CHECK((torch::allclose(cf::smooth_labels(logits, y, 1.0), torch::full({3, 4}, 0.25))));
}

TEST_CASE("smooth_labels on segmentation targets and with negative (ignored) indices") {
  const torch::Tensor logits = torch::randn({2, 3, 4, 5});
  const torch::Tensor y = torch::randint(0, 3, {2, 4, 5}, torch::TensorOptions().dtype(torch::kLong));
  const torch::Tensor out = cf::smooth_labels(logits, y, 0.3);
  CHECK((out.sizes() == logits.sizes()));
  CHECK((torch::allclose(out.sum(1), torch::ones({2, 4, 5}), 1e-6, 1e-6)));
  const torch::Tensor on = out.gather(1, y.unsqueeze(1)).squeeze(1);
  CHECK((torch::allclose(on, torch::full({2, 4, 5}, 0.7f + 0.1f))));

  // A negative index is ignored: its row is s / C everywhere (summing to s, not 1), as in Composer.
  const torch::Tensor with_ignored = cf::smooth_labels(torch::zeros({2, 4}), long_tensor({-1, 2}), 0.2);
  CHECK((torch::allclose(with_ignored[0], torch::full({4}, 0.05f))));
  CHECK(with_ignored[1][2].item<float>() == doctest::Approx(0.85).epsilon(1e-6));
}

TEST_CASE("smooth_labels dtypes") {
  const torch::Tensor y = long_tensor({1, 0});
  CHECK((cf::smooth_labels(torch::zeros({2, 3}, torch::kDouble), y).scalar_type() == torch::kDouble));
  CHECK((cf::smooth_labels(torch::zeros({2, 3}, torch::kHalf), y).scalar_type() == torch::kFloat));
  CHECK((cf::smooth_labels(torch::zeros({2, 3}), y.to(torch::kInt)).scalar_type() == torch::kFloat));
  CHECK((cf::smooth_labels(torch::zeros({2, 3}), torch::zeros({2, 3}, torch::kDouble)).scalar_type() ==
         torch::kDouble));
  CHECK((cf::smooth_labels(torch::zeros({2, 3}), torch::zeros({2, 3}, torch::kHalf)).scalar_type() == torch::kHalf));
  // Integer one-hot rows (as from one_hot) become float32.
  const torch::Tensor int_one_hot = torch::nn::functional::one_hot(y, 3);
  const torch::Tensor out = cf::smooth_labels(torch::zeros({2, 3}), int_one_hot, 0.3);
  CHECK((out.scalar_type() == torch::kFloat));
  CHECK(torch::allclose(out, int_one_hot.to(torch::kFloat) * 0.7 + 0.1));
}

TEST_CASE("smooth_labels argument checks") {
  const torch::Tensor logits = torch::zeros({3, 4});
  const torch::Tensor y = long_tensor({0, 1, 2});
  check_bad_argument([&] { (void)cf::smooth_labels(logits, y, -0.1); }, {"smoothing", "-0.1"});
  check_bad_argument([&] { (void)cf::smooth_labels(logits, y, 1.5); }, {"smoothing", "1.5"});
  check_bad_argument([&] { (void)cf::smooth_labels(torch::zeros({3}), y); }, {"logits", "[3]"});
  check_bad_argument([&] { (void)cf::smooth_labels(logits, long_tensor({0, 1})); }, {"batch size", "[2]"});
  check_bad_argument([&] { (void)cf::smooth_labels(logits, torch::zeros({3, 5})); }, {"[3, 5]", "[3, 4]"});
  check_bad_argument([&] { (void)cf::smooth_labels(logits, torch::zeros({3})); }, {"integer", "Float"});
  check_bad_argument([&] { (void)cf::smooth_labels(logits, long_tensor({0, 4, 1})); }, {"num_classes", "4"});
}

// ---------------------------------------------------------------------------------------------------------------
// Progressive resizing
// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("resize_batch is a no-op returning the same tensors when scale_factor >= 1") {
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  const torch::Tensor y = long_tensor({0, 1});
  for (const double s : {1.0, 1.5}) {
    for (const char* mode : {"resize", "crop"}) {
      const auto [xs, ys] = cf::resize_batch(x, y, s, mode);
      CHECK(xs.is_same(x));
      CHECK(ys.is_same(y));
    }
    CHECK((cf::resize_batch(x, y, s, cf::CropOffset{0, 0}).input.is_same(x)));
  }
}

TEST_CASE("resize_batch resize mode: int(s H) x int(s W) nearest neighbour, as F.interpolate") {
  struct Case {
    int64_t h;
    int64_t w;
    double s;
  };
  for (const Case& c : std::vector<Case>{{32, 32, 0.5}, {31, 31, 0.5}, {32, 16, 0.75}, {31, 31, 0.75}}) {
    for (const auto dtype : {torch::kFloat, torch::kDouble}) {
      CAPTURE(c.h);
      CAPTURE(c.w);
      CAPTURE(c.s);
      const torch::Tensor x = distinct_batch({2, 3, c.h, c.w}, dtype);
      const torch::Tensor y = long_tensor({0, 1});
      const auto [xs, ys] = cf::resize_batch(x, y, c.s);
      const int64_t oh = static_cast<int64_t>(c.s * static_cast<double>(c.h));
      const int64_t ow = static_cast<int64_t>(c.s * static_cast<double>(c.w));
      CHECK((xs.sizes() == torch::IntArrayRef({2, 3, oh, ow})));
      CHECK((xs.scalar_type() == dtype));
      CHECK(ys.is_same(y));
      // Source pixel: min(floor(dst * float(1 / s)), in - 1), the scale being passed through in float.
      const float inv = static_cast<float>(1.0 / c.s);
      int64_t wrong = 0;
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t si = std::min<int64_t>(static_cast<int64_t>(std::floor(static_cast<float>(i) * inv)), c.h - 1);
          const int64_t sj = std::min<int64_t>(static_cast<int64_t>(std::floor(static_cast<float>(j) * inv)), c.w - 1);
          wrong += torch::equal(xs.index({torch::indexing::Slice(), torch::indexing::Slice(), i, j}),
                                x.index({torch::indexing::Slice(), torch::indexing::Slice(), si, sj}))
                       ? 0
                       : 1;
        }
      }
      CHECK(wrong == 0);
    }
  }
  // scale 0.5: every other pixel, starting at 0.
  const torch::Tensor x = distinct_batch({1, 1, 4, 4});
  CHECK(torch::equal(cf::resize_batch(x, long_tensor({0}), 0.5).input,
                     torch::tensor({{{{1.0f, 3.0f}, {9.0f, 11.0f}}}})));
}

TEST_CASE("resize_batch resizes index and dense targets when asked") {
  const torch::Tensor x = distinct_batch({2, 3, 8, 8});
  const torch::Tensor mask = distinct_batch({2, 8, 8}, torch::kLong).remainder(7);
  const auto [xs, ys] = cf::resize_batch(x, mask, 0.5, "resize", true);
  CHECK((ys.scalar_type() == torch::kLong));
  CHECK((ys.sizes() == torch::IntArrayRef({2, 4, 4})));
  CHECK(torch::equal(ys, mask.slice(1, 0, 8, 2).slice(2, 0, 8, 2)));
  const torch::Tensor dense = distinct_batch({2, 5, 8, 8});
  const auto [xd, yd] = cf::resize_batch(x, dense, 0.5, "resize", true);
  CHECK(torch::equal(yd, dense.slice(2, 0, 8, 2).slice(3, 0, 8, 2)));
}

TEST_CASE("resize_batch crop mode: explicit corners, the random corner, and target crops") {
  const torch::Tensor x = distinct_batch({2, 3, 32, 32});
  const torch::Tensor y = long_tensor({0, 1});
  const auto [xc, yc] = cf::resize_batch(x, y, 0.5, cf::CropOffset{3, 5});
  CHECK(torch::equal(xc, x.slice(2, 3, 19).slice(3, 5, 21)));
  CHECK(yc.is_same(y));
  // The last legal corner (H - Hc) is accepted in the explicit form.
  CHECK((cf::resize_batch(x, y, 0.5, cf::CropOffset{16, 16}).input.sizes() == torch::IntArrayRef({2, 3, 16, 16})));

  // With the input itself as target, the crops are identical (Composer's test).
  for (int trial = 0; trial < 10; ++trial) {
    const auto [a, b] = cf::resize_batch(x, x, 0.75, "crop", true);
    CHECK(torch::equal(a, b));
    CHECK((a.sizes() == torch::IntArrayRef({2, 3, 24, 24})));
  }
  // A half-resolution mask is cropped at the corner scaled by the size ratio, to int(s * 16).
  const torch::Tensor mask = distinct_batch({2, 16, 16}, torch::kLong);
  const auto [xm, ym] = cf::resize_batch(x, mask, 0.5, cf::CropOffset{6, 10}, true);
  CHECK(torch::equal(ym, mask.slice(1, 3, 11).slice(2, 5, 13)));
  CHECK((ym.scalar_type() == torch::kLong));

  // The random form draws its corner exactly as sample_crop_offset does, within [0, H - Hc).
  for (int trial = 0; trial < 30; ++trial) {
    torch::manual_seed(500 + trial);
    const torch::Tensor random_crop = cf::resize_batch(x, y, 0.4, "CROP").input;
    torch::manual_seed(500 + trial);
    const cf::CropOffset corner = cf::sample_crop_offset(32, 32, 0.4);
    CHECK(corner.top >= 0);
    CHECK(corner.top < 32 - 12);
    CHECK(corner.left >= 0);
    CHECK(corner.left < 32 - 12);
    CHECK(torch::equal(random_crop, cf::resize_batch(x, y, 0.4, corner).input));
  }
}

TEST_CASE("resize_batch argument checks") {
  const torch::Tensor x = torch::randn({2, 3, 32, 32});
  const torch::Tensor y = long_tensor({0, 1});
  check_bad_argument([&] { (void)cf::resize_batch(x, y, 0.0); }, {"scale_factor", "0"});
  check_bad_argument([&] { (void)cf::resize_batch(x, y, -0.5); }, {"scale_factor", "-0.5"});
  check_bad_argument([&] { (void)cf::resize_batch(x, y, 0.5, "bilinear"); }, {"mode", "bilinear"});
  check_bad_argument([&] { (void)cf::resize_batch(torch::randn({3, 32, 32}), y, 0.5); }, {"4-D", "[3, 32, 32]"});
  check_bad_argument([&] { (void)cf::resize_batch(x, y, 0.5, "resize", true); }, {"resize_targets", "[2]"});
  check_bad_argument([&] { (void)cf::resize_batch(x, torch::zeros({2, 32, 32}), 0.5, "resize", true); },
                     {"resize_targets", "Float", "[2, 32, 32]"});
  check_bad_argument([&] { (void)cf::resize_batch(x, torch::zeros({3, 32, 32}, torch::kLong), 0.5, "crop", true); },
                     {"batch size", "[3, 32, 32]"});
  check_bad_argument([&] { (void)cf::resize_batch(x, y, 0.01); }, {"scale_factor", "0.01", "empty"});
  check_bad_argument([&] { (void)cf::resize_batch(x, y, 0.5, cf::CropOffset{17, 0}); }, {"offset", "(17, 0)"});
  check_bad_argument([&] { (void)cf::resize_batch(x, y, 0.5, cf::CropOffset{0, -1}); }, {"offset", "(0, -1)"});
  check_bad_argument([&] { (void)cf::sample_crop_offset(32, 32, 1.0); }, {"scale_factor", "1"});
}

// ---------------------------------------------------------------------------------------------------------------
// Selective backprop
// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("should_selective_backprop truth table") {
  // Composer's table: epochs in [5, 15) with interrupt 0, or batch 0/2 with interrupt 2, run SB.
  CHECK(cf::should_selective_backprop(10, 0, 5, 15, 0));
  CHECK(cf::should_selective_backprop(10, 0, 5, 15, 2));
  CHECK(cf::should_selective_backprop(10, 2, 5, 15, 2));
  CHECK_FALSE(cf::should_selective_backprop(0, 0, 5, 15, 0));
  CHECK_FALSE(cf::should_selective_backprop(20, 0, 5, 15, 0));
  CHECK_FALSE(cf::should_selective_backprop(10, 1, 5, 15, 2));
  // Defaults start = 0.5 (inclusive), end = 0.9 (exclusive), interrupt = 2.
  CHECK(cf::should_selective_backprop(0.5, 0));
  CHECK_FALSE(cf::should_selective_backprop(0.5, 1));
  CHECK_FALSE(cf::should_selective_backprop(0.9, 0));
  CHECK_FALSE(cf::should_selective_backprop(0.49, 0));
  CHECK(cf::should_selective_backprop(0.89, 4));
  // interrupt = 3: every third batch is a plain step.
  CHECK(cf::should_selective_backprop(0.6, 0, 0.5, 0.9, 3));
  CHECK(cf::should_selective_backprop(0.6, 1, 0.5, 0.9, 3));
  CHECK_FALSE(cf::should_selective_backprop(0.6, 2, 0.5, 0.9, 3));
  CHECK(cf::should_selective_backprop(0.6, 3, 0.5, 0.9, 3));
  check_bad_argument([] { (void)cf::should_selective_backprop(0.6, 0, 0.5, 0.9, -1); }, {"interrupt", "-1"});
  check_bad_argument([] { (void)cf::should_selective_backprop(0.6, -3); }, {"batch_idx", "-3"});
}

TEST_CASE("selective_backprop_rank_probs follows ((r + 1/2) / N)^(1/keep - 1)") {
  const torch::Tensor linear = cf::selective_backprop_rank_probs(4, 0.5);
  CHECK((torch::allclose(linear, torch::tensor({1.0, 3.0, 5.0, 7.0}, torch::kDouble) / 16.0)));
  CHECK((torch::allclose(cf::selective_backprop_rank_probs(5, 1.0), torch::full({5}, 0.2, torch::kDouble))));
  const torch::Tensor cubic = cf::selective_backprop_rank_probs(3, 0.25);
  const torch::Tensor w = torch::tensor({1.0 / 6.0, 3.0 / 6.0, 5.0 / 6.0}, torch::kDouble).pow(3);
  CHECK(torch::allclose(cubic, w / w.sum()));
}

TEST_CASE("select_using_loss keeps int(keep N) distinct samples with matching targets, without gradients") {
  const int64_t n = 16;
  const torch::Tensor x = torch::arange(n, torch::TensorOptions().dtype(torch::kDouble)).view({n, 1}).repeat({1, 4});
  const torch::Tensor y = torch::arange(n, torch::TensorOptions().dtype(torch::kLong));
  auto linear = torch::nn::Linear(4, 1);
  linear->to(torch::kDouble);
  bool saw_grad = false;
  auto model_forward = [&](const torch::Tensor& input) {
    torch::Tensor out = linear->forward(input);
    saw_grad = saw_grad || out.requires_grad();
    return out;
  };
  auto loss_fun = [](const torch::Tensor& out, const torch::Tensor& target) {
    return (out.squeeze(1) - target.to(out.scalar_type())).pow(2);
  };
  for (const double keep : {1.0, 0.75, 0.5, 0.1}) {
    CAPTURE(keep);
    const auto [xs, ys] = cf::select_using_loss(x, y, model_forward, loss_fun, keep);
    const auto expected = static_cast<int64_t>(keep * static_cast<double>(n));
    CHECK((xs.sizes() == torch::IntArrayRef({expected, 4})));
    CHECK((ys.sizes() == torch::IntArrayRef({expected})));
    CHECK((xs.scalar_type() == torch::kDouble));
    // Each kept input row still goes with its own target, and no sample is kept twice.
    CHECK(torch::equal(xs.select(1, 0).to(torch::kLong), ys));
    const auto kept = to_vector(ys);
    CHECK(std::set<int64_t>(kept.begin(), kept.end()).size() == kept.size());
  }
  CHECK_FALSE(saw_grad);
  // keep = 1 keeps every sample.
  const auto all = to_vector(cf::select_using_loss(x, y, model_forward, loss_fun, 1.0).target);
  CHECK(std::set<int64_t>(all.begin(), all.end()).size() == static_cast<size_t>(n));
}

TEST_CASE("select_using_loss downscales the scoring pass only") {
  const torch::Tensor x = torch::randn({6, 3, 8, 8});
  const torch::Tensor y = torch::arange(6, torch::TensorOptions().dtype(torch::kLong));
  std::vector<int64_t> seen;
  auto model_forward = [&](const torch::Tensor& input) {
    seen.assign(input.sizes().begin(), input.sizes().end());
    return input.flatten(1).mean(1);
  };
  auto loss_fun = [](const torch::Tensor& out, const torch::Tensor&) { return out.abs(); };
  const auto [xs, ys] = cf::select_using_loss(x, y, model_forward, loss_fun, 0.5, 0.5);
  CHECK((seen == std::vector<int64_t>{6, 3, 4, 4}));
  CHECK((xs.sizes() == torch::IntArrayRef({3, 3, 8, 8})));
  CHECK(torch::equal(xs, x.index_select(0, ys)));
  // 3-D input downscales linearly along its last dim.
  (void)cf::select_using_loss(torch::randn({6, 2, 10}), y, model_forward, loss_fun, 0.5, 0.5);
  CHECK((seen == std::vector<int64_t>{6, 2, 5}));
}

TEST_CASE("select_indices_by_loss favours high losses with Composer's rank law, without replacement") {
  // N = 6, keep = 1/2: three distinct ranks drawn successively with weights (2r + 1) / 36.
  const int64_t n = 6;
  const double keep = 0.5;
  const auto probs_t = cf::selective_backprop_rank_probs(n, keep);
  std::vector<double> p(probs_t.data_ptr<double>(), probs_t.data_ptr<double>() + n);
  // Exact inclusion probabilities by enumerating every ordered draw of three distinct ranks.
  std::vector<double> inclusion(n, 0.0);
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t c = 0; c < n; ++c) {
        if (a == b || a == c || b == c) continue;
        const double prob = p[a] * p[b] / (1 - p[a]) * p[c] / (1 - p[a] - p[b]);
        inclusion[a] += prob;
        inclusion[b] += prob;
        inclusion[c] += prob;
      }
    }
  }
  // Losses in scrambled order: sample i has rank rank_of[i].
  const torch::Tensor losses = torch::tensor({0.3, 2.0, -1.0, 5.0, 0.1, 1.0});
  const std::vector<int64_t> rank_of{2, 4, 0, 5, 1, 3};
  torch::manual_seed(2024);
  const int trials = 6000;
  std::vector<double> counts(n, 0.0);
  for (int t = 0; t < trials; ++t) {
    const auto chosen = to_vector(cf::select_indices_by_loss(losses, keep));
    REQUIRE(chosen.size() == 3);
    REQUIRE(std::set<int64_t>(chosen.begin(), chosen.end()).size() == 3);
    for (const int64_t i : chosen) counts[static_cast<size_t>(i)] += 1.0;
  }
  for (int64_t i = 0; i < n; ++i) {
    CAPTURE(i);
    CHECK(std::abs(counts[i] / trials - inclusion[rank_of[i]]) < 0.03);
  }
  // The highest-loss sample is kept far more often than the lowest-loss one.
  CHECK(counts[3] > 2.0 * counts[2]);
}

TEST_CASE("select_using_loss argument checks") {
  const torch::Tensor x = torch::randn({4, 3});
  const torch::Tensor y = long_tensor({0, 1, 2, 3});
  auto model_forward = [](const torch::Tensor& input) { return input.sum(1); };
  auto per_sample = [](const torch::Tensor& out, const torch::Tensor&) { return out; };
  auto reduced = [](const torch::Tensor& out, const torch::Tensor&) { return out.mean(); };
  check_bad_argument([&] { (void)cf::select_using_loss(x, y, model_forward, per_sample, 0.0); }, {"keep", "0"});
  check_bad_argument([&] { (void)cf::select_using_loss(x, y, model_forward, per_sample, 1.5); }, {"keep", "1.5"});
  check_bad_argument([&] { (void)cf::select_using_loss(x, y, model_forward, per_sample, 0.5, 0.0); },
                     {"scale_factor", "0"});
  check_bad_argument([&] { (void)cf::select_using_loss(x, y, model_forward, per_sample, 0.5, 2.0); },
                     {"scale_factor", "2"});
  check_bad_argument([&] { (void)cf::select_using_loss(x, y, model_forward, per_sample, 0.5, 0.5); },
                     {"3-D, 4-D or 5-D", "[4, 3]"});
  check_bad_argument([&] { (void)cf::select_using_loss(x, y, model_forward, reduced, 0.5); },
                     {"one loss per sample", "[4]", "[]"});
  check_bad_argument([&] { (void)cf::select_using_loss(x, long_tensor({0, 1}), model_forward, per_sample); },
                     {"batch size"});
}

// ---------------------------------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------------------------------

TEST_CASE("transforms keep CUDA tensors on the GPU and match the CPU results") {
  if (!torch::cuda::is_available()) return;
  const torch::Device cuda(torch::kCUDA);
  const torch::Tensor x = distinct_batch({4, 3, 8, 10});
  const torch::Tensor y = long_tensor({0, 1, 2, 3});
  const torch::Tensor perm = long_tensor({1, 2, 3, 0});
  const torch::Tensor xg = x.to(cuda);
  const torch::Tensor yg = y.to(cuda);

  const auto mix = cf::mixup_batch(xg, yg, 0.3, perm);
  CHECK((mix.input_mixed.device() == xg.device()));
  CHECK(torch::allclose(mix.input_mixed.cpu(), cf::mixup_batch(x, y, 0.3, perm).input_mixed));
  const auto cut = cf::cutmix_batch(xg, yg, cf::BBox{1, 2, 5, 7}, perm);
  CHECK((torch::equal(cut.input_mixed.cpu(), cf::cutmix_batch(x, y, cf::BBox{1, 2, 5, 7}, perm).input_mixed)));
  CHECK(torch::equal(cf::cutout_batch(xg, {cf::CutoutHole{1, 1, 3, 4}}).cpu(),
                     cf::cutout_batch(x, {cf::CutoutHole{1, 1, 3, 4}})));
  const cf::ColOutIndices kept{long_tensor({0, 3, 5}), long_tensor({1, 2, 9})};
  CHECK(torch::equal(cf::colout_batch(xg, kept).cpu(), cf::colout_batch(x, kept)));
  CHECK((torch::equal(cf::smooth_labels(torch::zeros({4, 5}, cuda), yg).cpu(), cf::smooth_labels(torch::zeros({4, 5}), y))));
  CHECK(torch::equal(cf::resize_batch(xg, yg, 0.5).input.cpu(), cf::resize_batch(x, y, 0.5).input));
  auto forward = [](const torch::Tensor& t) { return t.flatten(1).sum(1); };
  auto loss = [](const torch::Tensor& out, const torch::Tensor&) { return out; };
  CHECK((cf::select_using_loss(xg, yg, forward, loss, 0.5).input.device() == xg.device()));
}
