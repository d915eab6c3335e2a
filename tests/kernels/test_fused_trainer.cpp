// Trainer<Algs...>: the input transforms fuse exactly when the composition allows, and the fused path feeds the
// model the same batches as the eager one.
#include <torch/torch.h>

#include <composer/algorithms.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <vector>

using composer::Event;
using composer::Time;
namespace alg = composer::algorithms;

namespace fused_trainer_test {

// Reads the inputs just before the forward pass and the targets just before the loss: the batch the model sees.
struct BatchTap {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_FORWARD, Event::AFTER_LOSS};
  std::vector<at::Tensor> inputs, targets;
  void apply(Event e, composer::State& state) {
    if (e == Event::AFTER_FORWARD)
      inputs.push_back(state.batch.inputs.to(at::kFloat).clone());
    else
      targets.push_back(state.batch.targets.clone());
  }
};

// An algorithm acting between the loader and the forward pass that cannot join the fused pass.
struct Opaque {
  static constexpr composer::EventSet events{Event::BATCH_START};
  void apply(Event, composer::State&) {}
};
// The same, but it declares that it leaves the inputs alone.
struct Harmless {
  static constexpr composer::EventSet events{Event::BATCH_START};
  static constexpr bool touches_inputs = false;
  void apply(Event, composer::State&) {}
};

// A tiny convolutional classifier for [N, 3, H, W] inputs.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)));
    fc = register_module("fc", torch::nn::Linear(4, 5));
  }
  at::Tensor forward(const at::Tensor& x) { return fc->forward(at::relu(conv->forward(x.to(at::kFloat))).mean({2, 3})); }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(Net);

composer::data::TensorLoader image_loader(at::ScalarType dtype, bool channels_last, std::int64_t n = 24,
                                          std::int64_t h = 9, std::int64_t w = 11) {
  torch::manual_seed(99);
  at::Tensor x = dtype == at::kByte ? torch::randint(0, 256, {n, 3, h, w}).to(at::kByte) : torch::rand({n, 3, h, w}).to(dtype);
  if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = torch::randint(0, 5, {n});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{8, true, false, 3});
}

template <class... Algs>
using engine_of = typename composer::Trainer<Algs...>::engine_type;

// Trains 2 epochs of 3 batches with and without fusion; returns the two taps and the fused batch count.
template <class... Algs>
struct Run {
  BatchTap tap;
  std::int64_t fused = 0;
  std::int64_t allocations = 0;
  at::Tensor weight;
};

// Trains 2 epochs of 3 batches of 8, in microbatches of `microbatch` samples (0: whole batches).
template <class... Algs>
Run<Algs...> train_in_microbatches(bool fuse, std::int64_t microbatch, composer::data::TensorLoader loader,
                                   Algs... algs) {
  torch::manual_seed(5);
  Net net;
  auto opt = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05));
  composer::Trainer<Algs..., BatchTap> trainer(net, {.train_dataloader = std::move(loader),
                                                     .max_duration = Time("2ep"),
                                                     .optimizers = {opt},
                                                     .device_train_microbatch_size =
                                                         microbatch > 0 ? std::optional<std::int64_t>(microbatch)
                                                                        : std::nullopt,
                                                     .seed = 11,
                                                     .fuse_batch_transforms = fuse,
                                                     .progress_bar = false},
                                               std::move(algs)..., BatchTap{});
  trainer.fit();
  Run<Algs...> run;
  run.tap = trainer.template get<BatchTap>();
  run.fused = trainer.fused_microbatches();
  run.allocations = trainer.fused_buffer_allocations();
  run.weight = net->fc->weight.detach().clone();
  return run;
}

template <class... Algs>
Run<Algs...> train(bool fuse, composer::data::TensorLoader loader, Algs... algs) {
  return train_in_microbatches(fuse, 0, std::move(loader), std::move(algs)...);
}

template <class... Algs>
void check_same_batches(const Run<Algs...>& eager, const Run<Algs...>& fused, double tol = 1e-5,
                        std::size_t microbatches = 6) {
  REQUIRE(eager.tap.inputs.size() == microbatches);
  REQUIRE(fused.tap.inputs.size() == microbatches);
  CHECK(eager.fused == 0);
  CHECK(fused.fused == static_cast<std::int64_t>(microbatches));
  for (std::size_t b = 0; b < microbatches; ++b) {
    INFO("batch " << b);
    CHECK(eager.tap.inputs[b].sizes() == fused.tap.inputs[b].sizes());
    CHECK(torch::allclose(eager.tap.inputs[b], fused.tap.inputs[b], tol, tol));
    CHECK(torch::allclose(eager.tap.targets[b], fused.tap.targets[b], 1e-6, 1e-6));
  }
  CHECK(torch::allclose(eager.weight, fused.weight, 1e-4, 1e-5));
}

}  // namespace fused_trainer_test

using namespace fused_trainer_test;

// The plan, at compile time.
static_assert(composer::Trainer<alg::MixUp>::fuses_batch_transforms);
static_assert(composer::Trainer<alg::CutOut, alg::MixUp, alg::LabelSmoothing>::fuses_batch_transforms);
// AFTER_* events run the algorithms in reverse (Composer's FILO rule): here CutOut cuts, then NormalizeInputs
// normalises, the kernel's order.
static_assert(composer::Trainer<alg::NormalizeInputs, alg::CutOut, alg::MixUp>::fuses_batch_transforms);
static_assert(composer::Trainer<alg::MixUp, Harmless>::fuses_batch_transforms);
static_assert(composer::Trainer<alg::MixUp, alg::CutMix>::fuses_batch_transforms);
// The kernel mixes, then pastes; pasting first (CutMix declared first on BEFORE_FORWARD) is another result.
static_assert(!composer::Trainer<alg::CutMix, alg::MixUp>::fuses_batch_transforms);
// Nothing to fuse.
static_assert(!composer::Trainer<>::fuses_batch_transforms);
static_assert(!composer::Trainer<alg::LabelSmoothing>::fuses_batch_transforms);
// Another algorithm acts on the inputs' way to the model.
static_assert(!composer::Trainer<alg::MixUp, Opaque>::fuses_batch_transforms);
static_assert(!composer::Trainer<alg::CutOut, alg::ProgressiveResizing>::fuses_batch_transforms);
static_assert(!composer::Trainer<alg::AugMix, alg::MixUp>::fuses_batch_transforms);
// Normalising before cutting out (the reverse of the declared order) gives zero holes, which the kernel's order
// (cut, then normalise) does not.
static_assert(!composer::Trainer<alg::CutOut, alg::NormalizeInputs>::fuses_batch_transforms);
// The same stage twice (two CutOut policies): each would need its own holes.
static_assert(!composer::Trainer<alg::CutOut, alg::CutOut>::fuses_batch_transforms);

// Which stages fuse, in the kernel's order, and which positions the fused pass takes at each event.
namespace st = composer::kernels::stage;
template <class... Algs>
using plan_of = typename composer::Trainer<Algs...>::fusion_plan;
static_assert(std::is_same_v<plan_of<alg::CutOut, alg::MixUp, alg::LabelSmoothing>::stages, std::tuple<st::MixUp, st::CutOut>>);
static_assert(std::is_same_v<plan_of<alg::CutOut, alg::MixUp, alg::LabelSmoothing>::batch_positions, std::index_sequence<0>>);
static_assert(std::is_same_v<plan_of<alg::CutOut, alg::MixUp, alg::LabelSmoothing>::microbatch_positions, std::index_sequence<1>>);
static_assert(std::is_same_v<plan_of<alg::LabelSmoothing, alg::NormalizeInputs, alg::CutOut, alg::CutMix, alg::MixUp>::stages,
                             std::tuple<st::CutMix, st::CutOut, st::Normalize>> == false);  // CutMix before MixUp: off
static_assert(std::is_same_v<plan_of<alg::NormalizeInputs, alg::CutOut, alg::MixUp, alg::CutMix>::stages,
                             std::tuple<st::MixUp, st::CutMix, st::CutOut, st::Normalize>>);
// AFTER_DATALOADER runs in reverse: CutOut (position 1) is drawn before NormalizeInputs (position 0).
static_assert(std::is_same_v<plan_of<alg::NormalizeInputs, alg::CutOut, alg::MixUp, alg::CutMix>::batch_positions,
                             std::index_sequence<1, 0>>);
static_assert(std::is_same_v<plan_of<alg::NormalizeInputs, alg::CutOut, alg::MixUp, alg::CutMix>::microbatch_positions,
                             std::index_sequence<2, 3>>);
static_assert(plan_of<alg::NormalizeInputs, alg::MixUp>::normalizes);
static_assert(!plan_of<alg::CutMix>::normalizes);
static_assert(std::is_same_v<plan_of<alg::CutMix>::stages, std::tuple<st::CutMix>>);
// Off: no stages, nothing skipped.
static_assert(std::is_same_v<plan_of<alg::CutMix, alg::MixUp>::stages, std::tuple<>>);
static_assert(std::is_same_v<plan_of<alg::CutMix, alg::MixUp>::microbatch_positions, std::index_sequence<>>);
static_assert(std::is_same_v<plan_of<alg::MixUp, Opaque>::stages, std::tuple<>>);
// The policies themselves know nothing of fusion: a stage, its event and a draw.
static_assert(composer::StagedInputTransform<alg::MixUp> && composer::StagedInputTransform<alg::CutMix> &&
              composer::StagedInputTransform<alg::CutOut> && composer::StagedInputTransform<alg::NormalizeInputs>);
static_assert(!composer::StagedInputTransform<alg::LabelSmoothing>);
// Without nvcc, CUDA microbatches stay on the eager path.
static_assert(!composer::Trainer<alg::MixUp>::cuda_fusion);

TEST_CASE("Trainer<CutOut, MixUp>: the fused pass feeds the model the eager batches (float NCHW)") {
  auto eager = train(false, image_loader(at::kFloat, false), alg::CutOut(1, 0.5), alg::MixUp(0.4));
  auto fused = train(true, image_loader(at::kFloat, false), alg::CutOut(1, 0.5), alg::MixUp(0.4));
  check_same_batches(eager, fused);
}

TEST_CASE("Trainer<NormalizeInputs, CutOut, MixUp, LabelSmoothing>: uint8 channels-last batches, fused = eager") {
  const alg::NormalizeInputsOptions norm{.mean = {0.5, 0.4, 0.3}, .std = {0.2, 0.25, 0.3}};
  auto eager = train(false, image_loader(at::kByte, true), alg::NormalizeInputs(norm), alg::CutOut(2, 0.3),
                     alg::MixUp(1.0), alg::LabelSmoothing(0.1));
  auto fused = train(true, image_loader(at::kByte, true), alg::NormalizeInputs(norm), alg::CutOut(2, 0.3),
                     alg::MixUp(1.0), alg::LabelSmoothing(0.1));
  check_same_batches(eager, fused, 2e-5);
}

TEST_CASE("Trainer<MixUp, CutMix, LabelSmoothing>: a pasted pixel is the partner's mixed pixel, fused = eager") {
  auto eager = train(false, image_loader(at::kFloat, false), alg::MixUp(0.5), alg::CutMix(1.0),
                     alg::LabelSmoothing(0.1));
  auto fused = train(true, image_loader(at::kFloat, false), alg::MixUp(0.5), alg::CutMix(1.0),
                     alg::LabelSmoothing(0.1));
  check_same_batches(eager, fused);
}

TEST_CASE("every stage alone and all four together: fused = eager") {
  const alg::NormalizeInputsOptions norm{.mean = {0.45, 0.5, 0.55}, .std = {0.3, 0.2, 0.25}};
  SUBCASE("MixUp") {
    check_same_batches(train(false, image_loader(at::kFloat, false), alg::MixUp(1.0)),
                       train(true, image_loader(at::kFloat, false), alg::MixUp(1.0)));
  }
  SUBCASE("CutMix, with the targets mixed by area") {
    check_same_batches(train(false, image_loader(at::kFloat, true), alg::CutMix(1.0)),
                       train(true, image_loader(at::kFloat, true), alg::CutMix(1.0)));
  }
  SUBCASE("CutOut, two holes, uniform sampling") {
    check_same_batches(train(false, image_loader(at::kFloat, false), alg::CutOut(2, 0.4, true)),
                       train(true, image_loader(at::kFloat, false), alg::CutOut(2, 0.4, true)));
  }
  SUBCASE("NormalizeInputs on float32") {
    check_same_batches(train(false, image_loader(at::kFloat, false), alg::NormalizeInputs(norm)),
                       train(true, image_loader(at::kFloat, false), alg::NormalizeInputs(norm)));
  }
  SUBCASE("NormalizeInputs, CutOut, MixUp, CutMix on uint8") {
    check_same_batches(train(false, image_loader(at::kByte, false), alg::NormalizeInputs(norm), alg::CutOut(1, 0.5),
                             alg::MixUp(0.5), alg::CutMix(1.0)),
                       train(true, image_loader(at::kByte, false), alg::NormalizeInputs(norm), alg::CutOut(1, 0.5),
                             alg::MixUp(0.5), alg::CutMix(1.0)),
                       2e-5);
  }
}

TEST_CASE("microbatches: one fused launch per microbatch, MixUp mixing within each, fused = eager") {
  const alg::NormalizeInputsOptions norm{.mean = {0.5, 0.4, 0.3}, .std = {0.2, 0.25, 0.3}};
  // 3 batches of 8 per epoch in microbatches of 3, 3 and 2: 9 launches per epoch.
  auto eager = train_in_microbatches(false, 3, image_loader(at::kByte, false), alg::NormalizeInputs(norm),
                                     alg::CutOut(1, 0.5), alg::MixUp(0.4), alg::LabelSmoothing(0.1));
  auto fused = train_in_microbatches(true, 3, image_loader(at::kByte, false), alg::NormalizeInputs(norm),
                                     alg::CutOut(1, 0.5), alg::MixUp(0.4), alg::LabelSmoothing(0.1));
  check_same_batches(eager, fused, 2e-5, 18);
  // The taps hold microbatches: 3, 3, then 2 samples.
  CHECK(fused.tap.inputs[0].size(0) == 3);
  CHECK(fused.tap.inputs[2].size(0) == 2);
}

TEST_CASE("NormalizeInputs with bfloat16 output: fused = eager to bfloat16 rounding") {
  const alg::NormalizeInputsOptions norm{.mean = {0.5, 0.5, 0.5}, .std = {0.5, 0.5, 0.5}, .dtype = at::kBFloat16};
  auto eager = train(false, image_loader(at::kByte, false), alg::NormalizeInputs(norm));
  auto fused = train(true, image_loader(at::kByte, false), alg::NormalizeInputs(norm));
  // (x/255 − 0.5)/0.5 lies in [−1, 1]: one bfloat16 ulp there is at most 2^-7.
  check_same_batches(eager, fused, 1.0 / 128);
}

// Records where the inputs live without keeping them.
struct AddressTap {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_FORWARD};
  std::vector<const void*> addresses;
  void apply(Event, composer::State& state) { addresses.push_back(state.batch.inputs.data_ptr()); }
};

// Keeps the inputs themselves (a reference, no copy).
struct KeepingTap {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_FORWARD};
  std::vector<at::Tensor> kept;
  void apply(Event, composer::State& state) { kept.push_back(state.batch.inputs); }
};

TEST_CASE("the fused pass writes into one reused buffer, unless a policy keeps the last batch") {
  SUBCASE("nobody keeps the inputs: one allocation, the same storage every batch") {
    torch::manual_seed(5);
    Net net;
    auto opt = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05));
    composer::Trainer<alg::CutOut, AddressTap> trainer(net, {.train_dataloader = image_loader(at::kFloat, false),
                                                             .max_duration = Time("2ep"),
                                                             .optimizers = {opt},
                                                             .seed = 2,
                                                             .progress_bar = false});
    trainer.fit();
    CHECK(trainer.fused_microbatches() == 6);
    CHECK(trainer.fused_buffer_allocations() == 1);
    const auto& addresses = trainer.get<AddressTap>().addresses;
    REQUIRE(addresses.size() == 6);
    for (const void* a : addresses) CHECK(a == addresses.front());
  }
  SUBCASE("a policy keeps every batch's inputs (no copy): each keeps its own values") {
    auto kept_inputs = [](bool fuse, std::int64_t& allocations) {
      torch::manual_seed(5);
      Net net;
      auto opt = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05));
      composer::Trainer<alg::CutOut, KeepingTap> trainer(net, {.train_dataloader = image_loader(at::kFloat, false),
                                                               .max_duration = Time("2ep"),
                                                               .optimizers = {opt},
                                                               .seed = 2,
                                                               .fuse_batch_transforms = fuse,
                                                               .progress_bar = false});
      trainer.fit();
      allocations = trainer.fused_buffer_allocations();
      return trainer.get<KeepingTap>().kept;
    };
    std::int64_t fused_allocations = 0, eager_allocations = 0;
    const auto fused = kept_inputs(true, fused_allocations);
    const auto eager = kept_inputs(false, eager_allocations);
    CHECK(fused_allocations == 6);
    CHECK(eager_allocations == 0);
    REQUIRE(fused.size() == 6);
    REQUIRE(eager.size() == 6);
    for (std::size_t b = 0; b < 6; ++b) CHECK(torch::equal(eager[b], fused[b]));
  }
}

TEST_CASE("batches the kernel cannot take run the eager transforms") {
  SUBCASE("uint8 input without a normaliser (no 1/255 scale is defined)") {
    auto run = train(true, image_loader(at::kByte, false), alg::CutOut(1, 0.5));
    CHECK(run.fused == 0);
    CHECK(run.tap.inputs.size() == 6);
  }
  SUBCASE("float16 input (the eager stages keep its dtype; the pass writes float32)") {
    auto run = train(true, image_loader(at::kHalf, false), alg::CutOut(1, 0.5), alg::MixUp(0.2));
    CHECK(run.fused == 0);
    CHECK(run.tap.inputs.size() == 6);
  }
  SUBCASE("a composition that does not fuse never tries") {
    auto run = train(true, image_loader(at::kFloat, false), alg::MixUp(0.2), Opaque{});
    CHECK(run.fused == 0);
  }
}

TEST_CASE("NormalizeInputs rejects bad settings and batches with a clear message") {
  CHECK_THROWS_WITH_AS(alg::NormalizeInputs({.mean = {0.5}, .std = {0.5, 0.5}}),
                       doctest::Contains("one mean and one std per channel"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(alg::NormalizeInputs({.mean = {0.5}, .std = {0.0}}), doctest::Contains("std[0]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(alg::NormalizeInputs({.mean = {0.5}, .std = {1.0}, .dtype = at::kInt}),
                       doctest::Contains("dtype"), std::invalid_argument);
  composer::State state;
  state.batch.inputs = torch::rand({2, 3, 4, 4});
  alg::NormalizeInputs one_channel({.mean = {0.5}, .std = {0.5}});
  CHECK_THROWS_WITH_AS(one_channel.apply(composer::EventTag<Event::AFTER_DATALOADER>{}, state),
                       doctest::Contains("1 channel mean(s) but the batch has 3 channels"), std::invalid_argument);
  // The eager transform by hand: (x/255 − mean)/std.
  state.batch.inputs = torch::tensor({0, 51, 255}, at::kByte).view({1, 1, 1, 3});
  one_channel.apply(composer::EventTag<Event::AFTER_DATALOADER>{}, state);
  CHECK(torch::allclose(state.batch.inputs, torch::tensor({-1.0f, -0.6f, 1.0f}).view({1, 1, 1, 3})));
}
