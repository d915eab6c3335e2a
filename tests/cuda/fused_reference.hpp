// The expectation of the CUDA fused-transform tests, shared by the GPU suite (test_fused_cuda.cu, on the device)
// and its host-side run (test_fused_cuda_host.cu, on the CPU): a configuration of the stages, how a transform is
// set from it, and the eager ATen sequence a transform with a given stage pack must reproduce. Both runs build
// their expectation here, so that the one CI runs without a GPU checks the same expectation the GPU run checks.
// Include after LibTorch (doctest's macros must not be shadowed by glog's).
#pragma once

#include <composer/functional/cutmix.hpp>
#include <composer/functional/cutout.hpp>
#include <composer/functional/label_smoothing.hpp>
#include <composer/functional/mixup.hpp>
#include <composer/kernels/batch_stages.hpp>

#include <ATen/ATen.h>

#include <doctest/doctest.h>

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

// The relative tolerance of a comparison with the eager float32 sequence for each output dtype.
inline double rtol_for(at::ScalarType out) { return out == at::kFloat ? 1e-5 : (out == at::kHalf ? 1e-3 : 8e-3); }

}  // namespace composer_test::fused
