// The fused CPU batch transform against the eager sequence mixup_batch → cutout_batch → (x − mean)/std on
// random data: many shapes, both layouts, uint8 and float32 input, float32 and bfloat16 output (float16 and CutMix:
// test_fused_cutmix.cpp), each stage alone
// and all together; the mixed and smoothed targets; output buffer reuse; and every argument check.
#include <composer/functional.hpp>
#include <composer/kernels/fused_batch_cpu.hpp>

#include <torch/torch.h>

// After LibTorch: some LibTorch builds log through glog, whose CHECK macros must not shadow doctest's.
#include <doctest/doctest.h>

#include "../cuda/fused_reference.hpp"
#include "../support/error_messages.hpp"

#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cf = composer::functional;
namespace ck = composer::kernels;
namespace st = composer::kernels::stage;

namespace {
using composer_test::check_bad_argument;
using composer_test::invalid_argument_message;

// The reference shared with the CUDA kernel's tests (fused_reference.hpp): the setup of the stages, how a transform
// is set from it, the eager sequence and the comparison with it.
using composer_test::fused::check_close;
using composer_test::fused::configure;
using composer_test::fused::eager;
using composer_test::fused::Layout;
using composer_test::fused::Setup;
using composer_test::fused::Shape;

// The shared cases with their tensors on the CPU: uint8 or float32 input, NCHW or channels-last.
torch::Tensor random_input(const Shape& s, bool u8, bool channels_last) {
  return composer_test::fused::random_input(s, u8 ? torch::kByte : torch::kFloat,
                                            channels_last ? Layout::channels_last : Layout::nchw, torch::kCPU);
}
// A random setup of MixUp, CutOut and Normalize (the CutMix cases are in test_fused_cutmix.cpp).
Setup random_setup(const Shape& s, bool mix, bool cutout, bool norm) {
  return composer_test::fused::random_setup(s, mix, false, cutout, norm, torch::kCPU);
}

// Runs the transform with the stage pack S... on `input` into a NaN-poisoned caller buffer and into the internal
// buffer, and compares both with the eager sequence.
template <class... S>
void check_against_eager(const torch::Tensor& input, const Setup& setup, torch::ScalarType out_dtype = torch::kFloat) {
  ck::FusedBatchTransform<S...> t;
  configure(t, setup);
  const torch::Tensor expected = eager(input, setup);
  const at::MemoryFormat fmt = composer_test::fused::output_format_for(input);
  const bool cl = fmt == at::MemoryFormat::ChannelsLast;
  const double rtol = out_dtype == torch::kFloat ? 1e-5 : 8e-3;
  const double atol = out_dtype == torch::kFloat ? 1e-5 : 1e-5;

  torch::Tensor out = torch::full(input.sizes(), std::numeric_limits<float>::quiet_NaN(),
                                  torch::TensorOptions().dtype(out_dtype))
                          .contiguous(fmt);
  t.transform_input_into(input, out);
  check_close(out, expected, rtol, atol);

  torch::Tensor cached = t.transform_input(input, out_dtype);
  CHECK((cached.scalar_type() == out_dtype));
  if (cl) CHECK(cached.is_contiguous(at::MemoryFormat::ChannelsLast));
  check_close(cached, expected, rtol, atol);
  // Poison the internal buffer: a second call must overwrite every element again.
  cached.fill_(std::numeric_limits<float>::quiet_NaN());
  torch::Tensor again = t.transform_input(input, out_dtype);
  CHECK(again.data_ptr() == cached.data_ptr());
  check_close(again, expected, rtol, atol);
}

const std::vector<Shape> kShapes = {{1, 1, 1, 1},  {1, 3, 5, 7},  {3, 3, 5, 7},  {2, 1, 28, 28}, {4, 3, 17, 9},
                                    {5, 2, 8, 33}, {7, 4, 1, 13}, {2, 3, 13, 1}, {8, 3, 64, 64}, {3, 5, 11, 24}};

using All = ck::FusedBatchTransform<st::MixUp, st::CutOut, st::Normalize, st::LabelSmoothing>;

}  // namespace

TEST_CASE("fused: all stages equal mixup -> cutout -> normalise on many shapes, layouts and dtypes") {
  torch::manual_seed(1);
  for (const Shape& s : kShapes) {
    for (bool u8 : {false, true}) {
      for (bool cl : {false, true}) {
        CAPTURE(s.n);
        CAPTURE(s.c);
        CAPTURE(s.h);
        CAPTURE(s.w);
        CAPTURE(u8);
        CAPTURE(cl);
        const torch::Tensor x = random_input(s, u8, cl);
        const Setup setup = random_setup(s, true, true, true);
        check_against_eager<st::MixUp, st::CutOut, st::Normalize, st::LabelSmoothing>(x, setup);
        check_against_eager<st::MixUp, st::CutOut, st::Normalize>(x, setup, torch::kBFloat16);
      }
    }
  }
}

TEST_CASE("fused: each stage alone and in pairs") {
  torch::manual_seed(2);
  for (const Shape& s : {Shape{3, 3, 5, 7}, Shape{4, 2, 9, 19}, Shape{1, 3, 6, 8}}) {
    for (bool u8 : {false, true}) {
      for (bool cl : {false, true}) {
        CAPTURE(s.n);
        CAPTURE(s.w);
        CAPTURE(u8);
        CAPTURE(cl);
        const torch::Tensor x = random_input(s, u8, cl);
        check_against_eager<st::MixUp>(x, random_setup(s, true, false, false));
        check_against_eager<st::CutOut>(x, random_setup(s, false, true, false));
        check_against_eager<st::Normalize>(x, random_setup(s, false, false, true));
        check_against_eager<>(x, random_setup(s, false, false, false));
        check_against_eager<st::MixUp, st::CutOut>(x, random_setup(s, true, true, false));
        check_against_eager<st::CutOut, st::Normalize>(x, random_setup(s, false, true, true));
        check_against_eager<st::MixUp, st::Normalize>(x, random_setup(s, true, false, true));
      }
    }
  }
}

TEST_CASE("fused: cutout zeroes before normalisation; a full-image hole holds -mean/std") {
  const Shape s{2, 3, 6, 10};
  const torch::Tensor x = random_input(s, false, false);
  ck::FusedBatchTransform<st::CutOut, st::Normalize> t;
  t.get<st::CutOut>().holes = {{0, 0, s.h, s.w}};
  t.get<st::Normalize>() = st::Normalize{{0.5, -0.25, 0.1}, {0.5, 2.0, 0.25}};
  const torch::Tensor out = t.transform_input(x);
  const std::vector<float> expected = {-1.0f, 0.125f, -0.4f};
  for (int64_t c = 0; c < 3; ++c) {
    CAPTURE(c);
    CHECK(out.select(1, c).sub(expected[static_cast<size_t>(c)]).abs().max().item<float>() < 1e-6f);
  }
  // Per pixel against the stage's own predicate: cut pixels are 0 (before normalisation), others untouched.
  ck::FusedBatchTransform<st::CutOut> cut;
  cut.get<st::CutOut>().holes = {{1, 2, 4, 5}, {3, 4, 6, 9}, {0, 9, 6, 10}};
  const torch::Tensor y = cut.transform_input(x);
  const auto ya = y.accessor<float, 4>();
  const auto xa = x.accessor<float, 4>();
  int64_t cut_pixels = 0;
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t c = 0; c < s.c; ++c) {
      for (int64_t h = 0; h < s.h; ++h) {
        for (int64_t w = 0; w < s.w; ++w) {
          const bool in_hole = cut.get<st::CutOut>().covers(h, w);
          cut_pixels += in_hole ? 1 : 0;
          CHECK(ya[n][c][h][w] == (in_hole ? 0.0f : xa[n][c][h][w]));
        }
      }
    }
  }
  CHECK(cut_pixels == s.n * s.c * (9 + 15 + 6 - 1));
}

TEST_CASE("fused: mixing endpoints and non-contiguous input") {
  const Shape s{4, 3, 7, 11};
  const torch::Tensor x = random_input(s, false, false);
  const torch::Tensor perm = torch::tensor(std::vector<int64_t>{2, 0, 3, 1});
  ck::FusedBatchTransform<st::MixUp> t;
  t.get<st::MixUp>().indices = perm;
  t.get<st::MixUp>().mixing = 0.0;
  CHECK(torch::equal(t.transform_input(x), x));
  t.get<st::MixUp>().mixing = 1.0;
  CHECK(torch::allclose(t.transform_input(x), x.index_select(0, perm), 0.0, 1e-6));

  // A strided view (H and W swapped) is copied to contiguous first and still matches eager.
  const torch::Tensor view = random_input({3, 2, 9, 5}, false, false).transpose(2, 3);
  REQUIRE_FALSE(view.is_contiguous());
  REQUIRE_FALSE(view.is_contiguous(at::MemoryFormat::ChannelsLast));
  check_against_eager<st::MixUp, st::CutOut, st::Normalize>(view, random_setup({3, 2, 5, 9}, true, true, true));
  const torch::Tensor view_u8 = random_input({2, 3, 8, 6}, true, false).permute({0, 1, 3, 2});
  check_against_eager<st::MixUp, st::CutOut, st::Normalize>(view_u8, random_setup({2, 3, 6, 8}, true, true, true));
}

TEST_CASE("fused: targets equal eager mixing and smoothing") {
  torch::manual_seed(3);
  for (int64_t n : {1, 5, 32}) {
    for (int64_t k : {1, 2, 10, 37}) {
      CAPTURE(n);
      CAPTURE(k);
      const torch::Tensor labels = torch::randint(0, k, {n}, torch::TensorOptions().dtype(torch::kLong));
      const torch::Tensor perm = torch::randperm(n, torch::TensorOptions().dtype(torch::kLong));
      const double m = 0.37;
      const double s = 0.1;
      const torch::Tensor logits = torch::zeros({n, k});
      All t;
      t.get<st::MixUp>() = st::MixUp{m, perm};
      t.get<st::LabelSmoothing>().smoothing = s;
      const torch::Tensor expected = cf::smooth_labels(logits, labels, s).mul(1.0 - m) +
                                     cf::smooth_labels(logits, labels.index_select(0, perm), s).mul(m);
      torch::Tensor got = t.transform_target(labels, k);
      REQUIRE(got.sizes() == expected.sizes());
      CHECK((got.scalar_type() == torch::kFloat));
      CHECK(torch::allclose(got, expected, 1e-6, 1e-7));
      CHECK(torch::allclose(got.sum(1), torch::ones({n}), 1e-5, 1e-5));

      // Smoothing only, and mixing only.
      ck::FusedBatchTransform<st::LabelSmoothing> smooth_only;
      smooth_only.get<st::LabelSmoothing>().smoothing = s;
      CHECK(torch::allclose(smooth_only.transform_target(labels.to(torch::kInt), k),
                            cf::smooth_labels(logits, labels, s), 1e-6, 1e-7));
      ck::FusedBatchTransform<st::MixUp> mix_only;
      mix_only.get<st::MixUp>() = st::MixUp{m, perm};
      const torch::Tensor mixed = cf::ensure_targets_one_hot(logits, labels).mul(1.0 - m) +
                                  cf::ensure_targets_one_hot(logits, labels.index_select(0, perm)).mul(m);
      CHECK(torch::allclose(mix_only.transform_target(labels, k), mixed, 1e-6, 1e-7));
    }
  }
  // Negative labels are ignored rows (all s/K after smoothing), as in ensure_targets_one_hot.
  const torch::Tensor labels = torch::tensor(std::vector<int64_t>{-1, 2, 0});
  ck::FusedBatchTransform<st::LabelSmoothing> t;
  t.get<st::LabelSmoothing>().smoothing = 0.3;
  const torch::Tensor got = t.transform_target(labels, 4);
  CHECK(torch::allclose(got, cf::smooth_labels(torch::zeros({3, 4}), labels, 0.3), 1e-6, 1e-7));
  CHECK(got[0][0].item<float>() == doctest::Approx(0.075));
}

TEST_CASE("fused: images and targets in one call; buffers are reused") {
  torch::manual_seed(4);
  const Shape s{6, 3, 12, 10};
  const torch::Tensor x = random_input(s, true, false);
  const torch::Tensor labels = torch::randint(0, 5, {s.n}, torch::TensorOptions().dtype(torch::kLong));
  const Setup setup = random_setup(s, true, true, true);
  All t;
  configure(t, setup);
  t.get<st::LabelSmoothing>().smoothing = 0.2;
  auto [images, targets] = t(x, labels, 5);
  check_close(images, eager(x, setup), 1e-5, 1e-5);
  const torch::Tensor logits = torch::zeros({s.n, 5});
  const double m = *setup.mixing;
  CHECK(torch::allclose(targets,
                        cf::smooth_labels(logits, labels, 0.2).mul(1.0 - m) +
                            cf::smooth_labels(logits, labels.index_select(0, setup.mix_perm), 0.2).mul(m),
                        1e-6, 1e-7));

  const void* image_ptr = images.data_ptr();
  const void* target_ptr = targets.data_ptr();
  const torch::Tensor x2 = random_input(s, true, false);
  auto [images2, targets2] = t(x2, labels, 5);
  CHECK(images2.data_ptr() == image_ptr);
  CHECK(targets2.data_ptr() == target_ptr);
  check_close(images2, eager(x2, setup), 1e-5, 1e-5);

  // A new shape, dtype or layout gets a new buffer.
  CHECK(t.transform_input(x2, torch::kBFloat16).data_ptr() != image_ptr);
  const torch::Tensor x_cl = x2.contiguous(at::MemoryFormat::ChannelsLast);
  const torch::Tensor out_cl = t.transform_input(x_cl);
  CHECK(out_cl.is_contiguous(at::MemoryFormat::ChannelsLast));
  check_close(out_cl, eager(x_cl, setup), 1e-5, 1e-5);
}

TEST_CASE("fused: bad arguments are rejected with composer: messages") {
  const Shape s{4, 3, 6, 8};
  const torch::Tensor x = random_input(s, false, false);
  const torch::Tensor labels = torch::tensor(std::vector<int64_t>{0, 1, 2, 3});
  auto make = [&] {
    All t;
    configure(t, random_setup(s, true, true, true));
    return t;
  };

  {
    All t = make();
    t.get<st::MixUp>().indices = torch::tensor(std::vector<int64_t>{0, 1, 2});
    check_bad_argument([&] { (void)t.transform_input(x); }, {"indices", "one entry per sample (4)", "got 3"});
    t.get<st::MixUp>().indices = torch::tensor(std::vector<int64_t>{0, 1, 2, 4});
    check_bad_argument([&] { (void)t.transform_input(x); }, {"indices must lie in [0, 4)", "got 4"});
    t.get<st::MixUp>().indices = torch::Tensor();
    check_bad_argument([&] { (void)t.transform_input(x); }, {"MixUp indices must be set"});
    t.get<st::MixUp>().indices = torch::tensor(std::vector<float>{0, 1, 2, 3});
    check_bad_argument([&] { (void)t.transform_input(x); }, {"indices", "integer dtype"});
  }
  {
    All t = make();
    t.get<st::MixUp>().mixing = 1.5;
    check_bad_argument([&] { (void)t.transform_input(x); }, {"mixing must be in [0, 1]", "1.5"});
  }
  {
    All t = make();
    t.get<st::CutOut>().holes = {{0, 0, 7, 8}};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"hole", "y2 <= 6", "(0, 0, 7, 8)"});
    t.get<st::CutOut>().holes = {{-1, 0, 2, 2}};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"hole", "(-1, 0, 2, 2)"});
    t.get<st::CutOut>().holes = {{0, 5, 2, 4}};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"hole", "x1 <= x2 <= 8"});
  }
  {
    All t = make();
    t.get<st::Normalize>().mean = {0.1, 0.2};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"one entry per channel (3)", "got 2 and 3"});
    t.get<st::Normalize>().mean = {0.1, 0.2, 0.3};
    t.get<st::Normalize>().stddev = {0.1, 0.0, 0.3};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"std finite and non-zero", "channel 1"});
  }
  {
    All t = make();
    check_bad_argument([&] { (void)t.transform_input(x.to(torch::kDouble)); }, {"uint8 or float32", "Double"});
    check_bad_argument([&] { (void)t.transform_input(x[0]); }, {"4-D", "[3, 6, 8]"});
    check_bad_argument([&] { (void)t.transform_input(torch::Tensor()); }, {"defined"});
    check_bad_argument([&] { (void)t.transform_input(x, torch::kInt); }, {"float32, float16 or bfloat16", "Int"});

    torch::Tensor wrong_shape = torch::empty({4, 3, 6, 7});
    check_bad_argument([&] { t.transform_input_into(x, wrong_shape); }, {"out must have the input's shape"});
    torch::Tensor wrong_layout = torch::empty({4, 3, 6, 8}).contiguous(at::MemoryFormat::ChannelsLast);
    check_bad_argument([&] { t.transform_input_into(x, wrong_layout); }, {"contiguous in the output layout", "NCHW", "strides [144, 1, 24, 3]"});
    torch::Tensor aliased = x;
    check_bad_argument([&] { t.transform_input_into(x, aliased); }, {"must not overlap"});
    torch::Tensor wrong_dtype = torch::empty({4, 3, 6, 8}, torch::TensorOptions().dtype(torch::kDouble));
    check_bad_argument([&] { t.transform_input_into(x, wrong_dtype); }, {"float32, float16 or bfloat16", "Double"});
  }
  {
    All t = make();
    check_bad_argument([&] { (void)t.transform_target(torch::tensor(std::vector<int64_t>{0, 1, 5, 2}), 5); },
                       {"smaller than num_classes (5)", "got 5"});
    check_bad_argument([&] { (void)t.transform_target(labels, 0); }, {"num_classes must be positive"});
    check_bad_argument([&] { (void)t.transform_target(labels.to(torch::kFloat), 5); }, {"1-D integer"});
    check_bad_argument([&] { (void)t.transform_target(labels.slice(0, 0, 3), 5); }, {"one entry per sample (3)"});
    t.get<st::LabelSmoothing>().smoothing = 1.5;
    check_bad_argument([&] { (void)t.transform_target(labels, 5); }, {"smoothing must be in [0, 1]"});
    check_bad_argument([&] { (void)t(x, labels.slice(0, 0, 2), 5); }, {"same batch size", "4 and 2"});
  }
}
