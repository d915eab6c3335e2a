// The fused CPU transform's CutMix stage (alone and with MixUp, CutOut, normalisation and label smoothing) against
// the eager sequence mixup_batch → cutmix_batch → cutout_batch → (x − mean)/std, and its mixed targets; float16
// output.
#include <composer/functional.hpp>
#include <composer/kernels/fused_batch_cpu.hpp>

#include <torch/torch.h>

#include <doctest/doctest.h>

#include "../cuda/fused_reference.hpp"

#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace cf = composer::functional;
namespace ck = composer::kernels;
namespace st = composer::kernels::stage;

namespace {

using composer_test::fused::eager;
using composer_test::fused::Layout;
using composer_test::fused::output_format_for;
using composer_test::fused::Setup;
using composer_test::fused::Shape;

// Poisons `out`, runs the fused transform into it, and returns it as float32.
template <class T>
torch::Tensor fused_into(T& transform, const torch::Tensor& x, at::ScalarType dtype) {
  const at::MemoryFormat fmt = output_format_for(x);
  torch::Tensor out = torch::empty(x.sizes(), torch::TensorOptions().dtype(dtype).memory_format(fmt));
  out.fill_(std::numeric_limits<float>::quiet_NaN());
  transform.transform_input_into(x, out);
  CHECK(out.is_contiguous(fmt));
  return out.to(torch::kFloat);
}

double tolerance(at::ScalarType dtype, double magnitude) {
  if (dtype == torch::kBFloat16) return magnitude / 128.0;
  if (dtype == torch::kHalf) return magnitude / 1024.0;
  return 1e-5 * magnitude;
}

// Boxes on every border, empty and full, for an h × w image.
std::vector<cf::BBox> boxes_for(int64_t h, int64_t w) {
  return {{0, 0, h, w},            {0, 0, 0, 0},
          {0, 0, (h + 1) / 2, 1},  {h / 2, w - 1, h, w},
          {1 % h, 0, h, w / 2 + 1}, {0, w / 3, 1, w},
          {h / 3, w / 3, h - h / 3, w - w / 3}};
}

}  // namespace

TEST_CASE("fused CutMix equals cutmix_batch, alone and after MixUp, before CutOut and normalisation") {
  torch::manual_seed(31);
  const std::vector<std::pair<int64_t, int64_t>> sizes{{1, 1}, {5, 7}, {8, 8}, {13, 3}, {32, 33}};
  for (const auto& [h, w] : sizes) {
    for (const int64_t n : {1, 2, 5}) {
      for (const auto& box : boxes_for(h, w)) {
        for (const bool u8 : {false, true}) {
          for (const bool cl : {false, true}) {
            const int64_t c = cl ? 3 : 2;
            const Shape shape{n, c, h, w};
            CAPTURE(n);
            CAPTURE(h);
            CAPTURE(w);
            CAPTURE(u8);
            CAPTURE(cl);
            CAPTURE(box.x1);
            CAPTURE(box.y1);
            CAPTURE(box.x2);
            CAPTURE(box.y2);
            const torch::Tensor x = composer_test::fused::random_input(
                shape, u8 ? torch::kByte : torch::kFloat, cl ? Layout::channels_last : Layout::nchw, torch::kCPU);
            const torch::Tensor pi_mix = torch::randperm(n);
            const torch::Tensor pi_cut = torch::randperm(n);
            const double m = 0.37;
            const std::vector<cf::CutoutHole> holes{{0, w / 2, (h + 1) / 2, w}};
            const std::vector<double> mean(static_cast<size_t>(c), 0.25), sd(static_cast<size_t>(c), 0.5);

            // CutMix alone.
            {
              ck::FusedBatchTransform<st::CutMix> t;
              t.get<st::CutMix>() = {box, pi_cut};
              const torch::Tensor expected = eager(x, Setup{.box = box, .cut_perm = pi_cut});
              for (const auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
                const torch::Tensor got = fused_into(t, x, dtype);
                CHECK(torch::allclose(got, expected, 0, tolerance(dtype, 8.0)));
              }
            }
            // MixUp → CutMix → CutOut → Normalize.
            {
              ck::FusedBatchTransform<st::MixUp, st::CutMix, st::CutOut, st::Normalize> t;
              t.get<st::MixUp>() = {m, pi_mix};
              t.get<st::CutMix>() = {box, pi_cut};
              t.get<st::CutOut>() = {holes};
              t.get<st::Normalize>() = {mean, sd};
              const torch::Tensor e = eager(x, Setup{.mixing = m, .mix_perm = pi_mix, .box = box, .cut_perm = pi_cut,
                                                      .holes = holes, .mean = mean, .stddev = sd});
              const torch::Tensor got = fused_into(t, x, torch::kFloat);
              CHECK(torch::allclose(got, e, 1e-5, 1e-5));
            }
          }
        }
      }
    }
  }
}

TEST_CASE("fused CutMix targets: area-weighted mixture of the (MixUp-mixed, smoothed) one-hot targets") {
  torch::manual_seed(32);
  const int64_t n = 6, k_classes = 5, h = 10, w = 7;
  const torch::Tensor x = torch::rand({n, 3, h, w});
  const torch::Tensor y = torch::tensor({0, 4, 2, 2, 1, 3});
  const torch::Tensor pi_mix = torch::randperm(n);
  const torch::Tensor pi_cut = torch::randperm(n);
  const cf::BBox box{2, 1, 7, 5};  // 5 × 4 = 20 of 70 pixels pasted
  const double area = 1.0 - 20.0 / 70.0;
  const double m = 0.3, s = 0.1;

  ck::FusedBatchTransform<st::MixUp, st::CutMix, st::LabelSmoothing> t;
  t.get<st::MixUp>() = {m, pi_mix};
  t.get<st::CutMix>() = {box, pi_cut};
  t.get<st::LabelSmoothing>() = {s};
  auto [images, targets] = t(x, y, k_classes);

  const torch::Tensor oh = torch::one_hot(y, k_classes).to(torch::kFloat);
  const torch::Tensor mixed = oh * (1 - m) + oh.index_select(0, pi_mix) * m;
  const torch::Tensor cut = mixed * area + mixed.index_select(0, pi_cut) * (1 - area);
  const torch::Tensor expected = cut * (1 - s) + s / k_classes;
  CHECK(torch::allclose(targets, expected, 1e-6, 1e-6));
  CHECK(torch::allclose(targets.sum(1), torch::ones({n}), 1e-6, 1e-6));
  // The images agree with the eager sequence as well.
  torch::Tensor e = cf::mixup_batch(x, y, m, pi_mix).input_mixed;
  e = cf::cutmix_batch(e, y, box, pi_cut).input_mixed;
  CHECK(torch::allclose(images, e, 1e-6, 1e-6));
  // CutMix's own convention: cutmix_batch's area is the same weight.
  CHECK(cf::cutmix_batch(x, y, box, pi_cut).area == doctest::Approx(area));
}

TEST_CASE("fused CutMix rejects a box outside the image, bad indices, and targets without an image size") {
  ck::FusedBatchTransform<st::CutMix> t;
  const torch::Tensor x = torch::rand({2, 1, 4, 4});
  t.get<st::CutMix>() = {cf::BBox{0, 0, 5, 2}, torch::tensor({1, 0})};
  CHECK_THROWS_WITH_AS(t.transform_input(x), doctest::Contains("bbox must satisfy"), std::invalid_argument);
  t.get<st::CutMix>() = {cf::BBox{0, 0, 2, 2}, torch::tensor({1, 2})};
  CHECK_THROWS_WITH_AS(t.transform_input(x), doctest::Contains("CutMix indices must lie in [0, 2)"),
                       std::invalid_argument);
  t.get<st::CutMix>() = {cf::BBox{0, 0, 2, 2}, torch::Tensor()};
  CHECK_THROWS_WITH_AS(t.transform_input(x), doctest::Contains("CutMix indices must be set"), std::invalid_argument);
  ck::FusedBatchTransform<st::CutMix> fresh;
  fresh.get<st::CutMix>() = {cf::BBox{0, 0, 2, 2}, torch::tensor({1, 0})};
  CHECK_THROWS_WITH_AS(fresh.transform_target(torch::tensor({0, 1}), 3), doctest::Contains("set_image_size"),
                       std::invalid_argument);
  fresh.set_image_size(4, 4);
  const torch::Tensor targets = fresh.transform_target(torch::tensor({0, 1}), 3);
  // A 2 × 2 box of 16 pixels: each row keeps 3/4 of its own label.
  CHECK(torch::allclose(targets, torch::tensor({{0.75f, 0.25f, 0.0f}, {0.25f, 0.75f, 0.0f}})));
}
