// The CUDA fused kernel's own code, run on the host against the eager ATen sequence on the CPU, on a machine with
// nvcc and no GPU:
//  * the transform's decisions and argument packing (detail::input_layout, output_format, plan_image_args,
//    plan_target_args: the box, holes and constants, the NCHW / channels-last / strided layout, the vector, scalar
//    or strided load mode from the real tensors' shapes, strides and addresses), then every thread of the launch
//    grid the transform would launch (detail::dispatch_image_on_host and run_targets_on_host run the same
//    image_thread / target_thread and process_chunk as the device, over every element);
//  * against the GPU suite's own expectation (fused_reference.hpp: the eager sequence of the stages in the pack,
//    functional::mixup_batch → cutmix_batch → cutout_batch → normalise, and smooth_labels plus the mixes for the
//    targets, computed by ATen), on the GPU suite's cases: the same shapes, layouts, dtypes, stage packs, boxes,
//    seeds and draws (test_fused_cuda.cu draws everything on the CPU generator, so each seed gives the same
//    batches and parameters here).
// It links LibTorch's CPU libraries (libtorch_cpu, libc10).
#include <composer/kernels/fused_batch_cuda.cuh>

#include <ATen/ATen.h>

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "fused_reference.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace kd = composer::kernels::cuda::detail;
namespace cf = composer::functional;
namespace st = composer::kernels::stage;
using composer::kernels::StageParameters;
using composer_test::fused::check_close;
using composer_test::fused::configure;
using composer_test::fused::expected_images;
using composer_test::fused::expected_targets;
using composer_test::fused::rtol_for;
using composer_test::fused::Setup;
using composer_test::fused::border_boxes;
using composer_test::fused::kAllLayouts;
using composer_test::fused::Layout;
using composer_test::fused::layout_name;
using composer_test::fused::Shape;

namespace {

// The shared cases (fused_reference.hpp), with their tensors on the CPU.
at::Tensor random_input(const Shape& s, at::ScalarType dtype, Layout layout) {
  return composer_test::fused::random_input(s, dtype, layout, at::Device(at::kCPU));
}
at::Tensor random_perm(int64_t n) { return composer_test::fused::random_perm(n, at::Device(at::kCPU)); }
Setup random_setup(const Shape& s, bool mix, bool cutmix, bool cutout, bool norm) {
  return composer_test::fused::random_setup(s, mix, cutmix, cutout, norm, at::Device(at::kCPU));
}

// Indices as the transform hands them to the kernel: contiguous int64 (converted when needed), or none.
at::Tensor as_long(const at::Tensor& indices) {
  return indices.defined() ? indices.to(at::kLong).contiguous() : at::Tensor();
}
const int64_t* pointer(const at::Tensor& t) { return t.defined() ? t.data_ptr<int64_t>() : nullptr; }

// How often each load mode was chosen.
std::array<int, 3> g_modes{};

// What the transform with the stage pack S... does for one image call, with the kernel's threads run on the host:
// the input's layout, an output in the transform's format poisoned with NaN, the arguments packed by
// plan_image_args, the kernel instantiated for (input dtype, output dtype, the pack's stages) over its whole grid;
// then compared with the GPU suite's expectation for that pack.
template <class... S>
void check_against_eager(const at::Tensor& input, const Setup& setup, at::ScalarType out_dtype = at::kFloat) {
  StageParameters<S...> params;
  configure(params, setup);
  const kd::InputLayout layout = kd::input_layout(input);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor out =
      at::full(input.sizes(), nan, at::TensorOptions().dtype(out_dtype)).contiguous(kd::output_format(layout));
  const at::Tensor mix = as_long(setup.mix_perm);
  const at::Tensor cut = as_long(setup.cut_perm);
  const kd::ImageArgs a = kd::plan_image_args(params, input, out, layout, pointer(mix), pointer(cut));
  if (input.numel() > 0) {
    ++g_modes[static_cast<size_t>(a.mode)];
    kd::dispatch_image_on_host<kd::stage_mask_v<S...>>(a, input.scalar_type(), out_dtype);
  }
  CHECK(out.is_contiguous(kd::output_format(layout)));
  check_close(out, expected_images<S...>(input, setup), rtol_for(out_dtype));
}

// The same for one target call: plan_target_args for an H×W image and every thread of the target kernel's grid,
// against the GPU suite's expected targets for the pack.
template <class... S>
void check_targets(const at::Tensor& labels, int64_t num_classes, const Setup& setup, double smoothing, int64_t height,
                   int64_t width) {
  StageParameters<S...> params;
  configure(params, setup);
  if constexpr (StageParameters<S...>::template has<st::LabelSmoothing>) {
    params.template get<st::LabelSmoothing>().smoothing = smoothing;
  }
  const int64_t n = labels.size(0);
  const at::Tensor labels_long = labels.to(at::kLong).contiguous();
  const at::Tensor mix = as_long(setup.mix_perm);
  const at::Tensor cut = as_long(setup.cut_perm);
  at::Tensor out = at::full({n, num_classes}, std::numeric_limits<float>::quiet_NaN());
  const kd::TargetArgs a = kd::plan_target_args(params, labels_long.data_ptr<int64_t>(), n, num_classes, pointer(mix),
                                                pointer(cut), height, width, out.data_ptr<float>());
  kd::run_targets_on_host<kd::target_mask(kd::stage_mask_v<S...>)>(a);
  const at::Tensor expected = expected_targets<S...>(labels, num_classes, setup, smoothing, height, width);
  REQUIRE(out.sizes() == expected.sizes());
  CHECK_FALSE(out.isnan().any().item<bool>());
  CAPTURE((out - expected).abs().max().item<double>());
  CHECK(at::allclose(out, expected, 1e-6, 1e-7));
}

using All = StageParameters<st::MixUp, st::CutMix, st::CutOut, st::Normalize, st::LabelSmoothing>;

std::string message_of(void (*f)()) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

TEST_CASE("cuda fused (host): the 32-bit division by a launch constant is exact below 2^31") {
  std::mt19937 rng(12345);
  for (uint32_t d : {1u, 2u, 3u, 5u, 7u, 12u, 13u, 24u, 28u, 224u, 1000u, 65535u, 65536u, 100003u, (1u << 30) + 1u,
                     (1u << 31) - 1u}) {
    const kd::DivMod div(d);
    CAPTURE(d);
    int64_t bad = 0;
    for (uint32_t v = 0; v < 100000; ++v) bad += div.div(v) != v / d;
    for (int i = 0; i < 100000; ++i) {
      const auto v = static_cast<uint32_t>(rng()) & 0x7FFFFFFFu;
      bad += div.div(v) != v / d;
    }
    for (uint32_t v : {0x7FFFFFFFu, 0x7FFFFFFEu, d - 1, d, d + 1, 2 * d - 1, 2 * d}) {
      if (v < 0x80000000u) bad += div.div(v) != v / d;
    }
    CHECK(bad == 0);
  }
}

// The GPU suite's image cases, one for one (same names after "cuda fused (host): ", same seeds and draws; the
// CutMix-box case checks the targets of each call too), then its targets case, widened to negative labels, an
// empty box and the whole image.

TEST_CASE("cuda fused (host): all stages equal mixup -> cutmix -> cutout -> normalise on many shapes and layouts") {
  at::manual_seed(1);
  const std::vector<Shape> shapes = {{1, 1, 1, 1},   {1, 3, 5, 7},   {3, 3, 5, 7},   {2, 1, 28, 28},
                                     {4, 3, 17, 9},  {5, 2, 8, 33},  {7, 4, 1, 13},  {2, 3, 13, 1},
                                     {8, 3, 64, 64}, {3, 5, 11, 24}, {4, 3, 16, 16}, {2, 3, 224, 224}};
  for (const Shape& s : shapes) {
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

TEST_CASE("cuda fused (host): every input dtype, output dtype and layout") {
  at::manual_seed(2);
  for (const Shape& s : {Shape{3, 3, 5, 7}, Shape{4, 3, 16, 16}, Shape{2, 4, 8, 9}, Shape{1, 3, 32, 32}}) {
    for (at::ScalarType in : {at::kByte, at::kFloat, at::kHalf, at::kBFloat16}) {
      for (at::ScalarType out : {at::kFloat, at::kHalf, at::kBFloat16}) {
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

TEST_CASE("cuda fused (host): each stage alone and in pairs") {
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

TEST_CASE("cuda fused (host): CutMix boxes on the borders, the whole image and empty boxes") {
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
        // The targets of the same calls: an empty box keeps them (area 1), the whole image hands them over.
        const at::Tensor labels = at::arange(s.n, at::TensorOptions().dtype(at::kLong)).remainder(3);
        check_targets<st::MixUp, st::CutMix, st::CutOut, st::Normalize, st::LabelSmoothing>(labels, 3, setup, 0.1,
                                                                                            s.h, s.w);
        check_targets<st::CutMix, st::LabelSmoothing>(labels, 3, setup, 0.2, s.h, s.w);
        check_targets<st::MixUp, st::CutMix>(labels, 3, setup, 0.0, s.h, s.w);
      }
    }
  }
}

TEST_CASE("cuda fused (host): other strided inputs are read in place and give NCHW output") {
  at::manual_seed(5);
  const Shape s{4, 3, 9, 6};
  const Setup setup = random_setup(s, true, true, true, true);
  const at::Tensor expanded = random_input({1, 3, 9, 6}, at::kFloat, Layout::nchw).expand({4, 3, 9, 6});
  const at::Tensor cl_sliced = random_input({4, 3, 9, 12}, at::kByte, Layout::channels_last).slice(3, 0, 12, 2);
  const at::Tensor permuted = random_input({4, 9, 3, 6}, at::kHalf, Layout::nchw).permute({0, 2, 1, 3});
  const at::Tensor batch_sliced = random_input({8, 3, 9, 6}, at::kBFloat16, Layout::nchw).slice(0, 1, 8, 2);
  for (const at::Tensor& x : {expanded, cl_sliced, permuted, batch_sliced}) {
    CAPTURE(x.strides());
    REQUIRE(x.sizes() == at::IntArrayRef({4, 3, 9, 6}));
    CHECK(kd::input_layout(x) == kd::InputLayout::strided);
    check_against_eager<st::MixUp, st::CutMix, st::CutOut, st::Normalize, st::LabelSmoothing>(x, setup);
    check_against_eager<st::MixUp, st::CutOut, st::Normalize>(x, setup, at::kBFloat16);
  }
}

TEST_CASE("cuda fused (host): targets equal eager mixing, cutmix weighting and smoothing") {
  at::manual_seed(6);
  for (int64_t n : {1, 5, 32, 300}) {
    for (int64_t k : {1, 2, 10, 37, 1000}) {
      CAPTURE(n);
      CAPTURE(k);
      // Negative labels are ignored rows, as in ensure_targets_one_hot.
      const at::Tensor labels = at::randint(-1, k, {n}, at::TensorOptions().dtype(at::kLong));
      Setup setup;
      setup.mixing = 0.37;
      setup.mix_perm = random_perm(n);
      setup.cut_perm = random_perm(n);
      for (const cf::BBox& box : {cf::BBox{1, 2, 5, 9}, cf::BBox{3, 3, 3, 7}, cf::BBox{0, 0, 10, 12}}) {
        CAPTURE(box.x1);
        CAPTURE(box.x2);
        setup.box = box;  // on a 10 × 12 image
        check_targets<st::MixUp, st::CutMix, st::LabelSmoothing>(labels, k, setup, 0.1, 10, 12);
        check_targets<st::CutMix, st::LabelSmoothing>(labels, k, setup, 0.1, 10, 12);
        check_targets<st::CutMix>(labels.to(at::kInt), k, setup, 0.0, 10, 12);
      }
      check_targets<st::LabelSmoothing>(labels, k, setup, 0.3, 10, 12);
      check_targets<st::MixUp>(labels, k, setup, 0.0, 10, 12);
      check_targets<>(labels, k, setup, 0.0, 10, 12);
    }
  }
}

TEST_CASE("cuda fused (host): the vector, scalar and strided load modes were all exercised") {
  // After the cases above (doctest runs them in file order).
  CHECK(g_modes[kd::kLoadVector] > 0);
  CHECK(g_modes[kd::kLoadScalar] > 0);
  CHECK(g_modes[kd::kLoadStrided] > 0);
  // The vector mode needs C·H·W a multiple of 8 and aligned tensors, whatever W is.
  const at::Tensor x = at::zeros({2, 4, 6, 2});  // 48 elements per image, W = 2
  at::Tensor out = at::empty_like(x);
  CHECK(kd::plan_image_args(StageParameters<>{}, x, out, kd::input_layout(x), nullptr, nullptr).mode ==
        kd::kLoadVector);
  const at::Tensor odd = at::zeros({2, 3, 7, 10});  // 210 elements per image
  at::Tensor odd_out = at::empty_like(odd);
  CHECK(kd::plan_image_args(StageParameters<>{}, odd, odd_out, kd::input_layout(odd), nullptr, nullptr).mode ==
        kd::kLoadScalar);
}

TEST_CASE("cuda fused (host): the argument packing rejects boxes, holes and constants that do not fit") {
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_cutmix(a, {0, 0, 7, 8}, 6, 8, nullptr);
        }).find("bbox must satisfy 0 <= x1 <= x2 <= 6") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_cutout(a, {{0, 5, 2, 4}}, 6, 8);
        }).find("hole must satisfy") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_cutout(a, std::vector<cf::CutoutHole>(33, cf::CutoutHole{0, 0, 1, 1}), 6, 8);
        }).find("at most 32 non-empty CutOut holes") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_normalize(a, {0.1, 0.2}, {1.0, 1.0, 1.0}, 3);
        }).find("one entry per channel (3), got 2 and 3") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_normalize(a, {0.0, 0.0}, {1.0, 0.0}, 2);
        }).find("std finite and non-zero") != std::string::npos);
  CHECK(message_of([] {
          kd::ImageArgs a;
          kd::set_normalize(a, std::vector<double>(65, 0.0), std::vector<double>(65, 1.0), 65);
        }).find("at most 64 channels") != std::string::npos);
  CHECK(message_of([] {
          StageParameters<st::CutMix> p;
          float out[4];
          const int64_t labels[2] = {0, 1};
          (void)kd::plan_target_args(p, labels, 2, 2, nullptr, nullptr, 0, 0, out);
        }).find("CutMix targets need the image size") != std::string::npos);
  CHECK(message_of([] {
          StageParameters<st::LabelSmoothing> p;
          p.get<st::LabelSmoothing>().smoothing = 1.5;
          float out[4];
          const int64_t labels[2] = {0, 1};
          (void)kd::plan_target_args(p, labels, 2, 2, nullptr, nullptr, 4, 4, out);
        }).find("smoothing must be in [0, 1], got 1.5") != std::string::npos);
  // Empty holes are dropped; an empty box switches CutMix off and keeps the targets whole.
  kd::ImageArgs a;
  kd::set_cutout(a, {{0, 0, 0, 5}, {1, 1, 3, 3}, {2, 2, 2, 2}}, 6, 8);
  CHECK(a.num_holes == 1);
  kd::set_cutmix(a, {3, 2, 3, 6}, 6, 8, nullptr);
  CHECK_FALSE(a.cut_active);
  StageParameters<st::CutMix> empty_box{st::CutMix{{3, 2, 3, 6}, at::Tensor()}};
  float out[1];
  const int64_t label[1] = {0};
  CHECK(kd::plan_target_args(empty_box, label, 1, 1, nullptr, nullptr, 6, 8, out).area == 1.0f);
  StageParameters<st::CutMix> whole{st::CutMix{{0, 0, 6, 8}, at::Tensor()}};
  CHECK(kd::plan_target_args(whole, label, 1, 1, nullptr, nullptr, 6, 8, out).area == 0.0f);
}
