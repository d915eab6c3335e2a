// One battery over every method of include/composer/algorithms.hpp: each is a valid policy stored under a
// checkpoint name of its own, its checkpoint state survives a save/load round trip (or it declares none), and one
// Trainer step with it trains a tiny model and shows what the method does (the layers its surgery installed, the
// inputs or targets the model saw, the gradient after clipping, ...). The per-method fixtures below give the
// options that make each method act in the first batch.
#include <torch/torch.h>

#include <composer/algorithms.hpp>
#include <composer/core/policy.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/models/gpt.hpp>
#include <composer/models/resnet.hpp>
#include <composer/modules.hpp>
#include <composer/surgery.hpp>
#include <composer/trainer.hpp>

#include <doctest/doctest.h>

#include "../support/slot_models.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace all_methods_test {

namespace alg = composer::algorithms;
namespace cm = composer::modules;
using composer::Event;
using composer::Time;
using composer::surgery::count_module_instances;

// Every method of the library, in the order of include/composer/algorithms.hpp.
using AllMethods =
    std::tuple<alg::Alibi, alg::AugMix, alg::BlurPool, alg::ChannelsLast, alg::ColOut, alg::CutMix, alg::CutOut,
               alg::EMA, alg::Factorize, alg::GatedLinearUnits, alg::GhostBatchNorm, alg::GradientClipping,
               alg::GyroDropout, alg::LabelSmoothing, alg::LayerFreezing, alg::LowPrecisionGroupNorm,
               alg::LowPrecisionLayerNorm, alg::MixUp, alg::NormalizeInputs, alg::ProgressiveResizing,
               alg::RandAugment, alg::SAM, alg::SelectiveBackprop, alg::SeqLengthWarmup, alg::SqueezeExcite,
               alg::StochasticDepth, alg::SWA, alg::WeightStandardization>;
static_assert(std::tuple_size_v<AllMethods> == 28,
              "include/composer/algorithms.hpp has 28 methods: a method added there belongs in AllMethods too");

// The checkpoint names of a type list, and whether they are pairwise distinct (at compile time).
template <class List>
struct Names;
template <class... P>
struct Names<std::tuple<P...>> {
  static constexpr std::array<std::string_view, sizeof...(P)> value{std::string_view(P::name)...};
  static constexpr bool distinct = [] {
    for (std::size_t i = 0; i < value.size(); ++i)
      for (std::size_t j = i + 1; j < value.size(); ++j)
        if (value[i] == value[j]) return false;
    return true;
  }();
};
static_assert(Names<AllMethods>::distinct,
              "two methods share a checkpoint name: one's state would overwrite the other's");

// ---------------------------------------------------------------------------------------------------------------
// The step's data, model and probe

// One batch: the loader yields it whole, so one batch is one epoch.
struct Data {
  at::Tensor inputs;
  at::Tensor targets;
};

composer::data::TensorLoader loader_of(const Data& data) {
  return composer::data::TensorLoader(data.inputs, data.targets,
                                      composer::data::TensorLoaderOptions{data.inputs.size(0), false, false, 0});
}

// 8 images 1x12x12 in [0, 1) with labels of 10 classes.
Data images() {
  torch::manual_seed(3);
  auto x = torch::rand({8, 1, 12, 12});
  return {x, torch::randint(0, 10, {8})};
}

// ResNet-8 (one basic block per stage, width 16) for 1-channel images, with dropout before the classifier: 9
// convolutions (the stem, two per block, the projections of layer2.0 and layer3.0) and 9 batch norms.
composer::models::ResNet small_resnet() {
  torch::manual_seed(11);
  return composer::models::ResNet(composer::models::ResNetOptions{
      .blocks_per_stage = {1, 1, 1}, .width = 16, .in_channels = 1, .num_classes = 10, .dropout = 0.2});
}

// What the step looked like after the methods acted: the inputs the model saw and the targets the loss used (first
// forward pass), the gradient norm after AFTER_TRAIN_BATCH (callbacks run after the algorithms), and the number of
// forward passes.
struct Probe {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_FORWARD, Event::BEFORE_LOSS, Event::AFTER_TRAIN_BATCH};
  at::Tensor inputs;
  at::Tensor targets;
  double grad_norm = NAN;
  int forward_passes = 0;
  void apply(Event event, composer::State& state) {
    if (event == Event::AFTER_FORWARD) {
      if (forward_passes++ == 0) inputs = state.batch.inputs.detach().clone();
    } else if (event == Event::BEFORE_LOSS) {
      if (!targets.defined()) targets = state.batch.targets.detach().clone();
    } else if (event == Event::AFTER_TRAIN_BATCH) {
      double squares = 0.0;
      for (const auto& p : state.model.module().parameters())
        if (p.grad().defined()) squares += p.grad().pow(2).sum().item<double>();
      grad_norm = std::sqrt(squares);
    }
  }
};

// The training model's parameters by name (copies).
std::map<std::string, at::Tensor> parameters_of(torch::nn::Module& module) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : module.named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}

// Labels as float one-hot rows of `classes` columns.
at::Tensor one_hot_float(const at::Tensor& labels, std::int64_t classes) {
  return torch::nn::functional::one_hot(labels, classes).to(torch::kFloat);
}

// ---------------------------------------------------------------------------------------------------------------
// Per-method fixtures: `make()` gives the policy, `model()` and `data()` what it trains, `name` the checkpoint name
// (Composer's class name), `has_state` whether it keeps checkpoint state, and `check` what its step must show.

template <class P>
struct Fixture;

// The default model and data: ResNet-8 on 1x12x12 images.
struct OnResNet {
  static composer::models::ResNet model() { return small_resnet(); }
  static Data data() { return images(); }
};

// The transformer methods' model and data: a 2-block GPT (vocabulary 13, 16 positions, width 16, 2 heads) on 8
// sequences of 16 tokens with their next tokens as targets.
struct OnGPT {
  static composer::models::GPT model() {
    torch::manual_seed(12);
    return composer::models::GPT(composer::models::GPTOptions{
        .vocab_size = 13, .max_sequence_length = 16, .d_model = 16, .heads = 2, .layers = 2, .mlp_ratio = 4});
  }
  static Data data() {
    torch::manual_seed(4);
    const auto tokens = torch::randint(0, 13, {8, 17}, torch::kLong);
    return {tokens.narrow(1, 0, 16).contiguous(), tokens.narrow(1, 1, 16).contiguous()};
  }
};

template <>
struct Fixture<alg::Alibi> : OnGPT {
  static constexpr std::string_view name = "Alibi";
  static constexpr bool has_state = false;
  static alg::Alibi make() { return alg::Alibi(32, 0.5); }
  static void check(const alg::Alibi& policy, const composer::State& state, const Probe& probe, const Data& data) {
    // both attentions and the position embedding replaced; the model saw twice the rows, half as long
    CHECK(policy.last_report().count() == 3);
    CHECK(count_module_instances<cm::AlibiCausalSelfAttentionImpl>(state.model.module()) == 2);
    CHECK(torch::equal(probe.inputs, data.inputs.reshape({16, 8})));
    CHECK(torch::equal(probe.targets, data.targets.reshape({16, 8})));
  }
};

template <>
struct Fixture<alg::AugMix> : OnResNet {
  static constexpr std::string_view name = "AugMix";
  static constexpr bool has_state = false;
  static alg::AugMix make() { return alg::AugMix(); }
  static void check(const alg::AugMix&, const composer::State&, const Probe& probe, const Data& data) {
    REQUIRE(probe.inputs.sizes() == data.inputs.sizes());
    CHECK_FALSE(torch::allclose(probe.inputs, data.inputs));  // the model trained on augmented mixes
  }
};

template <>
struct Fixture<alg::BlurPool> : OnResNet {
  static constexpr std::string_view name = "BlurPool";
  static constexpr bool has_state = false;
  static alg::BlurPool make() { return alg::BlurPool(); }
  static void check(const alg::BlurPool& policy, const composer::State& state, const Probe&, const Data&) {
    // the strided convolutions with at least 16 input channels: layer2.0.conv1, layer2.0's projection and the
    // same two of layer3.0 (no stem max pool to replace)
    CHECK(policy.last_report().count() == 4);
    CHECK(count_module_instances<cm::BlurConv2dImpl>(state.model.module()) == 4);
  }
};

template <>
struct Fixture<alg::ChannelsLast> : OnResNet {
  static constexpr std::string_view name = "ChannelsLast";
  static constexpr bool has_state = false;
  static alg::ChannelsLast make() { return alg::ChannelsLast(); }
  static void check(const alg::ChannelsLast&, const composer::State& state, const Probe&, const Data&) {
    // every 3x3 kernel with more than one input channel (all but the stem's) is stored channels-last, which a
    // freshly built [out, in, kh, kw] kernel is not (for 1x1 kernels and a single input channel the two layouts
    // coincide)
    int kernels = 0;
    for (const auto& p : state.model.module().parameters()) {
      if (p.dim() != 4 || p.size(1) == 1 || p.size(2) * p.size(3) == 1) continue;
      ++kernels;
      CHECK(p.is_contiguous(at::MemoryFormat::ChannelsLast));
      CHECK_FALSE(p.is_contiguous());
    }
    CHECK(kernels == 6);
  }
};

template <>
struct Fixture<alg::ColOut> : OnResNet {
  static constexpr std::string_view name = "ColOut";
  static constexpr bool has_state = false;
  static alg::ColOut make() { return alg::ColOut(); }
  static void check(const alg::ColOut& policy, const composer::State&, const Probe& probe, const Data& data) {
    // int(0.85 · 12) = 10 rows and columns kept, the same for the whole batch
    CHECK(probe.inputs.sizes() == std::vector<std::int64_t>{8, 1, 10, 10});
    const auto kept = data.inputs.index_select(2, policy.kept().kept_rows).index_select(3, policy.kept().kept_cols);
    CHECK(torch::equal(probe.inputs, kept));
  }
};

template <>
struct Fixture<alg::CutMix> : OnResNet {
  static constexpr std::string_view name = "CutMix";
  static constexpr bool has_state = false;
  static alg::CutMix make() { return alg::CutMix(1.0); }
  static void check(const alg::CutMix& policy, const composer::State&, const Probe& probe, const Data& data) {
    // every pixel is the image's own or, inside the box, its partner's; the targets mix in proportion to the box
    const auto& x = data.inputs;
    const auto partner = x.index_select(0, policy.indices());
    CHECK(((probe.inputs == x) | (probe.inputs == partner)).all().item<bool>());
    CHECK_FALSE(torch::equal(probe.inputs, x));
    const double lambda = policy.adjusted_lambda();
    const auto own = one_hot_float(data.targets, 10);
    const auto partners = one_hot_float(data.targets.index_select(0, policy.indices()), 10);
    CHECK(torch::allclose(probe.targets, own * lambda + partners * (1 - lambda)));
  }
};

template <>
struct Fixture<alg::CutOut> : OnResNet {
  static constexpr std::string_view name = "CutOut";
  static constexpr bool has_state = false;
  static alg::CutOut make() { return alg::CutOut(); }
  static void check(const alg::CutOut& policy, const composer::State&, const Probe& probe, const Data& data) {
    // every pixel is kept or zeroed, and some are zeroed (the images have no zero of their own)
    CHECK_FALSE(policy.holes().empty());
    CHECK(((probe.inputs == data.inputs) | (probe.inputs == 0)).all().item<bool>());
    CHECK((probe.inputs == 0).sum().item<std::int64_t>() > 0);
    CHECK((data.inputs == 0).sum().item<std::int64_t>() == 0);
  }
};

template <>
struct Fixture<alg::EMA> : OnResNet {
  static constexpr std::string_view name = "EMA";
  static constexpr bool has_state = true;
  static alg::EMA make() { return alg::EMA(); }
  static void check(const alg::EMA& policy, const composer::State& state, const Probe&, const Data&) {
    // averaging starts at 0dur; its first average is the trained weights themselves
    CHECK(policy.ema_started());
    CHECK_FALSE(policy.ema_weights_active());
    const auto model = parameters_of(state.model.module());
    const auto& averaged = policy.ema_parameters().named_parameters();
    CHECK(averaged.size() == model.size());
    for (const auto& item : averaged) {
      CAPTURE(item.key());
      REQUIRE(model.count(item.key()) == 1);
      CHECK(torch::allclose(item.value(), model.at(item.key())));
    }
  }
};

template <>
struct Fixture<alg::Factorize> : OnResNet {
  static constexpr std::string_view name = "Factorize";
  static constexpr bool has_state = false;
  static alg::Factorize make() {
    return alg::Factorize({.factorize_linears = false, .min_channels = 32, .latent_channels = 0.25});
  }
  static void check(const alg::Factorize& policy, const composer::State& state, const Probe&, const Data&) {
    // the convolutions with min(in, out) >= 32: layer2.0.conv2, and layer3.0's conv1, conv2 and projection
    CHECK(policy.last_report().count() == 4);
    CHECK(count_module_instances<cm::FactorizedConv2dImpl>(state.model.module()) == 4);
  }
};

template <>
struct Fixture<alg::GatedLinearUnits> : OnGPT {
  static constexpr std::string_view name = "GatedLinearUnits";
  static constexpr bool has_state = false;
  static alg::GatedLinearUnits make() { return alg::GatedLinearUnits(); }
  static void check(const alg::GatedLinearUnits& policy, const composer::State& state, const Probe&, const Data&) {
    CHECK(policy.last_report().count() == 2);  // one MLP per block
    CHECK(count_module_instances<cm::GatedLinearUnitImpl>(state.model.module()) == 2);
    CHECK(count_module_instances<composer::models::TransformerMLPImpl>(state.model.module()) == 0);
  }
};

template <>
struct Fixture<alg::GhostBatchNorm> : OnResNet {
  static constexpr std::string_view name = "GhostBatchNorm";
  static constexpr bool has_state = false;
  static alg::GhostBatchNorm make() { return alg::GhostBatchNorm({.ghost_batch_size = 4}); }
  static void check(const alg::GhostBatchNorm& policy, const composer::State& state, const Probe&, const Data&) {
    CHECK(policy.last_report().count() == 9);  // every batch norm of ResNet-8
    CHECK(count_module_instances<cm::GhostBatchNorm2dImpl>(state.model.module()) == 9);
  }
};

template <>
struct Fixture<alg::GradientClipping> : OnResNet {
  static constexpr std::string_view name = "GradientClipping";
  static constexpr bool has_state = false;
  static constexpr double threshold = 1e-3;
  static alg::GradientClipping make() { return alg::GradientClipping("norm", threshold); }
  static void check(const alg::GradientClipping&, const composer::State&, const Probe& probe, const Data&) {
    // the gradient's norm (far above 1e-3 for this model) was scaled down to the threshold
    CHECK(probe.grad_norm == doctest::Approx(threshold).epsilon(1e-3));
  }
};

template <>
struct Fixture<alg::GyroDropout> : OnResNet {
  static constexpr std::string_view name = "GyroDropout";
  static constexpr bool has_state = true;
  // sigma and tau 1: a run of one batch has room for one mask
  static alg::GyroDropout make() { return alg::GyroDropout({.p = 0.5, .sigma = 1, .tau = 1}); }
  static void check(const alg::GyroDropout& policy, const composer::State&, const Probe&, const Data&) {
    CHECK(policy.last_report().count() == 1);  // the dropout before the classifier
    REQUIRE(policy.layers().size() == 1);
    CHECK(policy.layers()[0]->state().training_step == 1);
    CHECK(policy.layers()[0]->state().iter_num == 1);  // int(1 batch · 1 epoch / sigma 1) · tau 1
  }
};

template <>
struct Fixture<alg::LabelSmoothing> : OnResNet {
  static constexpr std::string_view name = "LabelSmoothing";
  static constexpr bool has_state = false;
  static alg::LabelSmoothing make() { return alg::LabelSmoothing(0.1); }
  static void check(const alg::LabelSmoothing&, const composer::State&, const Probe& probe, const Data& data) {
    // the loss saw (1 - 0.1) · one-hot + 0.1 / 10
    CHECK(torch::allclose(probe.targets, one_hot_float(data.targets, 10) * 0.9 + 0.01));
  }
};

template <>
struct Fixture<alg::LayerFreezing> : OnResNet {
  static constexpr std::string_view name = "LayerFreezing";
  static constexpr bool has_state = true;
  static alg::LayerFreezing make() { return alg::LayerFreezing({.freeze_start = 0.0}); }
  static void check(const alg::LayerFreezing& policy, const composer::State& state, const Probe&, const Data&) {
    // at the end of the only epoch (all of training), all layers but the last are frozen and leave the optimizer
    CHECK(policy.last_result().fraction == doctest::Approx(1.0));
    CHECK(policy.last_result().layers_frozen > 0);
    std::size_t frozen = 0, trainable = 0;
    for (const auto& p : state.model.module().parameters()) (p.requires_grad() ? trainable : frozen) += 1;
    CHECK(frozen > 0);
    CHECK(trainable > 0);
    std::size_t held = 0;
    for (const auto& group : state.optimizers.front()->param_groups()) held += group.params().size();
    CHECK(held == trainable);
  }
};

// conv -> group norm -> linear on 1x8x8 images of 3 classes.
template <>
struct Fixture<alg::LowPrecisionGroupNorm> {
  static constexpr std::string_view name = "LowPrecisionGroupNorm";
  static constexpr bool has_state = false;
  static composer_test::GroupNet model() {
    torch::manual_seed(11);
    return composer_test::GroupNet();
  }
  static Data data() {
    torch::manual_seed(4);
    return {torch::rand({8, 1, 8, 8}), torch::randint(0, 3, {8})};
  }
  static alg::LowPrecisionGroupNorm make() { return alg::LowPrecisionGroupNorm(); }
  static void check(const alg::LowPrecisionGroupNorm& policy, const composer::State& state, const Probe&,
                    const Data&) {
    // fp32 on the CPU: the group norm stays as it is
    CHECK(policy.last_report().count() == 0);
    CHECK(count_module_instances<torch::nn::GroupNormImpl>(state.model.module()) == 1);
    CHECK(count_module_instances<cm::LPGroupNormImpl>(state.model.module()) == 0);
  }
};

// linear -> layer norm -> dropout -> linear on 6-vectors of 3 classes.
template <>
struct Fixture<alg::LowPrecisionLayerNorm> {
  static constexpr std::string_view name = "LowPrecisionLayerNorm";
  static constexpr bool has_state = false;
  static composer_test::Mlp model() {
    torch::manual_seed(11);
    return composer_test::Mlp();
  }
  static Data data() {
    torch::manual_seed(5);
    return {torch::randn({8, 6}), torch::randint(0, 3, {8})};
  }
  static alg::LowPrecisionLayerNorm make() { return alg::LowPrecisionLayerNorm(); }
  static void check(const alg::LowPrecisionLayerNorm& policy, const composer::State& state, const Probe&,
                    const Data&) {
    // fp32 on the CPU: the layer norm stays as it is
    CHECK(policy.last_report().count() == 0);
    CHECK(count_module_instances<torch::nn::LayerNormImpl>(state.model.module()) == 1);
    CHECK(count_module_instances<cm::LPLayerNormImpl>(state.model.module()) == 0);
  }
};

template <>
struct Fixture<alg::MixUp> : OnResNet {
  static constexpr std::string_view name = "MixUp";
  static constexpr bool has_state = false;
  static alg::MixUp make() { return alg::MixUp(0.2); }
  static void check(const alg::MixUp& policy, const composer::State&, const Probe& probe, const Data& data) {
    // (1 - λ) x + λ x[indices], and the targets mixed with the same weights
    const double lambda = policy.mixing();
    CHECK(lambda > 0.0);
    CHECK(lambda < 1.0);
    const auto& idx = policy.indices();
    CHECK(torch::allclose(probe.inputs, data.inputs * (1 - lambda) + data.inputs.index_select(0, idx) * lambda, 1e-5,
                          1e-6));
    CHECK(torch::allclose(probe.targets, one_hot_float(data.targets, 10) * (1 - lambda) +
                                             one_hot_float(data.targets.index_select(0, idx), 10) * lambda));
  }
};

template <>
struct Fixture<alg::NormalizeInputs> : OnResNet {
  static constexpr std::string_view name = "NormalizeInputs";
  static constexpr bool has_state = false;
  static alg::NormalizeInputs make() { return alg::NormalizeInputs({.mean = {0.5}, .std = {0.25}}); }
  static void check(const alg::NormalizeInputs&, const composer::State&, const Probe& probe, const Data& data) {
    CHECK(torch::allclose(probe.inputs, (data.inputs - 0.5) / 0.25, 1e-5, 1e-6));
  }
};

template <>
struct Fixture<alg::ProgressiveResizing> : OnResNet {
  static constexpr std::string_view name = "ProgressiveResizing";
  static constexpr bool has_state = false;
  static alg::ProgressiveResizing make() {
    return alg::ProgressiveResizing({.initial_scale = 0.5, .finetune_fraction = 0.0, .delay_fraction = 0.0});
  }
  static void check(const alg::ProgressiveResizing&, const composer::State&, const Probe& probe, const Data&) {
    // at the start, scale 0.5 pinned to the size increment 4: round(12 · 0.5 / 4) · 4 = 8 (half to even)
    CHECK(probe.inputs.sizes() == std::vector<std::int64_t>{8, 1, 8, 8});
  }
};

template <>
struct Fixture<alg::RandAugment> : OnResNet {
  static constexpr std::string_view name = "RandAugment";
  static constexpr bool has_state = false;
  static alg::RandAugment make() { return alg::RandAugment(); }
  static void check(const alg::RandAugment&, const composer::State&, const Probe& probe, const Data& data) {
    REQUIRE(probe.inputs.sizes() == data.inputs.sizes());
    CHECK_FALSE(torch::allclose(probe.inputs, data.inputs));  // the model trained on augmented images
  }
};

template <>
struct Fixture<alg::SAM> : OnResNet {
  static constexpr std::string_view name = "SAM";
  static constexpr bool has_state = true;
  static alg::SAM make() { return alg::SAM(); }
  static void check(const alg::SAM& policy, const composer::State& state, const Probe& probe, const Data&) {
    // the optimizer is wrapped, and its sharpness-aware step evaluated the batch twice
    REQUIRE(policy.optimizer());
    CHECK(state.optimizers.front() == policy.optimizer());
    CHECK(policy.global_step() == 1);
    CHECK(probe.forward_passes == 2);
  }
};

template <>
struct Fixture<alg::SelectiveBackprop> : OnResNet {
  static constexpr std::string_view name = "SelectiveBackprop";
  static constexpr bool has_state = false;
  static alg::SelectiveBackprop make() {
    return alg::SelectiveBackprop({.start = 0.0, .end = 1.0, .keep = 0.5, .interrupt = 0});
  }
  static void check(const alg::SelectiveBackprop&, const composer::State&, const Probe& probe, const Data& data) {
    // half of the batch, each a sample of the batch
    REQUIRE(probe.inputs.size(0) == 4);
    for (std::int64_t i = 0; i < 4; ++i) {
      bool found = false;
      for (std::int64_t j = 0; j < 8; ++j) found = found || torch::equal(probe.inputs[i], data.inputs[j]);
      CHECK(found);
    }
  }
};

template <>
struct Fixture<alg::SeqLengthWarmup> : OnGPT {
  static constexpr std::string_view name = "SeqLengthWarmup";
  static constexpr bool has_state = false;
  // over the run's single batch (duration 1): one update from 4 to 16 tokens, due after that batch
  static alg::SeqLengthWarmup make() {
    return alg::SeqLengthWarmup({.duration = 1.0, .min_seq_length = 4, .max_seq_length = 16, .step_size = 12});
  }
  static void check(const alg::SeqLengthWarmup& policy, const composer::State&, const Probe& probe, const Data& data) {
    CHECK(policy.current_length() == 4);
    CHECK(torch::equal(probe.inputs, data.inputs.narrow(1, 0, 4)));
    CHECK(torch::equal(probe.targets, data.targets.narrow(1, 0, 4)));
  }
};

template <>
struct Fixture<alg::SqueezeExcite> : OnResNet {
  static constexpr std::string_view name = "SqueezeExcite";
  static constexpr bool has_state = false;
  static alg::SqueezeExcite make() { return alg::SqueezeExcite({.latent_channels = 0.25, .min_channels = 16}); }
  static void check(const alg::SqueezeExcite& policy, const composer::State& state, const Probe&, const Data&) {
    CHECK(policy.last_report().count() == 8);  // every convolution but the stem's (1 input channel)
    CHECK(count_module_instances<cm::SqueezeExciteConv2dImpl>(state.model.module()) == 8);
  }
};

template <>
struct Fixture<alg::StochasticDepth> : OnResNet {
  static constexpr std::string_view name = "StochasticDepth";
  static constexpr bool has_state = true;
  // with a warm-up, so that the rate (its checkpoint state) moves away from drop_rate
  static alg::StochasticDepth make() { return alg::StochasticDepth({.drop_rate = 0.2, .drop_warmup = 0.5}); }
  static void check(const alg::StochasticDepth& policy, const composer::State& state, const Probe&, const Data&) {
    CHECK(policy.num_stochastic_layers() == 3);  // one basic block per stage
    CHECK(count_module_instances<cm::StochasticBasicBlockImpl>(state.model.module()) == 3);
    // the only batch starts at 0dur, where the warm-up rate is 0 / 0.5 · 0.2 = 0, for every block
    CHECK(policy.current_drop_rate() == 0.0);
    for (const auto& found : composer::surgery::find_modules<cm::StochasticBasicBlockImpl>(state.model.module()))
      CHECK(found.module->drop_rate() == 0.0);
  }
};

template <>
struct Fixture<alg::SWA> : OnResNet {
  static constexpr std::string_view name = "SWA";
  static constexpr bool has_state = true;
  static alg::SWA make() { return alg::SWA(); }
  static void check(const alg::SWA& policy, const composer::State& state, const Probe&, const Data&) {
    // the only epoch end is past swa_start (0.7dur) and swa_end (0.97dur): one snapshot, and the model takes the
    // average
    CHECK(policy.swa_started());
    CHECK(policy.swa_completed());
    CHECK(policy.num_averaged() == 1);
    const auto model = parameters_of(state.model.module());
    CHECK(policy.averaged_parameters().size() == model.size());
    for (const auto& item : policy.averaged_parameters()) {
      CAPTURE(item.key());
      REQUIRE(model.count(item.key()) == 1);
      CHECK(torch::equal(item.value(), model.at(item.key())));
    }
  }
};

template <>
struct Fixture<alg::WeightStandardization> : OnResNet {
  static constexpr std::string_view name = "WeightStandardization";
  static constexpr bool has_state = false;
  static alg::WeightStandardization make() { return alg::WeightStandardization(); }
  static void check(const alg::WeightStandardization& policy, const composer::State& state, const Probe&,
                    const Data&) {
    CHECK(policy.last_report().count() == 9);  // every convolution of ResNet-8
    CHECK(count_module_instances<cm::WSConv2dImpl>(state.model.module()) == 9);
  }
};

// ---------------------------------------------------------------------------------------------------------------
// One Trainer step, and the checkpoint state

// A Trainer with the method and the probe over its fixture's model and data, built (the methods acting at INIT and
// AFTER_LOAD have run) and then trained for one batch.
template <class P>
struct OneBatch {
  Data data = Fixture<P>::data();
  std::unique_ptr<composer::Trainer<P, Probe>> trainer;
  std::map<std::string, at::Tensor> before;  // the parameters once the Trainer was built

  OneBatch() {
    auto net = Fixture<P>::model();
    auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05));
    trainer = std::make_unique<composer::Trainer<P, Probe>>(
        net,
        composer::TrainerOptions{.train_dataloader = loader_of(data),
                                 .max_duration = Time("1ba"),
                                 .optimizers = {sgd},
                                 .seed = 7,
                                 .progress_bar = false},
        Fixture<P>::make(), Probe{});
    before = parameters_of(trainer->state().model.module());
    trainer->fit();
  }
  const P& policy() const { return trainer->template get<P>(); }
  const Probe& probe() const { return trainer->template get<Probe>(); }
};

// The archive `policy.save_state` writes, as bytes.
template <class P>
std::string saved_state(const P& policy) {
  torch::serialize::OutputArchive archive;
  policy.save_state(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

torch::serialize::InputArchive archive_of(const std::string& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream in(bytes);
  archive.load_from(in);
  return archive;
}

// "" when the two archives hold the same entries with the same values (tensors: same dtype, shape and elements;
// sub-archives compared entry by entry), else the first difference.
std::string difference(torch::serialize::InputArchive& a, torch::serialize::InputArchive& b,
                       const std::string& where = "") {
  auto keys = a.keys();
  auto other_keys = b.keys();
  std::sort(keys.begin(), keys.end());
  std::sort(other_keys.begin(), other_keys.end());
  if (keys != other_keys) return where + ": different entries";
  for (const auto& key : keys) {
    torch::serialize::InputArchive sub_a, sub_b;
    if (a.try_read(key, sub_a)) {
      if (!b.try_read(key, sub_b)) return where + key + ": a sub-archive in one only";
      const std::string inner = difference(sub_a, sub_b, where + key + ".");
      if (!inner.empty()) return inner;
      continue;
    }
    c10::IValue va, vb;
    a.read(key, va);
    b.read(key, vb);
    if (va.isTensor() != vb.isTensor()) return where + key + ": a tensor in one only";
    if (va.isTensor()) {
      const auto& ta = va.toTensor();
      const auto& tb = vb.toTensor();
      if (ta.scalar_type() != tb.scalar_type() || ta.sizes() != tb.sizes() || !torch::equal(ta, tb))
        return where + key + ": different tensors";
    } else if (!(va == vb)) {
      return where + key + ": different values";
    }
  }
  return "";
}

// Loads `bytes` into `policy`, with the state when its load_state takes one.
template <class P>
void load_state(P& policy, const std::string& bytes, composer::State& state) {
  auto archive = archive_of(bytes);
  if constexpr (requires { policy.load_state(archive, state); })
    policy.load_state(archive, state);
  else
    policy.load_state(archive);
}

// The lower-case letters of `text` (no underscores): "low_precision_groupnorm" and "LowPrecisionGroupNorm" both
// give "lowprecisiongroupnorm".
std::string letters(std::string_view text) {
  std::string out;
  for (char c : text)
    if (std::isalnum(static_cast<unsigned char>(c)))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace all_methods_test

using namespace all_methods_test;

TEST_CASE("the battery lists every method that include/composer/algorithms.hpp includes, each once") {
  // algorithms.hpp includes composer/algorithms/<method>.hpp for each method, the file named after the method
  std::ifstream header(std::string(COMPOSER_SOURCE_DIR) + "/include/composer/algorithms.hpp");
  REQUIRE(header.good());
  const std::string prefix = "#include <composer/algorithms/";
  std::multiset<std::string> included;
  for (std::string line; std::getline(header, line);)
    if (line.rfind(prefix, 0) == 0)
      included.insert(letters(line.substr(prefix.size(), line.find(".hpp>") - prefix.size())));
  std::multiset<std::string> listed;
  for (std::string_view name : Names<AllMethods>::value) listed.insert(letters(name));
  CHECK(included.size() == std::tuple_size_v<AllMethods>);
  CHECK(listed == included);
  // and no two share a checkpoint name (also asserted at compile time)
  const std::set<std::string_view> distinct(Names<AllMethods>::value.begin(), Names<AllMethods>::value.end());
  CHECK(distinct.size() == std::tuple_size_v<AllMethods>);
}

TEST_CASE_TEMPLATE_DEFINE("each method is a valid policy stored under Composer's name for it", P, valid_policy) {
  static_assert(composer::policy_check<P, composer::State>::value);
  static_assert(composer::detail::declares_name<P>, "every method names its checkpoint entry");
  CHECK(composer::policy_name<P>() == std::string(Fixture<P>::name));
}
TEST_CASE_TEMPLATE_APPLY(valid_policy, AllMethods);

TEST_CASE_TEMPLATE_DEFINE("each method's checkpoint state survives a save/load round trip, or it declares none", P,
                          state_round_trip) {
  constexpr bool declares_state =
      composer::detail::declares_save_state<P> || composer::detail::declares_load_state<P>;
  CHECK(declares_state == Fixture<P>::has_state);
  if constexpr (declares_state) {
    OneBatch<P> run;
    const std::string trained = saved_state(run.policy());
    auto trained_archive = archive_of(trained);
    auto default_archive = archive_of(saved_state(Fixture<P>::make()));
    CHECK(difference(trained_archive, default_archive) != "");  // one batch changed the state
    P fresh = Fixture<P>::make();
    load_state(fresh, trained, run.trainer->state());
    auto reloaded_archive = archive_of(saved_state(fresh));
    CHECK(difference(trained_archive, reloaded_archive) == "");
  }
}
TEST_CASE_TEMPLATE_APPLY(state_round_trip, AllMethods);

TEST_CASE_TEMPLATE_DEFINE("one Trainer step with each method trains its model and shows the method at work", P,
                          trainer_step) {
  OneBatch<P> run;
  const composer::State& state = run.trainer->state();
  CHECK(state.timestamp.batch().count() == 1);
  CHECK(state.timestamp.epoch().count() == 1);
  REQUIRE(state.loss.defined());
  CHECK(std::isfinite(state.loss.item<double>()));
  CHECK(run.probe().forward_passes >= 1);
  bool changed = false;
  for (const auto& [name, after] : parameters_of(state.model.module())) {
    const auto found = run.before.find(name);
    if (found != run.before.end() && found->second.sizes() == after.sizes() && !torch::equal(found->second, after))
      changed = true;
  }
  CHECK(changed);
  Fixture<P>::check(run.policy(), state, run.probe(), run.data);
}
TEST_CASE_TEMPLATE_APPLY(trainer_step, AllMethods);
