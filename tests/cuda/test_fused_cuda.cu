// The CUDA fused batch transform against the eager sequence mixup_batch → cutmix_batch → cutout_batch →
// (x − mean)/std run with ATen on the same device: many shapes (odd sizes, batch 1, boxes and holes on the
// borders, empty boxes), NCHW, channels-last and strided inputs, every input dtype (uint8, float32, float16,
// bfloat16) and output dtype (float32, float16, bfloat16), each stage alone and together, outputs poisoned with
// NaN before each run; the mixed and smoothed targets; buffer reuse; and every argument check.
// Needs a CUDA device (it fails, rather than passing vacuously, without one).
#include <composer/functional/cutmix.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/functional/label_smoothing.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/kernels/fused_batch_cuda.cuh>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

// After LibTorch: some LibTorch builds log through glog, whose CHECK macros must not shadow doctest's.
#include <doctest/doctest.h>

#include "../support/error_messages.hpp"
#include "fused_reference.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace cf = composer::functional;
namespace st = composer::kernels::stage;
namespace kc = composer::kernels::cuda;

namespace {
using composer_test::check_bad_argument;
// The expectation (shared with the host-side run, test_fused_cuda_host.cu): eager(x, setup) applies every stage of
// the setup, expected_images<S...>(x, setup) only those of the pack S....
using composer_test::fused::check_close;
using composer_test::fused::configure;
using composer_test::fused::eager;
using composer_test::fused::expected_images;
using composer_test::fused::rtol_for;
using composer_test::fused::Setup;
using composer_test::fused::border_boxes;
using composer_test::fused::kAllLayouts;
using composer_test::fused::Layout;
using composer_test::fused::layout_name;
using composer_test::fused::Shape;

at::Device device() { return at::Device(at::kCUDA, 0); }
at::TensorOptions on_device() { return at::TensorOptions().device(device()); }

void require_cuda() { REQUIRE_MESSAGE(at::cuda::is_available(), "cuda_tests needs a CUDA device"); }

// The shared cases (fused_reference.hpp), with their tensors on the GPU.
at::Tensor random_input(const Shape& s, at::ScalarType dtype, Layout layout) {
  return composer_test::fused::random_input(s, dtype, layout, device());
}
at::Tensor random_perm(int64_t n) { return composer_test::fused::random_perm(n, device()); }
Setup random_setup(const Shape& s, bool mix, bool cutmix, bool cutout, bool norm) {
  return composer_test::fused::random_setup(s, mix, cutmix, cutout, norm, device());
}

// Runs the transform with the stage pack S... on `input` into a NaN-poisoned caller buffer and into the internal
// buffer (twice, poisoning it in between), with value checks on and off, and compares with the eager sequence of
// the pack's stages (the setup may hold more stages than the pack: those are left out of both).
template <class... S>
void check_against_eager(const at::Tensor& input, const Setup& setup, at::ScalarType out_dtype = at::kFloat) {
  kc::FusedBatchTransform<S...> t;
  configure(t, setup);
  const at::Tensor expected = expected_images<S...>(input, setup);
  const double rtol = rtol_for(out_dtype);
  const at::MemoryFormat fmt = composer_test::fused::output_format_for(input);

  at::Tensor out = at::full(input.sizes(), std::numeric_limits<float>::quiet_NaN(), on_device().dtype(out_dtype))
                       .contiguous(fmt);
  t.transform_input_into(input, out);
  check_close(out, expected, rtol);

  const at::Tensor cached = t.transform_input(input, out_dtype);
  CHECK((cached.scalar_type() == out_dtype));
  CHECK(cached.device() == input.device());
  CHECK(cached.is_contiguous(fmt));
  check_close(cached, expected, rtol);
  // Poison the internal buffer: a second call must overwrite every element again, in the same storage.
  cached.fill_(std::numeric_limits<float>::quiet_NaN());
  t.set_value_checks(false);
  const at::Tensor again = t.transform_input(input, out_dtype);
  CHECK(again.data_ptr() == cached.data_ptr());
  check_close(again, expected, rtol);
}

const std::vector<Shape> kShapes = {{1, 1, 1, 1},  {1, 3, 5, 7},  {3, 3, 5, 7},   {2, 1, 28, 28},
                                    {4, 3, 17, 9}, {5, 2, 8, 33}, {7, 4, 1, 13},  {2, 3, 13, 1},
                                    {8, 3, 64, 64}, {3, 5, 11, 24}, {4, 3, 16, 16}, {2, 3, 224, 224}};

const std::vector<at::ScalarType> kInDtypes = {at::kByte, at::kFloat, at::kHalf, at::kBFloat16};
const std::vector<at::ScalarType> kOutDtypes = {at::kFloat, at::kHalf, at::kBFloat16};

using All = kc::FusedBatchTransform<st::MixUp, st::CutMix, st::CutOut, st::Normalize, st::LabelSmoothing>;

}  // namespace

TEST_CASE("cuda fused: all stages equal mixup -> cutmix -> cutout -> normalise on many shapes and layouts") {
  require_cuda();
  at::manual_seed(1);
  for (const Shape& s : kShapes) {
    for (at::ScalarType in : {at::kByte, at::kFloat}) {
      for (Layout layout : {Layout::nchw, Layout::channels_last}) {
        CAPTURE(s.n);
        CAPTURE(s.c);
        CAPTURE(s.h);
        CAPTURE(s.w);
        CAPTURE(in);
        CAPTURE(layout_name(layout));
        const at::Tensor x = random_input(s, in, layout);
        const Setup setup = random_setup(s, true, true, true, true);
        check_against_eager<st::MixUp, st::CutMix, st::CutOut, st::Normalize, st::LabelSmoothing>(x, setup);
        check_against_eager<st::MixUp, st::CutOut, st::Normalize>(x, random_setup(s, true, false, true, true),
                                                                  at::kBFloat16);
      }
    }
  }
}

TEST_CASE("cuda fused: every input dtype, output dtype and layout") {
  require_cuda();
  at::manual_seed(2);
  for (const Shape& s : {Shape{3, 3, 5, 7}, Shape{4, 3, 16, 16}, Shape{2, 4, 8, 9}, Shape{1, 3, 32, 32}}) {
    for (at::ScalarType in : kInDtypes) {
      for (at::ScalarType out : kOutDtypes) {
        for (Layout layout : kAllLayouts) {
          CAPTURE(s.n);
          CAPTURE(s.h);
          CAPTURE(s.w);
          CAPTURE(in);
          CAPTURE(out);
          CAPTURE(layout_name(layout));
          const at::Tensor x = random_input(s, in, layout);
          check_against_eager<st::MixUp, st::CutMix, st::CutOut, st::Normalize, st::LabelSmoothing>(
              x, random_setup(s, true, true, true, true), out);
          check_against_eager<>(x, random_setup(s, false, false, false, false), out);
        }
      }
    }
  }
}

TEST_CASE("cuda fused: each stage alone and in pairs") {
  require_cuda();
  at::manual_seed(3);
  for (const Shape& s : {Shape{3, 3, 5, 7}, Shape{4, 2, 9, 19}, Shape{1, 3, 6, 8}, Shape{5, 3, 12, 12}}) {
    for (at::ScalarType in : {at::kByte, at::kFloat, at::kHalf}) {
      for (Layout layout : {Layout::nchw, Layout::channels_last, Layout::transposed}) {
        CAPTURE(s.n);
        CAPTURE(s.w);
        CAPTURE(in);
        CAPTURE(layout_name(layout));
        const at::Tensor x = random_input(s, in, layout);
        check_against_eager<st::MixUp>(x, random_setup(s, true, false, false, false));
        check_against_eager<st::CutMix, st::LabelSmoothing>(x, random_setup(s, false, true, false, false));
        check_against_eager<st::CutOut>(x, random_setup(s, false, false, true, false));
        check_against_eager<st::Normalize>(x, random_setup(s, false, false, false, true));
        check_against_eager<st::LabelSmoothing>(x, random_setup(s, false, false, false, false));
        check_against_eager<st::MixUp, st::CutMix>(x, random_setup(s, true, true, false, false));
        check_against_eager<st::CutOut, st::Normalize>(x, random_setup(s, false, false, true, true));
        check_against_eager<st::MixUp, st::CutOut, st::Normalize>(x, random_setup(s, true, false, true, true));
      }
    }
  }
}

TEST_CASE("cuda fused: CutMix boxes on the borders, the whole image and empty boxes") {
  require_cuda();
  at::manual_seed(4);
  for (const Shape& s : {Shape{4, 3, 7, 10}, Shape{3, 2, 16, 16}, Shape{1, 3, 5, 5}}) {
    for (const cf::BBox& box : border_boxes(s)) {
      for (Layout layout : {Layout::nchw, Layout::channels_last, Layout::sliced}) {
        CAPTURE(s.n);
        CAPTURE(s.h);
        CAPTURE(box.x1);
        CAPTURE(box.y1);
        CAPTURE(box.x2);
        CAPTURE(box.y2);
        CAPTURE(layout_name(layout));
        const at::Tensor x = random_input(s, at::kByte, layout);
        Setup setup = random_setup(s, true, true, true, true);
        setup.box = box;
        check_against_eager<st::MixUp, st::CutMix, st::CutOut, st::Normalize, st::LabelSmoothing>(x, setup);
        check_against_eager<st::CutMix, st::LabelSmoothing>(x, setup, at::kHalf);
        check_against_eager<st::MixUp, st::CutMix>(x, setup, at::kBFloat16);
      }
    }
  }
}

TEST_CASE("cuda fused: other strided inputs are read in place and give NCHW output") {
  require_cuda();
  at::manual_seed(5);
  const Shape s{4, 3, 9, 6};
  const Setup setup = random_setup(s, true, true, true, true);
  // Every image the same storage (batch stride 0).
  const at::Tensor expanded = random_input({1, 3, 9, 6}, at::kFloat, Layout::nchw).expand({4, 3, 9, 6});
  // Channels-last storage sliced along W (neither NCHW- nor channels-last-contiguous).
  const at::Tensor cl_sliced = random_input({4, 3, 9, 12}, at::kByte, Layout::channels_last).slice(3, 0, 12, 2);
  // A permutation that is no memory format: [N, H, C, W] storage.
  const at::Tensor permuted = random_input({4, 9, 3, 6}, at::kHalf, Layout::nchw).permute({0, 2, 1, 3});
  // Reversed along H through a flip-like view is not expressible with positive strides; a batch slice is.
  const at::Tensor batch_sliced = random_input({8, 3, 9, 6}, at::kBFloat16, Layout::nchw).slice(0, 1, 8, 2);
  for (const at::Tensor& x : {expanded, cl_sliced, permuted, batch_sliced}) {
    CAPTURE(x.strides());
    REQUIRE(x.sizes() == at::IntArrayRef({4, 3, 9, 6}));
    check_against_eager<st::MixUp, st::CutMix, st::CutOut, st::Normalize, st::LabelSmoothing>(x, setup);
    check_against_eager<st::MixUp, st::CutOut, st::Normalize>(x, setup, at::kBFloat16);
    All t;
    configure(t, setup);
    CHECK(t.transform_input(x).is_contiguous());
  }
}

TEST_CASE("cuda fused: cutout zeroes before normalisation; a full-image hole holds -mean/std") {
  require_cuda();
  const Shape s{2, 3, 6, 10};
  const at::Tensor x = random_input(s, at::kFloat, Layout::nchw);
  kc::FusedBatchTransform<st::CutOut, st::Normalize> t;
  t.get<st::CutOut>().holes = {{0, 0, s.h, s.w}};
  t.get<st::Normalize>() = st::Normalize{{0.5, -0.25, 0.1}, {0.5, 2.0, 0.25}};
  const at::Tensor out = t.transform_input(x).cpu();
  const std::vector<float> expected = {-1.0f, 0.125f, -0.4f};
  for (int64_t c = 0; c < 3; ++c) {
    CAPTURE(c);
    CHECK(out.select(1, c).sub(expected[static_cast<size_t>(c)]).abs().max().item<float>() < 1e-6f);
  }
  // Per pixel against the stage's own predicate: cut pixels are 0 (before normalisation), others untouched; a
  // hole over infinities still holds +0.
  at::Tensor xi = x.clone();
  xi.slice(2, 1, 4).slice(3, 2, 5).fill_(std::numeric_limits<float>::infinity());
  kc::FusedBatchTransform<st::CutOut> cut;
  cut.get<st::CutOut>().holes = {{1, 2, 4, 5}, {3, 4, 6, 9}, {0, 9, 6, 10}};
  const at::Tensor y = cut.transform_input(xi).cpu();
  const at::Tensor xc = xi.cpu();
  const auto ya = y.accessor<float, 4>();
  const auto xa = xc.accessor<float, 4>();
  int64_t cut_pixels = 0;
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t c = 0; c < s.c; ++c) {
      for (int64_t h = 0; h < s.h; ++h) {
        for (int64_t w = 0; w < s.w; ++w) {
          const bool in_hole = cut.get<st::CutOut>().covers(h, w);
          cut_pixels += in_hole ? 1 : 0;
          CHECK(ya[n][c][h][w] == (in_hole ? 0.0f : xa[n][c][h][w]));
          if (in_hole) CHECK_FALSE(std::signbit(ya[n][c][h][w]));
        }
      }
    }
  }
  CHECK(cut_pixels == s.n * s.c * (9 + 15 + 6 - 1));
}

TEST_CASE("cuda fused: mixing endpoints; partners are read only where they are used") {
  require_cuda();
  const Shape s{4, 3, 7, 11};
  const at::Tensor x = random_input(s, at::kFloat, Layout::nchw);
  const at::Tensor perm = at::tensor(std::vector<int64_t>{2, 0, 3, 1}).to(device());
  kc::FusedBatchTransform<st::MixUp> t;
  t.get<st::MixUp>().indices = perm;
  t.get<st::MixUp>().mixing = 0.0;
  CHECK(at::equal(t.transform_input(x), x));
  t.get<st::MixUp>().mixing = 1.0;
  CHECK(at::allclose(t.transform_input(x), x.index_select(0, perm), 0.0, 1e-6));

  // m = 0: an infinite partner does not turn into NaN (eager 0·inf would).
  at::Tensor xi = x.clone();
  xi[2].fill_(std::numeric_limits<float>::infinity());  // image 2 is image 0's partner
  t.get<st::MixUp>().mixing = 0.0;
  CHECK_FALSE(t.transform_input(xi)[0].isnan().any().item<bool>());

  // CutMix reads the partner inside the box only: infinities outside it stay out.
  kc::FusedBatchTransform<st::CutMix> c;
  c.get<st::CutMix>().indices = perm;
  c.get<st::CutMix>().box = {0, 0, 2, 3};
  at::Tensor xo = x.clone();
  xo[2].slice(1, 2, 7).fill_(std::numeric_limits<float>::infinity());  // rows 2.. of image 0's partner
  const at::Tensor pasted = c.transform_input(xo);
  CHECK(at::isfinite(pasted[0]).all().item<bool>());
  CHECK(at::equal(pasted[0].slice(1, 0, 2).slice(2, 0, 3), xo[2].slice(1, 0, 2).slice(2, 0, 3)));

  // int32 indices on the device are converted and give the same result.
  t.get<st::MixUp>().mixing = 0.3;
  const at::Tensor with_long = t.transform_input(x).clone();
  t.get<st::MixUp>().indices = perm.to(at::kInt);
  CHECK(at::equal(t.transform_input(x), with_long));
}

TEST_CASE("cuda fused: targets equal eager mixing, cutmix weighting and smoothing") {
  require_cuda();
  at::manual_seed(6);
  for (int64_t n : {1, 5, 32, 300}) {
    for (int64_t k : {1, 2, 10, 37, 1000}) {
      CAPTURE(n);
      CAPTURE(k);
      const at::Tensor labels = at::randint(0, k, {n}, at::TensorOptions().dtype(at::kLong)).to(device());
      const at::Tensor mix_perm = random_perm(n);
      const at::Tensor cut_perm = random_perm(n);
      const double m = 0.37;
      const double s = 0.1;
      const cf::BBox box{1, 2, 5, 9};  // on a 10 × 12 image: area = 1 − 28/120
      const double area = 1.0 - 28.0 / 120.0;
      const at::Tensor logits = at::zeros({n, k}, on_device());
      const at::Tensor smooth = cf::smooth_labels(logits, labels, s);
      const at::Tensor mixed = smooth.mul(1.0 - m) + smooth.index_select(0, mix_perm).mul(m);
      const at::Tensor expected = mixed.mul(area) + mixed.index_select(0, cut_perm).mul(1.0 - area);

      All t;
      t.get<st::MixUp>() = st::MixUp{m, mix_perm};
      t.get<st::CutMix>() = st::CutMix{box, cut_perm};
      t.get<st::LabelSmoothing>().smoothing = s;
      t.set_image_size(10, 12);
      const at::Tensor got = t.transform_target(labels, k);
      REQUIRE(got.sizes() == expected.sizes());
      CHECK((got.scalar_type() == at::kFloat));
      CHECK(got.device() == labels.device());
      CHECK(at::allclose(got, expected, 1e-6, 1e-7));
      CHECK(at::allclose(got.sum(1), at::ones({n}, on_device()), 1e-5, 1e-5));

      // Smoothing only (int32 labels), mixing only, CutMix only.
      kc::FusedBatchTransform<st::LabelSmoothing> smooth_only;
      smooth_only.get<st::LabelSmoothing>().smoothing = s;
      CHECK(at::allclose(smooth_only.transform_target(labels.to(at::kInt), k), smooth, 1e-6, 1e-7));
      kc::FusedBatchTransform<st::MixUp> mix_only;
      mix_only.get<st::MixUp>() = st::MixUp{m, mix_perm};
      const at::Tensor onehot = cf::ensure_targets_one_hot(logits, labels);
      CHECK(at::allclose(mix_only.transform_target(labels, k),
                         onehot.mul(1.0 - m) + onehot.index_select(0, mix_perm).mul(m), 1e-6, 1e-7));
      kc::FusedBatchTransform<st::CutMix, st::LabelSmoothing> cut_only;
      cut_only.get<st::CutMix>() = st::CutMix{box, cut_perm};
      cut_only.get<st::LabelSmoothing>().smoothing = s;
      cut_only.set_image_size(10, 12);
      CHECK(at::allclose(cut_only.transform_target(labels, k),
                         smooth.mul(area) + smooth.index_select(0, cut_perm).mul(1.0 - area), 1e-6, 1e-7));
      // An empty box leaves the targets alone.
      cut_only.get<st::CutMix>().box = {3, 3, 3, 7};
      CHECK(at::allclose(cut_only.transform_target(labels, k), smooth, 1e-6, 1e-7));
    }
  }
  // Negative labels are ignored rows (all s/K after smoothing), as in ensure_targets_one_hot.
  const at::Tensor labels = at::tensor(std::vector<int64_t>{-1, 2, 0}).to(device());
  kc::FusedBatchTransform<st::LabelSmoothing> t;
  t.get<st::LabelSmoothing>().smoothing = 0.3;
  const at::Tensor got = t.transform_target(labels, 4);
  CHECK(at::allclose(got, cf::smooth_labels(at::zeros({3, 4}, on_device()), labels, 0.3), 1e-6, 1e-7));
  CHECK(got[0][0].item<float>() == doctest::Approx(0.075));
}

TEST_CASE("cuda fused: images and targets in one call; buffers are reused") {
  require_cuda();
  at::manual_seed(7);
  const Shape s{6, 3, 12, 10};
  const at::Tensor x = random_input(s, at::kByte, Layout::nchw);
  const at::Tensor labels = at::randint(0, 5, {s.n}, at::TensorOptions().dtype(at::kLong)).to(device());
  const Setup setup = random_setup(s, true, true, true, true);
  All t;
  configure(t, setup);
  t.get<st::LabelSmoothing>().smoothing = 0.2;
  auto [images, targets] = t(x, labels, 5);
  check_close(images, eager(x, setup), 1e-5);
  const double m = *setup.mixing;
  const double area = t.get<st::CutMix>().area(s.h, s.w);
  const at::Tensor smooth = cf::smooth_labels(at::zeros({s.n, 5}, on_device()), labels, 0.2);
  const at::Tensor mixed = smooth.mul(1.0 - m) + smooth.index_select(0, setup.mix_perm).mul(m);
  CHECK(at::allclose(targets, mixed.mul(area) + mixed.index_select(0, setup.cut_perm).mul(1.0 - area), 1e-6, 1e-7));

  const void* image_ptr = images.data_ptr();
  const void* target_ptr = targets.data_ptr();
  const at::Tensor x2 = random_input(s, at::kByte, Layout::nchw);
  t.set_value_checks(false);
  auto [images2, targets2] = t(x2, labels, 5);
  CHECK(images2.data_ptr() == image_ptr);
  CHECK(targets2.data_ptr() == target_ptr);
  check_close(images2, eager(x2, setup), 1e-5);

  // A new dtype or layout gets a new buffer; channels-last in gives channels-last out.
  CHECK(t.transform_input(x2, at::kBFloat16).data_ptr() != image_ptr);
  const at::Tensor x_cl = x2.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor out_cl = t.transform_input(x_cl);
  CHECK(out_cl.is_contiguous(at::MemoryFormat::ChannelsLast));
  check_close(out_cl, eager(x_cl, setup), 1e-5);
}

TEST_CASE("cuda fused: batches of more than 2^31 elements (64-bit offsets)") {
  require_cuda();
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  REQUIRE(cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess);
  const Shape s{11000, 3, 256, 256};  // 2.16e9 elements: 2.2 GB of uint8 in, 4.3 GB of bfloat16 out
  if (free_bytes < (size_t{10} << 30)) {
    MESSAGE("skipped: needs 10 GiB of free device memory");
    return;
  }
  at::manual_seed(8);
  const at::Tensor x = at::randint(0, 256, {s.n, s.c, s.h, s.w}, on_device().dtype(at::kByte));
  const at::Tensor perm = at::randperm(s.n, on_device().dtype(at::kLong));
  kc::FusedBatchTransform<st::MixUp, st::CutOut, st::Normalize> t;
  t.get<st::MixUp>() = st::MixUp{0.25, perm};
  t.get<st::CutOut>().holes = {{10, 20, 100, 200}};
  t.get<st::Normalize>() = st::Normalize{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  const at::Tensor out = t.transform_input(x, at::kBFloat16);
  for (int64_t n : {int64_t{0}, s.n / 2, s.n - 2, s.n - 1}) {
    CAPTURE(n);
    const int64_t p = perm[n].item<int64_t>();
    at::Tensor v = x[n].to(at::kFloat).div(255.0).mul(0.75) + x[p].to(at::kFloat).div(255.0).mul(0.25);
    v.slice(1, 10, 100).slice(2, 20, 200).zero_();
    const at::Tensor mean = at::tensor(std::vector<float>{0.485f, 0.456f, 0.406f}).to(device()).view({3, 1, 1});
    const at::Tensor sd = at::tensor(std::vector<float>{0.229f, 0.224f, 0.225f}).to(device()).view({3, 1, 1});
    check_close(out[n], (v - mean) / sd, 8e-3);
  }
}

TEST_CASE("cuda fused: bad arguments are rejected with composer: messages") {
  require_cuda();
  const Shape s{4, 3, 6, 8};
  const at::Tensor x = random_input(s, at::kFloat, Layout::nchw);
  const at::Tensor labels = at::tensor(std::vector<int64_t>{0, 1, 2, 3}).to(device());
  auto make = [&] {
    All t;
    configure(t, random_setup(s, true, true, true, true));
    return t;
  };

  {
    All t = make();
    t.get<st::MixUp>().indices = at::tensor(std::vector<int64_t>{0, 1, 2}).to(device());
    check_bad_argument([&] { (void)t.transform_input(x); }, {"MixUp indices", "one entry per sample (4)", "got 3"});
    t.get<st::MixUp>().indices = at::tensor(std::vector<int64_t>{0, 1, 2, 4}).to(device());
    check_bad_argument([&] { (void)t.transform_input(x); }, {"MixUp indices must lie in [0, 4)", "got 4"});
    t.get<st::MixUp>().indices = at::tensor(std::vector<int64_t>{0, -1, 2, 3}).to(device());
    check_bad_argument([&] { (void)t(x, labels, 5); }, {"MixUp indices must lie in [0, 4)", "got -1"});
    t.get<st::MixUp>().indices = at::tensor(std::vector<int64_t>{0, 1, 2, 3});
    check_bad_argument([&] { (void)t.transform_input(x); }, {"MixUp indices", "device of the batch (cuda:0)", "cpu"});
    t.get<st::MixUp>().indices = at::Tensor();
    check_bad_argument([&] { (void)t.transform_input(x); }, {"MixUp indices must be set"});
    t.get<st::MixUp>().indices = at::tensor(std::vector<float>{0, 1, 2, 3}).to(device());
    check_bad_argument([&] { (void)t.transform_input(x); }, {"indices", "integer dtype"});
  }
  {
    All t = make();
    t.get<st::CutMix>().indices = at::tensor(std::vector<int64_t>{3, 2, 1, 7}).to(device());
    check_bad_argument([&] { (void)t.transform_input(x); }, {"CutMix indices must lie in [0, 4)", "got 7"});
    t.get<st::CutMix>().indices = at::tensor(std::vector<int64_t>{3, 2, 1, 0, 4}).to(device());
    check_bad_argument([&] { (void)t.transform_input(x); }, {"CutMix indices", "one entry per sample (4)", "got 5"});
  }
  {
    All t = make();
    t.get<st::MixUp>().mixing = 1.5;
    check_bad_argument([&] { (void)t.transform_input(x); }, {"mixing must be in [0, 1]", "1.5"});
  }
  {
    All t = make();
    t.get<st::CutMix>().box = {0, 0, 7, 8};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"bbox", "x2 <= 6", "(0, 0, 7, 8)"});
    t.get<st::CutMix>().box = {2, 5, 4, 3};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"bbox", "y1 <= y2 <= 8"});
    t.get<st::CutMix>().box = {-1, 0, 2, 2};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"bbox", "(-1, 0, 2, 2)"});
  }
  {
    All t = make();
    t.get<st::CutOut>().holes = {{0, 0, 7, 8}};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"hole", "y2 <= 6", "(0, 0, 7, 8)"});
    t.get<st::CutOut>().holes = {{-1, 0, 2, 2}};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"hole", "(-1, 0, 2, 2)"});
    t.get<st::CutOut>().holes = {{0, 5, 2, 4}};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"hole", "x1 <= x2 <= 8"});
    t.get<st::CutOut>().holes = std::vector<cf::CutoutHole>(33, cf::CutoutHole{0, 0, 1, 1});
    check_bad_argument([&] { (void)t.transform_input(x); }, {"at most 32 non-empty CutOut holes"});
    t.get<st::CutOut>().holes = std::vector<cf::CutoutHole>(40, cf::CutoutHole{0, 0, 0, 1});  // empty: fine
    CHECK_NOTHROW((void)t.transform_input(x));
  }
  {
    All t = make();
    t.get<st::Normalize>().mean = {0.1, 0.2};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"one entry per channel (3)", "got 2 and 3"});
    t.get<st::Normalize>().mean = {0.1, 0.2, 0.3};
    t.get<st::Normalize>().stddev = {0.1, 0.0, 0.3};
    check_bad_argument([&] { (void)t.transform_input(x); }, {"std finite and non-zero", "channel 1"});
    kc::FusedBatchTransform<st::Normalize> wide;
    wide.get<st::Normalize>() = st::Normalize{std::vector<double>(65, 0.0), std::vector<double>(65, 1.0)};
    check_bad_argument([&] { (void)wide.transform_input(at::zeros({1, 65, 2, 2}, on_device())); },
                       {"at most 64 channels", "got 65"});
  }
  {
    All t = make();
    check_bad_argument([&] { (void)t.transform_input(x.cpu()); }, {"input must be a CUDA tensor", "cpu"});
    check_bad_argument([&] { (void)t.transform_input(x.to(at::kDouble)); },
                       {"uint8, float32, float16 or bfloat16", "Double"});
    check_bad_argument([&] { (void)t.transform_input(x[0]); }, {"4-D", "[3, 6, 8]"});
    check_bad_argument([&] { (void)t.transform_input(at::Tensor()); }, {"defined"});
    check_bad_argument([&] { (void)t.transform_input(x, at::kDouble); }, {"float32, float16 or bfloat16", "Double"});

    at::Tensor wrong_shape = at::empty({4, 3, 6, 7}, on_device());
    check_bad_argument([&] { t.transform_input_into(x, wrong_shape); },
                       {"out must have the input's shape", "[4, 3, 6, 8]", "[4, 3, 6, 7]"});
    at::Tensor wrong_layout = at::empty({4, 3, 6, 8}, on_device()).contiguous(at::MemoryFormat::ChannelsLast);
    check_bad_argument([&] { t.transform_input_into(x, wrong_layout); },
                       {"contiguous in the output layout", "NCHW", "strides [144, 1, 24, 3]"});
    at::Tensor aliased = x;
    check_bad_argument([&] { t.transform_input_into(x, aliased); }, {"must not overlap"});
    at::Tensor wrong_dtype = at::empty({4, 3, 6, 8}, on_device().dtype(at::kDouble));
    check_bad_argument([&] { t.transform_input_into(x, wrong_dtype); }, {"float32, float16 or bfloat16"});
    at::Tensor on_cpu = at::empty({4, 3, 6, 8});
    check_bad_argument([&] { t.transform_input_into(x, on_cpu); }, {"out must be on the input's device", "cpu"});
    at::Tensor undefined;
    check_bad_argument([&] { t.transform_input_into(x, undefined); }, {"out must be a defined tensor"});
  }
  {
    All fresh = make();
    check_bad_argument([&] { (void)fresh.transform_target(labels, 5); }, {"CutMix targets need the image size"});
    fresh.set_image_size(6, 8);
    CHECK_NOTHROW((void)fresh.transform_target(labels, 5));
    check_bad_argument([&] { fresh.set_image_size(0, 8); }, {"image size must be positive"});

    All t = make();
    t.set_image_size(6, 8);
    check_bad_argument([&] { (void)t.transform_target(at::tensor(std::vector<int64_t>{0, 1, 5, 2}).to(device()), 5); },
                       {"smaller than num_classes (5)", "got 5"});
    check_bad_argument([&] { (void)t.transform_target(labels, 0); }, {"num_classes must be positive"});
    check_bad_argument([&] { (void)t.transform_target(labels.to(at::kFloat), 5); }, {"1-D integer"});
    check_bad_argument([&] { (void)t.transform_target(labels.cpu(), 5); }, {"labels must be a CUDA tensor"});
    check_bad_argument([&] { (void)t.transform_target(labels.slice(0, 0, 3), 5); }, {"one entry per sample (3)"});
    t.get<st::LabelSmoothing>().smoothing = 1.5;
    check_bad_argument([&] { (void)t.transform_target(labels, 5); }, {"smoothing must be in [0, 1]"});
    check_bad_argument([&] { (void)t(x, labels.slice(0, 0, 2), 5); }, {"same batch size", "4 and 2"});
    check_bad_argument([&] { (void)t(x, labels.cpu(), 5); }, {"labels must be a CUDA tensor"});
  }
}
