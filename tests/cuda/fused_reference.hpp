// The expectation of the fused-transform tests, shared by the CPU kernel's tests (tests/kernels/test_fused_cpu.cpp,
// test_fused_cutmix.cpp), the GPU suite (test_fused_cuda.cu, on the device) and its host-side run
// (test_fused_cuda_host.cu, on the CPU): a configuration of the stages, how a transform is set from it, the eager
// ATen sequence a transform with a given stage pack must reproduce (batch_stages.hpp states it), the comparison with
// it, and the random cases. Every run builds its expectation here, so that the CPU kernel, the GPU kernel and the
// host run of the GPU kernel's threads are checked against one reference.
// Include after LibTorch (doctest's macros must not be shadowed by glog's).
#pragma once

#include <composer/functional/cutmix.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/functional/label_smoothing.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/kernels/batch_stages.hpp>

#include <ATen/ATen.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

namespace composer_test::fused {

namespace cf = composer::functional;
namespace st = composer::kernels::stage;

// One configuration of the pixel stages; a disengaged optional means "no such stage".
struct Setup {
  std::optional<double> mixing;
  at::Tensor mix_perm;
  std::optional<cf::BBox> box;
  at::Tensor cut_perm;
  std::optional<std::vector<cf::CutoutHole>> holes;
  std::optional<std::vector<double>> mean;
  std::optional<std::vector<double>> stddev;
};

// Whether stage S is one of Pack...
template <class S, class... Pack>
inline constexpr bool in_pack_v = (std::is_same_v<S, Pack> || ...);

// The part of `setup` that a transform with the stage pack S... applies: the stages outside the pack removed.
template <class... S>
Setup for_pack(const Setup& setup) {
  Setup kept = setup;
  if constexpr (!in_pack_v<st::MixUp, S...>) {
    kept.mixing.reset();
    kept.mix_perm = at::Tensor();
  }
  if constexpr (!in_pack_v<st::CutMix, S...>) {
    kept.box.reset();
    kept.cut_perm = at::Tensor();
  }
  if constexpr (!in_pack_v<st::CutOut, S...>) kept.holes.reset();
  if constexpr (!in_pack_v<st::Normalize, S...>) {
    kept.mean.reset();
    kept.stddev.reset();
  }
  return kept;
}

// Sets the stages of a transform (or of its StageParameters) from `setup`; every pixel stage of the transform must
// be configured there.
template <class T>
void configure(T& t, const Setup& setup) {
  if constexpr (T::template has<st::MixUp>) {
    REQUIRE_MESSAGE(setup.mixing.has_value(), "the setup has no MixUp stage for a transform with one");
    t.template get<st::MixUp>().mixing = *setup.mixing;
    t.template get<st::MixUp>().indices = setup.mix_perm;
  }
  if constexpr (T::template has<st::CutMix>) {
    REQUIRE_MESSAGE(setup.box.has_value(), "the setup has no CutMix stage for a transform with one");
    t.template get<st::CutMix>().box = *setup.box;
    t.template get<st::CutMix>().indices = setup.cut_perm;
  }
  if constexpr (T::template has<st::CutOut>) {
    REQUIRE_MESSAGE(setup.holes.has_value(), "the setup has no CutOut stage for a transform with one");
    t.template get<st::CutOut>().holes = *setup.holes;
  }
  if constexpr (T::template has<st::Normalize>) {
    REQUIRE_MESSAGE((setup.mean.has_value() && setup.stddev.has_value()),
                    "the setup has no Normalize stage for a transform with one");
    t.template get<st::Normalize>().mean = *setup.mean;
    t.template get<st::Normalize>().stddev = *setup.stddev;
  }
}

// The eager sequence of every stage `setup` holds, on the input's device, in float32:
// x (/255 for uint8) → mixup_batch → cutmix_batch → cutout_batch → (x − mean)/std.
inline at::Tensor eager(const at::Tensor& input, const Setup& setup) {
  at::Tensor x = input.scalar_type() == at::kByte ? input.to(at::kFloat).div(255.0) : input.to(at::kFloat);
  const at::Tensor dummy = at::zeros({x.size(0)}, at::TensorOptions().dtype(at::kLong).device(x.device()));
  if (setup.mixing) x = cf::mixup_batch(x, dummy, *setup.mixing, setup.mix_perm).input_mixed;
  if (setup.box) x = cf::cutmix_batch(x, dummy, *setup.box, setup.cut_perm).input_mixed;
  if (setup.holes) x = cf::cutout_batch(x, *setup.holes);
  if (setup.mean) {
    const int64_t c = x.size(1);
    const auto as_channels = [&](const std::vector<double>& v) {
      return at::tensor(v, at::TensorOptions().dtype(at::kDouble)).to(x.device(), at::kFloat).view({1, c, 1, 1});
    };
    x = (x - as_channels(*setup.mean)) / as_channels(*setup.stddev);
  }
  return x;
}

// What a transform with the stage pack S... must produce from `input` when configured from `setup`: the eager
// sequence of the stages in the pack only.
template <class... S>
at::Tensor expected_images(const at::Tensor& input, const Setup& setup) {
  return eager(input, for_pack<S...>(setup));
}

// The dense targets [N, K] a transform with the stage pack S... must produce for `labels`: smooth_labels (s = 0
// without LabelSmoothing; negative labels give an all-zero one-hot row), mixed with the MixUp partner's by m,
// then with the CutMix partner's by 1 − area, area = 1 − |box|/(H·W), on the labels' device.
template <class... S>
at::Tensor expected_targets(const at::Tensor& labels, int64_t num_classes, const Setup& setup, double smoothing,
                            int64_t height, int64_t width) {
  const Setup kept = for_pack<S...>(setup);
  const double s = in_pack_v<st::LabelSmoothing, S...> ? smoothing : 0.0;
  const at::Tensor logits = at::zeros({labels.size(0), num_classes}, at::TensorOptions().device(labels.device()));
  at::Tensor t = cf::smooth_labels(logits, labels, s);
  if (kept.mixing) t = t.mul(1.0 - *kept.mixing) + t.index_select(0, kept.mix_perm.to(t.device())).mul(*kept.mixing);
  if (kept.box) {
    const double area = cf::cutmix_area(height, width, *kept.box);
    t = t.mul(area) + t.index_select(0, kept.cut_perm.to(t.device())).mul(1.0 - area);
  }
  return t;
}

// Compares a transform's output with the expectation (on the CPU, in float32): same shape, no NaN, and
// allclose(rtol, atol); reports the largest error.
inline void check_close(const at::Tensor& actual, const at::Tensor& expected, double rtol, double atol = 1e-5) {
  REQUIRE(actual.sizes() == expected.sizes());
  const at::Tensor a = actual.to(at::kFloat).cpu();
  const at::Tensor e = expected.to(at::kFloat).cpu();
  CHECK_FALSE(a.isnan().any().item<bool>());
  const double max_err = (a - e).abs().max().item<double>();
  CAPTURE(max_err);
  CHECK(at::allclose(a, e, rtol, atol));
}

// The memory format of a fused transform's output for `input`: channels-last for channels-last input, NCHW
// otherwise.
inline at::MemoryFormat output_format_for(const at::Tensor& input) {
  return !input.is_contiguous() && input.is_contiguous(at::MemoryFormat::ChannelsLast) ? at::MemoryFormat::ChannelsLast
                                                                                       : at::MemoryFormat::Contiguous;
}

// The relative tolerance of a comparison with the eager float32 sequence for each output dtype.
inline double rtol_for(at::ScalarType out) { return out == at::kFloat ? 1e-5 : (out == at::kHalf ? 1e-3 : 8e-3); }

// The cases both runs replay, drawn in the same order from the CPU generator so that the host run sees the GPU
// run's inputs: `device` is where the tensors end up (the CPU for the host run, the GPU for the GPU suite).
struct Shape {
  int64_t n, c, h, w;
};

/// How the input batch is laid out in memory.
enum class Layout {
  nchw,           // contiguous
  channels_last,  // contiguous in NHWC order
  transposed,     // an [N, C, W, H] tensor transposed to [N, C, H, W]
  sliced,         // every other column of a twice-as-wide batch
  misaligned,     // contiguous, starting one element into its storage (no vector loads)
};
inline const std::vector<Layout> kAllLayouts = {Layout::nchw, Layout::channels_last, Layout::transposed,
                                                Layout::sliced, Layout::misaligned};

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::nchw: return "nchw";
    case Layout::channels_last: return "channels_last";
    case Layout::transposed: return "transposed";
    case Layout::sliced: return "sliced";
    case Layout::misaligned: return "misaligned";
  }
  return "?";
}

// Random values (uint8 in [0, 255], others ~ 2·N(0, 1) + 0.5) of the given dtype on `device`, in `layout`.
inline at::Tensor random_input(const Shape& s, at::ScalarType dtype, Layout layout, const at::Device& device) {
  auto make = [&](std::vector<int64_t> sizes) {
    if (dtype == at::kByte) return at::randint(0, 256, sizes, at::TensorOptions().dtype(at::kByte)).to(device);
    return (at::randn(sizes) * 2.0 + 0.5).to(device, dtype);
  };
  switch (layout) {
    case Layout::nchw: return make({s.n, s.c, s.h, s.w});
    case Layout::channels_last: return make({s.n, s.c, s.h, s.w}).contiguous(at::MemoryFormat::ChannelsLast);
    case Layout::transposed: return make({s.n, s.c, s.w, s.h}).transpose(2, 3);
    case Layout::sliced: return make({s.n, s.c, s.h, 2 * s.w}).slice(3, 0, 2 * s.w, 2);
    case Layout::misaligned: {
      const int64_t numel = s.n * s.c * s.h * s.w;
      return make({numel + 1}).narrow(0, 1, numel).view({s.n, s.c, s.h, s.w});
    }
  }
  return {};
}

inline std::vector<double> random_values(int64_t c, double lo, double hi) {
  const at::Tensor t = at::rand({c}, at::TensorOptions().dtype(at::kDouble)) * (hi - lo) + lo;
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + c);
}

inline at::Tensor random_perm(int64_t n, const at::Device& device) {
  return at::randperm(n, at::TensorOptions().dtype(at::kLong)).to(device);
}

// A random configuration of the chosen stages, with CutOut holes on the corners, a full row and an empty one.
inline Setup random_setup(const Shape& s, bool mix, bool cutmix, bool cutout, bool norm, const at::Device& device) {
  Setup setup;
  if (mix) {
    setup.mixing = at::rand({1}, at::TensorOptions().dtype(at::kDouble)).item<double>() * 0.5;
    setup.mix_perm = random_perm(s.n, device);
  }
  if (cutmix) {
    const double lambda = at::rand({1}, at::TensorOptions().dtype(at::kDouble)).item<double>();
    setup.box = cf::cutmix_rand_bbox(s.h, s.w, lambda);
    setup.cut_perm = random_perm(s.n, device);
  }
  if (cutout) {
    std::vector<cf::CutoutHole> holes = cf::sample_cutout_holes(s.h, s.w, 2, std::max<int64_t>(2, s.h / 2));
    holes.push_back({0, 0, std::min<int64_t>(2, s.h), std::min<int64_t>(3, s.w)});              // top-left corner
    holes.push_back({std::max<int64_t>(0, s.h - 2), std::max<int64_t>(0, s.w - 3), s.h, s.w});  // bottom-right
    holes.push_back({s.h / 2, 0, s.h / 2 + 1, s.w});                                             // a full row
    holes.push_back({1 % (s.h + 1), 1 % (s.w + 1), 1 % (s.h + 1), 1 % (s.w + 1)});              // empty
    setup.holes = holes;
  }
  if (norm) {
    setup.mean = random_values(s.c, -0.5, 0.8);
    setup.stddev = random_values(s.c, 0.2, 1.5);
  }
  return setup;
}

// The CutMix boxes of the border case: the whole image, single corner pixels, a full column, the last rows and
// three empty boxes.
inline std::vector<cf::BBox> border_boxes(const Shape& s) {
  return {
      {0, 0, s.h, s.w},              // the whole image
      {0, 0, 1, 1},                  // the top-left pixel
      {s.h - 1, s.w - 1, s.h, s.w},  // the bottom-right pixel
      {0, 2, s.h, 3},                // one full column
      {s.h - 2, 0, s.h, s.w},        // the last two rows
      {0, 0, 0, 0},                  // empty
      {2, 1, 2, 4},                  // empty (no rows)
      {1, 3, 4, 3},                  // empty (no columns)
  };
}

}  // namespace composer_test::fused
