// The per-batch algorithms (MixUp, CutMix, CutOut, ColOut, LabelSmoothing, ProgressiveResizing, SelectiveBackprop):
// the events they act on, their exact effect on a batch, training with each in a Trainer, all of them together,
// and resumption from a checkpoint.
#include <torch/torch.h>

#include <composer/algorithms/colout.hpp>
#include <composer/algorithms/cutmix.hpp>
#include <composer/algorithms/cutout.hpp>
#include <composer/algorithms/label_smoothing.hpp>
#include <composer/algorithms/mixup.hpp>
#include <composer/algorithms/progressive_resizing.hpp>
#include <composer/algorithms/selective_backprop.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/io/files.hpp>
#include <composer/trainer/trainer.hpp>

#include <boost/hana/equal.hpp>
#include <boost/hana/tuple.hpp>

// After LibTorch: some LibTorch builds log through glog, whose CHECK macros must not shadow doctest's.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

// GCC 12 reports every member a designated initializer leaves to its default (TrainerOptions has many).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using composer::Event;
using composer::EventSet;
using composer::State;
using composer::Time;
namespace alg = composer::algorithms;
namespace cf = composer::functional;
namespace io = composer::io;

namespace batch_methods_test {

// Runs `f` and asserts that it throws std::invalid_argument whose message is exactly `expected`.
template <class F>
void check_message(F&& f, const std::string& expected) {
  std::string message = "<no exception>";
  try {
    f();
  } catch (const std::invalid_argument& e) {
    message = e.what();
  } catch (const std::exception& e) {
    message = std::string("<other exception> ") + e.what();
  }
  CHECK(message == expected);
}

constexpr std::int64_t kClasses = 4;

// A tiny CNN that accepts any image size: conv, ReLU, global average pooling, linear.
torch::nn::Sequential make_cnn(std::int64_t channels = 3, std::uint64_t seed = 0) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 6, 3).padding(1)),
                               torch::nn::ReLU(), torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(),
                               torch::nn::Linear(6, kClasses));
}

// Random images [n, c, size, size] and class indices in [0, kClasses).
composer::Batch random_batch(std::int64_t n, std::int64_t c = 3, std::int64_t size = 8, std::uint64_t seed = 5) {
  torch::manual_seed(seed);
  auto x = torch::randn({n, c, size, size});
  auto y = torch::randint(0, kClasses, {n}, torch::TensorOptions().dtype(torch::kLong));
  return {x, y};
}

// A state holding a CNN, a max duration of 10 batches, a batch, and outputs and a loss for it.
State make_state(composer::Batch batch, std::int64_t channels = 3) {
  State state(composer::Model(make_cnn(channels)), Time("10ba"), 0);
  state.batch = std::move(batch);
  state.outputs = state.model.forward(state.batch.inputs);
  state.loss = state.model.loss(state.outputs, state.batch.targets);
  return state;
}

// Moves the state's clock forward by `batches` batches of 8 samples within one epoch.
void advance(State& state, int batches) {
  for (int i = 0; i < batches; ++i) state.timestamp = state.timestamp.to_next_batch(8);
}

// Whether two tensors are the same tensor object (or both undefined).
bool same_tensor(const at::Tensor& a, const at::Tensor& b) {
  return (!a.defined() && !b.defined()) || (a.defined() && b.defined() && a.is_same(b));
}

// Runs every event that `Alg` does not declare on a fresh state and checks that the batch, outputs and loss stay
// the very same tensors; then runs `own` (one of its events) and checks that something changed, so that the first
// part is not vacuous.
template <class Alg>
void check_acts_only_on_its_events(Alg algorithm, Event own, State state) {
  composer::BasicEngine<State, Alg> engine(state, std::move(algorithm));
  for (Event event : composer::all_events) {
    if (Alg::events.contains(event)) continue;
    const composer::Batch batch = state.batch;
    const at::Tensor outputs = state.outputs;
    const at::Tensor loss = state.loss;
    engine.run_event(event);
    const std::string event_name(composer::to_string(event));
    CAPTURE(event_name);
    CHECK(same_tensor(state.batch.inputs, batch.inputs));
    CHECK(same_tensor(state.batch.targets, batch.targets));
    CHECK(same_tensor(state.outputs, outputs));
    CHECK(same_tensor(state.loss, loss));
  }
  const composer::Batch batch = state.batch;
  const at::Tensor loss = state.loss;
  engine.run_event(own);
  const std::string own_name(composer::to_string(own));
  CAPTURE(own_name);
  CHECK_FALSE((same_tensor(state.batch.inputs, batch.inputs) && same_tensor(state.batch.targets, batch.targets) &&
               same_tensor(state.loss, loss)));
}

// Records what the trainer's model saw and produced; a callback, so on every event it runs after the algorithms.
struct Probe {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr EventSet events{Event::AFTER_DATALOADER, Event::AFTER_FORWARD, Event::BEFORE_LOSS,
                                   Event::AFTER_LOSS, Event::BEFORE_BACKWARD};
  std::vector<at::Tensor> loaded_inputs, loaded_targets;  // AFTER_DATALOADER, after the algorithms
  std::vector<at::Tensor> forwarded, outputs;             // AFTER_FORWARD: the microbatch inputs and outputs
  std::vector<at::Tensor> loss_targets;                   // BEFORE_LOSS: the targets the loss is computed with
  std::vector<at::Tensor> after_loss_targets, losses;     // AFTER_LOSS: targets and loss
  std::vector<at::Tensor> backward_losses;                // BEFORE_BACKWARD: the loss that is differentiated
  void apply(Event event, State& state) {
    switch (event) {
      case Event::AFTER_DATALOADER:
        loaded_inputs.push_back(state.batch.inputs);
        loaded_targets.push_back(state.batch.targets);
        break;
      case Event::AFTER_FORWARD:
        forwarded.push_back(state.batch.inputs);
        outputs.push_back(state.outputs.detach());
        break;
      case Event::BEFORE_LOSS:
        loss_targets.push_back(state.batch.targets);
        break;
      case Event::AFTER_LOSS:
        after_loss_targets.push_back(state.batch.targets);
        losses.push_back(state.loss.detach());
        break;
      case Event::BEFORE_BACKWARD:
        backward_losses.push_back(state.loss.detach());
        break;
      default:
        break;
    }
  }
};

// Keeps every metric logged, as a logger destination.
struct MetricsSink {
  static constexpr composer::Role role = composer::Role::logger;
  static constexpr EventSet events{};
  std::vector<composer::Metrics> logged;
  void log_metrics(const composer::Metrics& metrics, const State&) { logged.push_back(metrics); }
};

// Image data: `samples` random [channels, size, size] images with labels; no shuffling, so batch k holds samples
// [k·batch, (k + 1)·batch).
struct ImageData {
  at::Tensor x, y;
  ImageData(std::int64_t samples, std::int64_t channels = 3, std::int64_t size = 8, std::uint64_t seed = 21) {
    torch::manual_seed(seed);
    x = torch::randn({samples, channels, size, size});
    y = torch::randint(0, kClasses, {samples}, torch::TensorOptions().dtype(torch::kLong));
  }
  composer::data::TensorLoader loader(std::int64_t batch, bool shuffle = false) const {
    return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, shuffle, false, 3});
  }
  at::Tensor batch_inputs(std::int64_t k, std::int64_t batch) const { return x.slice(0, k * batch, (k + 1) * batch); }
  at::Tensor batch_targets(std::int64_t k, std::int64_t batch) const { return y.slice(0, k * batch, (k + 1) * batch); }
};

composer::TrainerOptions train_options(const ImageData& data, torch::nn::Module& net, const char* duration,
                                       std::int64_t batch = 8) {
  composer::TrainerOptions options{.train_dataloader = data.loader(batch),
          .max_duration = Time(duration),
          .optimizers = {std::make_shared<torch::optim::SGD>(net.parameters(), torch::optim::SGDOptions(0.1))},
          .seed = 17,
          .progress_bar = false};
  return options;
}

std::vector<at::Tensor> copy_parameters(torch::nn::Module& net) {
  std::vector<at::Tensor> copies;
  for (const auto& p : net.parameters()) copies.push_back(p.detach().clone());
  return copies;
}

bool parameters_changed(torch::nn::Module& net, const std::vector<at::Tensor>& before) {
  const auto now = net.parameters();
  for (std::size_t i = 0; i < now.size(); ++i)
    if (!torch::equal(now[i], before[i])) return true;
  return false;
}

bool all_finite(const std::vector<at::Tensor>& losses) {
  for (const auto& loss : losses)
    if (!std::isfinite(loss.item<double>())) return false;
  return !losses.empty();
}

at::Tensor dense(const at::Tensor& y) { return torch::one_hot(y, kClasses).to(torch::kFloat); }

std::string fresh_dir(const std::string& name) {
  const std::string dir = io::join(io::temp_directory(), "composer_batch_methods_test_" + name);
  io::remove_all(dir);
  io::create_directories(dir);
  return dir;
}

}  // namespace batch_methods_test

using namespace batch_methods_test;

// ---------------------------------------------------------------------------------------------------------------
// Events

static_assert(alg::MixUp::events == EventSet{Event::BEFORE_FORWARD, Event::BEFORE_LOSS, Event::BEFORE_BACKWARD});
static_assert(alg::CutMix::events == EventSet{Event::BEFORE_FORWARD, Event::BEFORE_LOSS, Event::BEFORE_BACKWARD});
static_assert(alg::CutOut::events == EventSet{Event::AFTER_DATALOADER});
static_assert(alg::ColOut::events == EventSet{Event::AFTER_DATALOADER});
static_assert(alg::LabelSmoothing::events == EventSet{Event::BEFORE_LOSS, Event::AFTER_LOSS});
static_assert(alg::ProgressiveResizing::events == EventSet{Event::AFTER_DATALOADER});
static_assert(alg::SelectiveBackprop::events == EventSet{Event::INIT, Event::AFTER_DATALOADER});
static_assert(composer::placement_of<alg::SelectiveBackprop> == composer::Placement::first);
static_assert(composer::placement_of<alg::MixUp> == composer::Placement::declared);
static_assert(std::is_default_constructible_v<alg::MixUp> && std::is_default_constructible_v<alg::CutMix> &&
              std::is_default_constructible_v<alg::CutOut> && std::is_default_constructible_v<alg::ColOut> &&
              std::is_default_constructible_v<alg::LabelSmoothing> &&
              std::is_default_constructible_v<alg::ProgressiveResizing> &&
              std::is_default_constructible_v<alg::SelectiveBackprop>);
// None of them carries state across batches: the trainer's checkpoint (weights, optimizer, clock, random
// generators) is all that an exact resume needs.
static_assert(!composer::saves_state<alg::MixUp> && !composer::saves_state<alg::CutMix> &&
              !composer::saves_state<alg::SelectiveBackprop> && !composer::saves_state<alg::ProgressiveResizing>);

TEST_CASE("every algorithm leaves the state alone on the events it does not declare, and acts on its own") {
  torch::manual_seed(3);
  SUBCASE("MixUp") { check_acts_only_on_its_events(alg::MixUp(1.0), Event::BEFORE_FORWARD, make_state(random_batch(6))); }
  SUBCASE("MixUp with interpolate_loss") {
    check_acts_only_on_its_events(alg::MixUp(1.0, true), Event::BEFORE_FORWARD, make_state(random_batch(6)));
  }
  SUBCASE("CutMix") { check_acts_only_on_its_events(alg::CutMix(), Event::BEFORE_FORWARD, make_state(random_batch(6))); }
  SUBCASE("CutOut") { check_acts_only_on_its_events(alg::CutOut(), Event::AFTER_DATALOADER, make_state(random_batch(6))); }
  SUBCASE("ColOut") { check_acts_only_on_its_events(alg::ColOut(), Event::AFTER_DATALOADER, make_state(random_batch(6))); }
  SUBCASE("LabelSmoothing") {
    check_acts_only_on_its_events(alg::LabelSmoothing(), Event::BEFORE_LOSS, make_state(random_batch(6)));
  }
  SUBCASE("ProgressiveResizing") {
    check_acts_only_on_its_events(alg::ProgressiveResizing(), Event::AFTER_DATALOADER, make_state(random_batch(6)));
  }
  SUBCASE("SelectiveBackprop") {
    State state = make_state(random_batch(6));
    advance(state, 6);  // 0.6 of the way, an uninterrupted batch
    check_acts_only_on_its_events(alg::SelectiveBackprop(), Event::AFTER_DATALOADER, std::move(state));
  }
}

TEST_CASE("the runtime guards pick BEFORE_LOSS or BEFORE_BACKWARD by interpolate_loss") {
  State state = make_state(random_batch(4));
  CHECK(alg::MixUp().match(Event::BEFORE_FORWARD, state));
  CHECK(alg::MixUp().match(Event::BEFORE_LOSS, state));
  CHECK_FALSE(alg::MixUp().match(Event::BEFORE_BACKWARD, state));
  CHECK(alg::MixUp(0.2, true).match(Event::BEFORE_FORWARD, state));
  CHECK_FALSE(alg::MixUp(0.2, true).match(Event::BEFORE_LOSS, state));
  CHECK(alg::MixUp(0.2, true).match(Event::BEFORE_BACKWARD, state));
  CHECK(alg::CutMix().match(Event::BEFORE_LOSS, state));
  CHECK_FALSE(alg::CutMix().match(Event::BEFORE_BACKWARD, state));
  CHECK_FALSE(alg::CutMix(1.0, true).match(Event::BEFORE_LOSS, state));
  CHECK(alg::CutMix(1.0, true).match(Event::BEFORE_BACKWARD, state));
}

// ---------------------------------------------------------------------------------------------------------------
// MixUp

TEST_CASE("MixUp mixes inputs with the stored m and permutation, then targets densely, and keeps them") {
  State state = make_state(random_batch(6));
  const at::Tensor x = state.batch.inputs;
  const at::Tensor y = state.batch.targets;
  composer::BasicEngine<State, alg::MixUp> engine(state, alg::MixUp(1.0));
  const auto& mixup = engine.get<alg::MixUp>();

  torch::manual_seed(11);
  engine.run<Event::BEFORE_FORWARD>();
  const double m = mixup.mixing();
  const at::Tensor perm = mixup.indices();
  CHECK(m > 0.0);
  CHECK(m <= 0.5);
  CHECK(torch::equal(std::get<0>(perm.sort()), torch::arange(6)));
  CHECK(torch::allclose(state.batch.inputs, x * (1 - m) + x.index_select(0, perm) * m, 1e-6, 1e-7));
  CHECK(torch::equal(mixup.permuted_target(), y.index_select(0, perm)));
  CHECK(same_tensor(state.batch.targets, y));

  // Composer's draws, in Composer's order: the coefficient, then the permutation.
  torch::manual_seed(11);
  const double expected_m = cf::sample_mixup_coef(1.0);
  CHECK(m == expected_m);
  CHECK(torch::equal(perm, cf::random_permutation(6)));

  state.outputs = state.model.forward(state.batch.inputs);
  engine.run<Event::BEFORE_LOSS>();
  const at::Tensor expected = dense(y) * (1 - m) + dense(y.index_select(0, perm)) * m;
  CHECK(torch::allclose(state.batch.targets, expected, 1e-6, 1e-7));
  CHECK(torch::allclose(state.batch.targets.sum(1), torch::ones({6})));
  const at::Tensor mixed_targets = state.batch.targets;
  engine.run<Event::AFTER_LOSS>();
  CHECK(same_tensor(state.batch.targets, mixed_targets));  // Composer does not restore them
}

TEST_CASE("MixUp with interpolate_loss keeps the targets and interpolates the loss at BEFORE_BACKWARD") {
  State state = make_state(random_batch(6));
  const at::Tensor y = state.batch.targets;
  composer::BasicEngine<State, alg::MixUp> engine(state, alg::MixUp({.alpha = 1.0, .interpolate_loss = true}));
  torch::manual_seed(12);
  engine.run<Event::BEFORE_FORWARD>();
  const double m = engine.get<alg::MixUp>().mixing();
  const at::Tensor perm = engine.get<alg::MixUp>().indices();
  state.outputs = state.model.forward(state.batch.inputs);
  engine.run<Event::BEFORE_LOSS>();
  CHECK(same_tensor(state.batch.targets, y));
  state.loss = state.model.loss(state.outputs, state.batch.targets);
  const double plain = state.loss.item<double>();
  engine.run<Event::BEFORE_BACKWARD>();
  const double permuted = at::cross_entropy_loss(state.outputs, y.index_select(0, perm)).item<double>();
  CHECK(state.loss.item<double>() == doctest::Approx((1 - m) * plain + m * permuted).epsilon(1e-6));
  // cross-entropy is linear in the target: the same as the loss against the mixed dense targets
  const at::Tensor mixed = dense(y) * (1 - m) + dense(y.index_select(0, perm)) * m;
  CHECK(state.loss.item<double>() ==
        doctest::Approx(composer::cross_entropy_loss(state.outputs, mixed).item<double>()).epsilon(1e-5));
  CHECK(state.loss.requires_grad());
}

TEST_CASE("MixUp with alpha = 0 leaves the values alone; arguments are checked") {
  State state = make_state(random_batch(4));
  const at::Tensor x = state.batch.inputs;
  composer::BasicEngine<State, alg::MixUp> engine(state, alg::MixUp(0.0));
  engine.run<Event::BEFORE_FORWARD>();
  CHECK(engine.get<alg::MixUp>().mixing() == 0.0);
  CHECK(torch::equal(state.batch.inputs, x));

  check_message([] { (void)alg::MixUp(-1.0); }, "composer: MixUp alpha must be >= 0, got -1");
  check_message([] { (void)alg::MixUp({.alpha = std::nan("")}); }, "composer: MixUp alpha must be >= 0, got nan");
  check_message([] { (void)alg::MixUp(std::numeric_limits<double>::infinity()); }, "composer: MixUp alpha must be finite, got inf");
  CHECK(alg::MixUp().alpha() == 0.2);
  CHECK_FALSE(alg::MixUp().interpolate_loss());
}

// ---------------------------------------------------------------------------------------------------------------
// CutMix

TEST_CASE("CutMix pastes the stored box from the stored partners and mixes targets by the unmixed area") {
  State state = make_state(random_batch(6));
  const at::Tensor x = state.batch.inputs;
  const at::Tensor y = state.batch.targets;
  composer::BasicEngine<State, alg::CutMix> engine(state);
  const auto& cutmix = engine.get<alg::CutMix>();

  torch::manual_seed(3);
  engine.run<Event::BEFORE_FORWARD>();
  const cf::BBox box = cutmix.bbox();
  const at::Tensor perm = cutmix.indices();
  CAPTURE(box.x1);
  CAPTURE(box.y1);
  CAPTURE(box.x2);
  CAPTURE(box.y2);
  REQUIRE(box.x2 > box.x1);
  REQUIRE(box.y2 > box.y1);
  at::Tensor expected = x.clone();
  expected.slice(2, box.x1, box.x2).slice(3, box.y1, box.y2).copy_(
      x.index_select(0, perm).slice(2, box.x1, box.x2).slice(3, box.y1, box.y2));
  CHECK(torch::equal(state.batch.inputs, expected));
  CHECK_FALSE(torch::equal(state.batch.inputs, x));
  const double area = 1.0 - static_cast<double>((box.x2 - box.x1) * (box.y2 - box.y1)) / 64.0;
  CHECK(cutmix.adjusted_lambda() == doctest::Approx(area));

  // Composer's draws, in Composer's order: the permutation, λ, then the box.
  torch::manual_seed(3);
  CHECK(torch::equal(perm, cf::random_permutation(6)));
  const double lambda = cf::sample_cutmix_coef(1.0);
  CHECK(cutmix.cutmix_lambda() == lambda);
  CHECK(cf::cutmix_rand_bbox(8, 8, lambda) == box);

  state.outputs = state.model.forward(state.batch.inputs);
  engine.run<Event::BEFORE_LOSS>();
  CHECK(torch::allclose(state.batch.targets, dense(y) * area + dense(y.index_select(0, perm)) * (1 - area)));
}

TEST_CASE("CutMix pastes the box into segmentation targets and refuses to interpolate their loss") {
  composer::Batch batch = random_batch(4, 3, 8);
  torch::manual_seed(8);
  batch.targets = torch::randint(0, kClasses, {4, 8, 8}, torch::TensorOptions().dtype(torch::kLong));
  const at::Tensor y = batch.targets;
  const at::Tensor y_copy = y.clone();
  State state(composer::Model(make_cnn()), Time("10ba"), 0);
  state.batch = batch;
  composer::BasicEngine<State, alg::CutMix> engine(state);
  torch::manual_seed(6);
  engine.run<Event::BEFORE_FORWARD>();
  const cf::BBox box = engine.get<alg::CutMix>().bbox();
  const at::Tensor perm = engine.get<alg::CutMix>().indices();
  REQUIRE(box.x2 > box.x1);
  engine.run<Event::BEFORE_LOSS>();
  at::Tensor expected = y.clone();
  expected.slice(1, box.x1, box.x2).slice(2, box.y1, box.y2).copy_(
      y.index_select(0, perm).slice(1, box.x1, box.x2).slice(2, box.y1, box.y2));
  CHECK(torch::equal(state.batch.targets, expected));
  CHECK(torch::equal(y, y_copy));  // the loader's tensor was not written to

  State other(composer::Model(make_cnn()), Time("10ba"), 0);
  other.batch = batch;
  composer::BasicEngine<State, alg::CutMix> interpolating(other, alg::CutMix(1.0, true));
  interpolating.run<Event::BEFORE_FORWARD>();
  other.loss = torch::zeros({});
  check_message([&] { interpolating.run<Event::BEFORE_BACKWARD>(); },
                "composer: CutMix cannot interpolate the loss when the target has the input's height and width (a "
                "segmentation target); use interpolate_loss=false");
}

TEST_CASE("CutMix with interpolate_loss weighs the two losses by the unmixed area; arguments are checked") {
  State state = make_state(random_batch(6));
  const at::Tensor y = state.batch.targets;
  composer::BasicEngine<State, alg::CutMix> engine(state, alg::CutMix({.interpolate_loss = true, .uniform_sampling = true}));
  torch::manual_seed(1);
  engine.run<Event::BEFORE_FORWARD>();
  const double a = engine.get<alg::CutMix>().adjusted_lambda();
  CHECK(a < 1.0);
  const at::Tensor perm = engine.get<alg::CutMix>().indices();
  state.outputs = state.model.forward(state.batch.inputs);
  state.loss = state.model.loss(state.outputs, state.batch.targets);
  const double plain = state.loss.item<double>();
  engine.run<Event::BEFORE_BACKWARD>();
  const double permuted = at::cross_entropy_loss(state.outputs, y.index_select(0, perm)).item<double>();
  CHECK(state.loss.item<double>() == doctest::Approx(a * plain + (1 - a) * permuted).epsilon(1e-6));

  check_message([] { (void)alg::CutMix(-0.5); }, "composer: CutMix alpha must be >= 0, got -0.5");
  check_message([] { (void)alg::CutMix(std::numeric_limits<double>::infinity()); }, "composer: CutMix alpha must be finite, got inf");
  CHECK(alg::CutMix().options().alpha == 1.0);
  CHECK_FALSE(alg::CutMix().options().uniform_sampling);
}

// ---------------------------------------------------------------------------------------------------------------
// CutOut

TEST_CASE("CutOut zeroes exactly the stored holes in every image and channel, as the functional form does") {
  State state = make_state(random_batch(5));
  const at::Tensor x = state.batch.inputs;
  const at::Tensor y = state.batch.targets;
  composer::BasicEngine<State, alg::CutOut> engine(state);
  torch::manual_seed(13);
  engine.run<Event::AFTER_DATALOADER>();
  const auto& holes = engine.get<alg::CutOut>().holes();
  REQUIRE(holes.size() == 1);
  const cf::CutoutHole hole = holes[0];
  REQUIRE(hole.y2 > hole.y1);
  REQUIRE(hole.x2 > hole.x1);
  CHECK(hole.y2 - hole.y1 <= 4);  // side int(8 · 0.5) = 4 before clipping
  CHECK(hole.x2 - hole.x1 <= 4);
  at::Tensor expected = x.clone();
  expected.slice(2, hole.y1, hole.y2).slice(3, hole.x1, hole.x2).zero_();
  CHECK(torch::equal(state.batch.inputs, expected));
  CHECK(same_tensor(state.batch.targets, y));
  torch::manual_seed(13);
  CHECK(torch::equal(state.batch.inputs, cf::cutout_batch(x, 1, 0.5, false)));
}

TEST_CASE("CutOut with several uniformly sampled holes; arguments are checked") {
  State state = make_state(random_batch(3, 2, 16), 2);
  const at::Tensor x = state.batch.inputs;
  composer::BasicEngine<State, alg::CutOut> engine(state, alg::CutOut({.num_holes = 3, .length = 0.25, .uniform_sampling = true}));
  torch::manual_seed(14);
  engine.run<Event::AFTER_DATALOADER>();
  const auto holes = engine.get<alg::CutOut>().holes();
  REQUIRE(holes.size() == 3);
  at::Tensor mask = torch::ones({16, 16});
  for (const auto& h : holes) mask.slice(0, h.y1, h.y2).slice(1, h.x1, h.x2).zero_();
  CHECK(torch::equal(state.batch.inputs, x * mask));
  torch::manual_seed(14);
  CHECK(torch::equal(state.batch.inputs, cf::cutout_batch(x, 3, 0.25, true)));

  check_message([] { (void)alg::CutOut(-1); }, "composer: CutOut num_holes must be >= 0, got -1");
  check_message([] { (void)alg::CutOut(1, 0.0); }, "composer: CutOut length must be in (0, 1], got 0");
  check_message([] { (void)alg::CutOut({.length = 1.5}); }, "composer: CutOut length must be in (0, 1], got 1.5");
}

// ---------------------------------------------------------------------------------------------------------------
// ColOut

TEST_CASE("ColOut keeps int((1 - p) H) rows and columns of the batch, and of same-sized masks only") {
  composer::Batch batch = random_batch(4, 3, 8);
  State state = make_state(batch);
  composer::BasicEngine<State, alg::ColOut> engine(state, alg::ColOut(0.25, 0.5));
  torch::manual_seed(15);
  engine.run<Event::AFTER_DATALOADER>();
  const auto& kept = engine.get<alg::ColOut>().kept();
  CHECK(state.batch.inputs.sizes() == at::IntArrayRef({4, 3, 6, 4}));
  CHECK(kept.kept_rows.size(0) == 6);
  CHECK(kept.kept_cols.size(0) == 4);
  CHECK(torch::equal(state.batch.inputs, batch.inputs.index_select(2, kept.kept_rows).index_select(3, kept.kept_cols)));
  CHECK(same_tensor(state.batch.targets, batch.targets));  // class indices: left alone under "auto"

  // a segmentation mask with the input's H and W loses the same rows and columns
  torch::manual_seed(16);
  const at::Tensor mask = torch::randint(0, kClasses, {4, 8, 8}, torch::TensorOptions().dtype(torch::kLong));
  state.batch = {batch.inputs, mask};
  engine.run<Event::AFTER_DATALOADER>();
  CHECK(state.batch.targets.sizes() == at::IntArrayRef({4, 6, 4}));
  CHECK(torch::equal(state.batch.targets, mask.index_select(1, kept.kept_rows).index_select(2, kept.kept_cols)));

  // unless resize_target is false
  State plain = make_state(batch);
  plain.batch = {batch.inputs, mask};
  composer::BasicEngine<State, alg::ColOut> no_targets(plain, alg::ColOut({.resize_target = false}));
  no_targets.run<Event::AFTER_DATALOADER>();
  CHECK(plain.batch.inputs.sizes() == at::IntArrayRef({4, 3, 6, 6}));  // int(0.85 · 8) = 6
  CHECK(same_tensor(plain.batch.targets, mask));
}

TEST_CASE("ColOut with batch = false draws rows and columns for each sample and leaves targets alone") {
  composer::Batch batch = random_batch(5, 2, 8);
  State state = make_state(batch, 2);
  composer::BasicEngine<State, alg::ColOut> engine(state, alg::ColOut(0.5, 0.25, false));
  torch::manual_seed(17);
  engine.run<Event::AFTER_DATALOADER>();
  CHECK(state.batch.inputs.sizes() == at::IntArrayRef({5, 2, 4, 6}));
  CHECK(same_tensor(state.batch.targets, batch.targets));
  torch::manual_seed(17);
  std::set<std::vector<std::int64_t>> distinct_rows;
  for (std::int64_t i = 0; i < 5; ++i) {
    const cf::ColOutIndices kept = cf::sample_colout_indices(8, 8, 0.5, 0.25);
    const at::Tensor rows = kept.kept_rows.contiguous();
    distinct_rows.insert(std::vector<std::int64_t>(rows.data_ptr<std::int64_t>(), rows.data_ptr<std::int64_t>() + rows.numel()));
    CHECK(torch::equal(state.batch.inputs[i],
                       batch.inputs[i].index_select(1, kept.kept_rows).index_select(2, kept.kept_cols)));
  }
  CHECK(distinct_rows.size() > 1);  // not one draw for all
}

TEST_CASE("ColOut arguments are checked") {
  check_message([] { (void)alg::ColOut(1.5); }, "composer: ColOut p_row must be in [0, 1], got 1.5");
  check_message([] { (void)alg::ColOut(0.1, -0.1); }, "composer: ColOut p_col must be in [0, 1], got -0.1");
  check_message([] { (void)alg::ColOut({.batch = false, .resize_target = true}); },
                "composer: ColOut resize_target=true needs batch=true (per-sample ColOut leaves targets alone)");
  check_message([] { (void)alg::ColOut(0.15, 0.15, true, "sometimes"); },
                "composer: resize_target must be true, false or 'auto', got 'sometimes'");
  CHECK(alg::ColOut().options().p_row == 0.15);
  CHECK(alg::ColOut().options().resize_target.mode() == cf::ResizeTarget::Mode::automatic);
}

// ---------------------------------------------------------------------------------------------------------------
// LabelSmoothing

TEST_CASE("LabelSmoothing: the loss is cross-entropy against (1 - s) onehot + s / C, and the labels come back") {
  State state = make_state(random_batch(6));
  const at::Tensor y = state.batch.targets;
  composer::BasicEngine<State, alg::LabelSmoothing> engine(state, alg::LabelSmoothing(0.2));
  engine.run<Event::BEFORE_LOSS>();
  CHECK(torch::allclose(state.batch.targets, dense(y) * 0.8 + 0.2 / kClasses));
  state.loss = state.model.loss(state.outputs, state.batch.targets);
  // LibTorch's own label smoothing is the same mixture
  const at::Tensor reference = at::cross_entropy_loss(state.outputs, y, {}, at::Reduction::Mean, -100, 0.2);
  CHECK(state.loss.item<double>() == doctest::Approx(reference.item<double>()).epsilon(1e-6));
  CHECK(state.loss.item<double>() != doctest::Approx(at::cross_entropy_loss(state.outputs, y).item<double>()));
  engine.run<Event::AFTER_LOSS>();
  CHECK((state.batch.targets.scalar_type() == torch::kLong));
  CHECK(torch::equal(state.batch.targets, y));

  check_message([] { (void)alg::LabelSmoothing(1.1); }, "composer: LabelSmoothing smoothing must be in [0, 1], got 1.1");
  check_message([] { (void)alg::LabelSmoothing({.smoothing = -0.1}); },
                "composer: LabelSmoothing smoothing must be in [0, 1], got -0.1");
  CHECK(alg::LabelSmoothing().smoothing() == 0.1);
}

TEST_CASE("MixUp then LabelSmoothing: the mixed targets are smoothed, and AFTER_LOSS restores the mixed ones") {
  State state = make_state(random_batch(6));
  const at::Tensor y = state.batch.targets;
  composer::BasicEngine<State, alg::MixUp, alg::LabelSmoothing> engine(state, alg::MixUp(1.0), alg::LabelSmoothing(0.1));
  torch::manual_seed(18);
  engine.run<Event::BEFORE_FORWARD>();
  const double m = engine.get<alg::MixUp>().mixing();
  const at::Tensor perm = engine.get<alg::MixUp>().indices();
  state.outputs = state.model.forward(state.batch.inputs);
  engine.run<Event::BEFORE_LOSS>();
  const at::Tensor mixed = dense(y) * (1 - m) + dense(y.index_select(0, perm)) * m;
  CHECK(torch::allclose(state.batch.targets, mixed * 0.9 + 0.1 / kClasses, 1e-6, 1e-7));
  engine.run<Event::AFTER_LOSS>();
  CHECK(torch::allclose(state.batch.targets, mixed, 1e-6, 1e-7));
}

// ---------------------------------------------------------------------------------------------------------------
// ProgressiveResizing

TEST_CASE("ProgressiveResizing's schedule: s0 until the delay, linear growth, full size for the finetune part") {
  const alg::ProgressiveResizing pr;  // s0 = 0.5, delay 0.5, finetune 0.2: growth over [0.5, 0.8]
  CHECK(pr.scale_factor(0.0) == 0.5);
  CHECK(pr.scale_factor(0.25) == 0.5);
  CHECK(pr.scale_factor(0.5) == 0.5);
  CHECK(pr.scale_factor(0.65) == doctest::Approx(0.75));
  CHECK(pr.scale_factor(0.6) == doctest::Approx(0.5 + 0.5 / 3.0));
  CHECK(pr.scale_factor(0.8) == doctest::Approx(1.0));
  CHECK(pr.scale_factor(0.95) == 1.0);
  // the width is pinned to a multiple of 4: 32 · 0.75 = 24; 32 · 0.6667 / 4 = 5.33 → 20
  CHECK(pr.pinned_scale_factor(0.65, 32) == 0.75);
  CHECK(pr.pinned_scale_factor(0.6, 32) == 20.0 / 32.0);
  CHECK(pr.pinned_scale_factor(0.9, 32) == 1.0);
  // rounding is half to even, as Python's round: 20 · 0.5 / 4 = 2.5 → 2, 28 · 0.5 / 4 = 3.5 → 4
  CHECK(pr.pinned_scale_factor(0.0, 20) == 8.0 / 20.0);
  CHECK(pr.pinned_scale_factor(0.0, 28) == 16.0 / 28.0);

  const alg::ProgressiveResizing custom({.initial_scale = 0.25, .finetune_fraction = 0.0, .delay_fraction = 0.0,
                                         .size_increment = 1});
  CHECK(custom.scale_factor(0.0) == 0.25);
  CHECK(custom.scale_factor(0.5) == doctest::Approx(0.625));
  CHECK(custom.pinned_scale_factor(0.5, 16) == 10.0 / 16.0);
  // no growth phase (delay + finetune = 1): full size from the delay on
  const alg::ProgressiveResizing jump({.finetune_fraction = 0.5, .delay_fraction = 0.5});
  CHECK(jump.scale_factor(0.49) == 0.5);
  CHECK(jump.scale_factor(0.5) == 1.0);
}

TEST_CASE("ProgressiveResizing resizes the batch for the elapsed duration and logs the size") {
  composer::Batch batch = random_batch(4, 3, 16);
  State state = make_state(batch);
  composer::BasicEngine<State, alg::ProgressiveResizing, MetricsSink> engine(state);
  engine.run<Event::AFTER_DATALOADER>();  // elapsed 0: half size, nearest neighbour = every second pixel
  CHECK(state.batch.inputs.sizes() == at::IntArrayRef({4, 3, 8, 8}));
  CHECK(torch::equal(state.batch.inputs, batch.inputs.slice(2, 0, 16, 2).slice(3, 0, 16, 2)));
  CHECK(same_tensor(state.batch.targets, batch.targets));
  const auto& logged = engine.get<MetricsSink>().logged;
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].at("progressive_resizing/height") == 8);
  CHECK(logged[0].at("progressive_resizing/width") == 8);
  CHECK(logged[0].at("progressive_resizing/scale_factor") == 0.5);

  advance(state, 6);  // 0.6: s = 0.667, width round(16 · 0.667 / 4) · 4 = 12
  state.batch = batch;
  engine.run<Event::AFTER_DATALOADER>();
  CHECK(state.batch.inputs.sizes() == at::IntArrayRef({4, 3, 12, 12}));
  CHECK(logged.back().at("progressive_resizing/scale_factor") == doctest::Approx(2.0 / 3.0));

  advance(state, 2);  // 0.8: full size, the very same tensors
  state.batch = batch;
  engine.run<Event::AFTER_DATALOADER>();
  CHECK(same_tensor(state.batch.inputs, batch.inputs));

  State no_duration{composer::Model(make_cnn())};
  no_duration.batch = batch;
  composer::BasicEngine<State, alg::ProgressiveResizing> without(no_duration);
  CHECK_THROWS_AS(without.run<Event::AFTER_DATALOADER>(), std::logic_error);
}

TEST_CASE("ProgressiveResizing crop mode takes one window per batch, and resizes masks when asked") {
  const at::Tensor x = torch::arange(2 * 16 * 16, torch::TensorOptions().dtype(torch::kFloat)).view({2, 1, 16, 16});
  const at::Tensor mask = torch::arange(2 * 16 * 16).view({2, 16, 16}).remainder(kClasses);
  State state(composer::Model(make_cnn(1)), Time("10ba"), 0);
  state.batch = {x, mask};
  composer::BasicEngine<State, alg::ProgressiveResizing> engine(
      state, alg::ProgressiveResizing({.mode = "crop", .resize_targets = true}));
  torch::manual_seed(19);
  engine.run<Event::AFTER_DATALOADER>();
  REQUIRE(state.batch.inputs.sizes() == at::IntArrayRef({2, 1, 8, 8}));
  const auto corner = static_cast<std::int64_t>(state.batch.inputs[0][0][0][0].item<float>());
  const std::int64_t top = corner / 16;
  const std::int64_t left = corner % 16;
  CHECK(top < 8);  // torch.randint(16 - 8) never draws the last offset
  CHECK(left < 8);
  CHECK(torch::equal(state.batch.inputs, x.slice(2, top, top + 8).slice(3, left, left + 8)));
  CHECK(torch::equal(state.batch.targets, mask.slice(1, top, top + 8).slice(2, left, left + 8)));
  CHECK((state.batch.targets.scalar_type() == torch::kLong));
}

TEST_CASE("ProgressiveResizing arguments are checked") {
  check_message([] { (void)alg::ProgressiveResizing("bilinear"); },
                "composer: ProgressiveResizing mode must be 'resize' or 'crop', got 'bilinear'");
  check_message([] { (void)alg::ProgressiveResizing("resize", 1.5); },
                "composer: ProgressiveResizing initial_scale must be in [0, 1], got 1.5");
  check_message([] { (void)alg::ProgressiveResizing("resize", 0.5, -0.1); },
                "composer: ProgressiveResizing finetune_fraction must be in [0, 1], got -0.1");
  check_message([] { (void)alg::ProgressiveResizing("crop", 0.5, 0.2, -0.5); },
                "composer: ProgressiveResizing delay_fraction must be in [0, 1], got -0.5");
  check_message([] { (void)alg::ProgressiveResizing({.finetune_fraction = 0.6, .delay_fraction = 0.6}); },
                "composer: ProgressiveResizing delay_fraction + finetune_fraction must be <= 1, got 1.2");
  check_message([] { (void)alg::ProgressiveResizing({.size_increment = 0}); },
                "composer: ProgressiveResizing size_increment must be > 0, got 0");
}

// ---------------------------------------------------------------------------------------------------------------
// SelectiveBackprop

TEST_CASE("SelectiveBackprop selects keep·N samples only inside [start, end) and on uninterrupted batches") {
  const composer::Batch batch = random_batch(8);
  State state = make_state(batch);
  composer::BasicEngine<State, alg::SelectiveBackprop> engine(state);
  engine.run<Event::INIT>();
  std::vector<std::int64_t> sizes;
  for (int k = 0; k < 10; ++k) {  // elapsed k / 10, batch_in_epoch k
    state.batch = batch;
    engine.run<Event::AFTER_DATALOADER>();
    sizes.push_back(state.batch.inputs.size(0));
    advance(state, 1);
  }
  // selected: 0.5 <= k/10 < 0.9 and (k + 1) odd, i.e. k = 6 and 8
  CHECK(sizes == std::vector<std::int64_t>{8, 8, 8, 8, 8, 8, 4, 8, 4, 8});

  // interrupt = 0 selects on every batch in the window; keep = 1 never selects
  State every = make_state(batch);
  composer::BasicEngine<State, alg::SelectiveBackprop> no_interrupt(every, alg::SelectiveBackprop(0.2, 0.4, 0.25, 1.0, 0));
  std::vector<std::int64_t> every_sizes;
  for (int k = 0; k < 10; ++k) {
    every.batch = batch;
    no_interrupt.run<Event::AFTER_DATALOADER>();
    every_sizes.push_back(every.batch.inputs.size(0));
    advance(every, 1);
  }
  CHECK(every_sizes == std::vector<std::int64_t>{8, 8, 2, 2, 8, 8, 8, 8, 8, 8});
  State keep_all = make_state(batch);
  advance(keep_all, 6);
  CHECK_FALSE(alg::SelectiveBackprop(0.5, 0.9, 1.0).match(Event::AFTER_DATALOADER, keep_all));
  CHECK(alg::SelectiveBackprop(0.5, 0.9, 0.5).match(Event::AFTER_DATALOADER, keep_all));
}

TEST_CASE("SelectiveBackprop keeps distinct samples with their targets, exactly as select_using_loss draws them") {
  // samples that can be told apart: sample i is filled with i
  at::Tensor x = torch::arange(8, torch::TensorOptions().dtype(torch::kFloat)).view({8, 1, 1, 1}).expand({8, 3, 8, 8}).contiguous();
  x = x + 0.1 * random_batch(8).inputs;
  const at::Tensor y = torch::tensor(std::vector<std::int64_t>{0, 1, 2, 3, 0, 1, 2, 3});
  State state = make_state({x, y});
  advance(state, 6);
  composer::BasicEngine<State, alg::SelectiveBackprop> engine(state);
  torch::manual_seed(23);
  engine.run<Event::AFTER_DATALOADER>();
  REQUIRE(state.batch.inputs.size(0) == 4);
  std::set<std::int64_t> chosen;
  for (std::int64_t i = 0; i < 4; ++i) {
    const auto sample = static_cast<std::int64_t>(std::lround(state.batch.inputs[i].mean().item<double>()));
    chosen.insert(sample);
    CHECK(torch::equal(state.batch.inputs[i], x[sample]));
    CHECK(state.batch.targets[i].item<std::int64_t>() == y[sample].item<std::int64_t>());
  }
  CHECK(chosen.size() == 4);

  torch::manual_seed(23);
  const composer::Model& model = state.model;
  auto [expected_x, expected_y] = cf::select_using_loss(
      x, y, [&](const at::Tensor& t) { return model.forward(t); }, alg::per_sample_cross_entropy, 0.5, 1.0);
  CHECK(torch::equal(state.batch.inputs, expected_x));
  CHECK(torch::equal(state.batch.targets, expected_y));
  CHECK_FALSE(state.batch.inputs.requires_grad());
}

TEST_CASE("SelectiveBackprop favours high losses of the given per-sample loss") {
  const composer::Batch batch = random_batch(8);
  // a loss that ranks sample i at i, whatever the outputs
  alg::SelectiveBackpropOptions options{.start = 0.0, .end = 1.0, .keep = 0.5, .interrupt = 0};
  options.loss = [](const at::Tensor& outputs, const at::Tensor&) {
    return torch::arange(outputs.size(0), torch::TensorOptions().dtype(torch::kFloat));
  };
  std::vector<int> counts(8, 0);
  State state = make_state(batch);
  composer::BasicEngine<State, alg::SelectiveBackprop> engine(state, alg::SelectiveBackprop(options));
  torch::manual_seed(24);
  for (int trial = 0; trial < 300; ++trial) {
    state.batch = batch;
    engine.run<Event::AFTER_DATALOADER>();
    REQUIRE(state.batch.inputs.size(0) == 4);
    for (std::int64_t i = 0; i < 4; ++i)
      for (std::int64_t j = 0; j < 8; ++j)
        if (torch::equal(state.batch.inputs[i], batch.inputs[j])) ++counts[static_cast<std::size_t>(j)];
  }
  // keep = 1/2: rank r drawn with weight r + 1/2 (expected counts about 234 for the top sample, 26 for the
  // bottom one; a uniform choice would give 150 each)
  CAPTURE(counts[0]);
  CAPTURE(counts[7]);
  CHECK(counts[7] > 200);
  CHECK(counts[0] < 50);
  CHECK(counts[7] > counts[3]);
  CHECK(counts[3] > counts[0]);
}

namespace batch_methods_test {
// Reports the shape of the last input it saw and returns its first kClasses features as logits.
struct ShapeProbeImpl : torch::nn::Module {
  std::vector<std::int64_t> last;
  at::Tensor forward(const at::Tensor& x) {
    last = x.sizes().vec();
    return x.flatten(1).narrow(1, 0, kClasses);
  }
};
TORCH_MODULE(ShapeProbe);
}  // namespace batch_methods_test

TEST_CASE("SelectiveBackprop scores downscaled images but keeps full-size ones; INIT needs a model") {
  ShapeProbe probe;
  State state(composer::Model(probe), Time("10ba"), 0);
  state.batch = random_batch(8, 3, 8);
  advance(state, 6);
  composer::BasicEngine<State, alg::SelectiveBackprop> engine(state, alg::SelectiveBackprop(0.5, 0.9, 0.5, 0.5));
  engine.run<Event::AFTER_DATALOADER>();
  CHECK(probe->last == std::vector<std::int64_t>{8, 3, 4, 4});
  CHECK(state.batch.inputs.sizes() == at::IntArrayRef({4, 3, 8, 8}));

  State empty;
  composer::BasicEngine<State, alg::SelectiveBackprop> no_model(empty);
  check_message([&] { no_model.run<Event::INIT>(); }, "composer: SelectiveBackprop needs a model in the state");
}

TEST_CASE("per_sample_cross_entropy: index, probability and segmentation targets") {
  torch::manual_seed(25);
  const at::Tensor logits = torch::randn({5, kClasses});
  const at::Tensor y = torch::randint(0, kClasses, {5}, torch::TensorOptions().dtype(torch::kLong));
  const at::Tensor losses = alg::per_sample_cross_entropy(logits, y);
  REQUIRE(losses.sizes() == at::IntArrayRef({5}));
  CHECK(torch::allclose(losses, -torch::log_softmax(logits, 1).gather(1, y.unsqueeze(1)).squeeze(1)));
  CHECK(torch::allclose(alg::per_sample_cross_entropy(logits, dense(y)), losses));
  const at::Tensor seg_logits = torch::randn({3, kClasses, 2, 2});
  const at::Tensor seg_y = torch::randint(0, kClasses, {3, 2, 2}, torch::TensorOptions().dtype(torch::kLong));
  const at::Tensor seg = alg::per_sample_cross_entropy(seg_logits, seg_y);
  REQUIRE(seg.sizes() == at::IntArrayRef({3}));
  CHECK(seg[1].item<double>() ==
        doctest::Approx(at::cross_entropy_loss(seg_logits.slice(0, 1, 2), seg_y.slice(0, 1, 2)).item<double>()));
}

TEST_CASE("SelectiveBackprop arguments are checked; it runs first among algorithms on every event") {
  check_message([] { (void)alg::SelectiveBackprop(-0.1); }, "composer: SelectiveBackprop start must be in [0, 1], got -0.1");
  check_message([] { (void)alg::SelectiveBackprop(0.5, 0.4); },
                "composer: SelectiveBackprop end must be in [start, 1] = [0.5, 1], got 0.4");
  check_message([] { (void)alg::SelectiveBackprop(0.5, 0.9, 0.0); }, "composer: SelectiveBackprop keep must be in (0, 1], got 0");
  check_message([] { (void)alg::SelectiveBackprop(0.5, 0.9, 0.5, 1.5); },
                "composer: SelectiveBackprop scale_factor must be in (0, 1], got 1.5");
  check_message([] { (void)alg::SelectiveBackprop(0.5, 0.9, 0.5, 1.0, -1); },
                "composer: SelectiveBackprop interrupt must be >= 0, got -1");
  check_message([] { (void)alg::SelectiveBackprop({.loss = nullptr}); },
                "composer: SelectiveBackprop needs a per-sample loss, got an empty function");

  using Engine = composer::BasicEngine<State, alg::CutOut, alg::ColOut, alg::SelectiveBackprop>;
  constexpr auto after_dataloader = Engine::dispatch_order<Event::AFTER_DATALOADER, composer::Role::algorithm>();
  // SelectiveBackprop first, then ColOut and CutOut in reverse declared order
  static_assert(boost::hana::equal(after_dataloader, boost::hana::tuple_c<std::size_t, 2, 1, 0>));
  constexpr auto init = Engine::dispatch_order<Event::INIT, composer::Role::algorithm>();
  static_assert(boost::hana::equal(init, boost::hana::tuple_c<std::size_t, 2>));
}

// ---------------------------------------------------------------------------------------------------------------
// Each algorithm in a Trainer

TEST_CASE("Trainer<MixUp> trains on mixed microbatches and mixed dense targets") {
  const ImageData data(32);
  auto net = make_cnn();
  const auto before = copy_parameters(*net);
  auto options = train_options(data, *net, "3ba");
  options.device_train_microbatch_size = 4;
  composer::Trainer<alg::MixUp, Probe> trainer(net, options, alg::MixUp(1.0), Probe{});
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  REQUIRE(probe.forwarded.size() == 6);  // 3 batches of 2 microbatches
  const auto& mixup = trainer.get<alg::MixUp>();
  CHECK(mixup.indices().size(0) == 4);  // permuted within the microbatch
  // the last microbatch is samples 20..23
  const at::Tensor x = data.x.slice(0, 20, 24);
  const at::Tensor y = data.y.slice(0, 20, 24);
  const double m = mixup.mixing();
  CHECK(torch::allclose(probe.forwarded.back(), x * (1 - m) + x.index_select(0, mixup.indices()) * m, 1e-6, 1e-7));
  CHECK(torch::allclose(probe.loss_targets.back(),
                        dense(y) * (1 - m) + dense(y.index_select(0, mixup.indices())) * m, 1e-6, 1e-7));
  for (const auto& t : probe.loss_targets) CHECK(t.sizes() == at::IntArrayRef({4, kClasses}));
  CHECK(all_finite(probe.losses));
  CHECK(parameters_changed(*net, before));
}

TEST_CASE("Trainer<MixUp> with interpolate_loss differentiates the interpolated loss") {
  const ImageData data(16);
  auto net = make_cnn();
  composer::Trainer<alg::MixUp, Probe> trainer(net, train_options(data, *net, "2ba"), alg::MixUp(1.0, true), Probe{});
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  const auto& mixup = trainer.get<alg::MixUp>();
  const at::Tensor y = data.batch_targets(1, 8);
  const double m = mixup.mixing();
  const double permuted = at::cross_entropy_loss(probe.outputs.back(), y.index_select(0, mixup.indices())).item<double>();
  CHECK((probe.loss_targets.back().scalar_type() == torch::kLong));
  CHECK(probe.backward_losses.back().item<double>() ==
        doctest::Approx((1 - m) * probe.losses.back().item<double>() + m * permuted).epsilon(1e-6));
}

TEST_CASE("Trainer<CutMix> trains on pasted boxes and area-weighted targets") {
  const ImageData data(16);
  auto net = make_cnn();
  const auto before = copy_parameters(*net);
  composer::Trainer<alg::CutMix, Probe> trainer(net, train_options(data, *net, "2ba"));
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  const auto& cutmix = trainer.get<alg::CutMix>();
  const at::Tensor x = data.batch_inputs(1, 8);
  const at::Tensor y = data.batch_targets(1, 8);
  const auto mixed = cf::cutmix_batch(x, y, cutmix.bbox(), cutmix.indices());
  CHECK(torch::equal(probe.forwarded.back(), mixed.input_mixed));
  const double a = cutmix.adjusted_lambda();
  CHECK(torch::allclose(probe.loss_targets.back(), dense(y) * a + dense(y.index_select(0, cutmix.indices())) * (1 - a)));
  CHECK(all_finite(probe.losses));
  CHECK(parameters_changed(*net, before));
}

TEST_CASE("Trainer<CutOut> trains on images with a zeroed square") {
  const ImageData data(16);
  auto net = make_cnn();
  const auto before = copy_parameters(*net);
  composer::Trainer<alg::CutOut, Probe> trainer(net, train_options(data, *net, "2ba"));
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  REQUIRE(probe.forwarded.size() == 2);
  for (std::int64_t k = 0; k < 2; ++k) {
    const at::Tensor seen = probe.forwarded[static_cast<std::size_t>(k)];
    const std::int64_t zeros = seen.eq(0).sum().item<std::int64_t>();
    CHECK(zeros > 0);  // random normal data has no exact zeros of its own
    CHECK(zeros <= 8 * 3 * 16);  // at most a 4 × 4 hole per image and channel
    CHECK(torch::equal(seen.ne(0), seen.ne(0)[0].expand_as(seen)));  // the same hole everywhere
    CHECK(torch::equal(seen * seen.ne(0), data.batch_inputs(k, 8) * seen.ne(0)));
  }
  CHECK(parameters_changed(*net, before));
}

TEST_CASE("Trainer<ColOut> trains on images with rows and columns dropped") {
  const ImageData data(16);
  auto net = make_cnn();
  const auto before = copy_parameters(*net);
  composer::Trainer<alg::ColOut, Probe> trainer(net, train_options(data, *net, "2ba"), alg::ColOut(0.25, 0.25), Probe{});
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  REQUIRE(probe.forwarded.size() == 2);
  for (const auto& seen : probe.forwarded) CHECK(seen.sizes() == at::IntArrayRef({8, 3, 6, 6}));
  const auto& kept = trainer.get<alg::ColOut>().kept();
  CHECK(torch::equal(probe.forwarded.back(), data.batch_inputs(1, 8).index_select(2, kept.kept_rows).index_select(3, kept.kept_cols)));
  CHECK(all_finite(probe.losses));
  CHECK(parameters_changed(*net, before));
}

TEST_CASE("Trainer<LabelSmoothing> computes the loss with smoothed labels and restores them") {
  const ImageData data(16);
  auto net = make_cnn();
  composer::Trainer<alg::LabelSmoothing, Probe> trainer(net, train_options(data, *net, "2ba"));
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  REQUIRE(probe.losses.size() == 2);
  for (std::int64_t k = 0; k < 2; ++k) {
    const auto i = static_cast<std::size_t>(k);
    const at::Tensor y = data.batch_targets(k, 8);
    CHECK(torch::allclose(probe.loss_targets[i], dense(y) * 0.9 + 0.1 / kClasses));
    CHECK(torch::equal(probe.after_loss_targets[i], y));
    const at::Tensor reference = at::cross_entropy_loss(probe.outputs[i], y, {}, at::Reduction::Mean, -100, 0.1);
    CHECK(probe.losses[i].item<double>() == doctest::Approx(reference.item<double>()).epsilon(1e-6));
  }
}

TEST_CASE("Trainer<ProgressiveResizing> grows the images on Composer's schedule") {
  const ImageData data(80, 3, 16);
  auto net = make_cnn();
  const auto before = copy_parameters(*net);
  composer::Trainer<alg::ProgressiveResizing, Probe> trainer(net, train_options(data, *net, "10ba"));
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  std::vector<std::int64_t> widths;
  for (const auto& seen : probe.forwarded) widths.push_back(seen.size(3));
  // elapsed k/10; s = 0.5 up to 0.5, 0.667 at 0.6, 0.833 at 0.7, 1 from 0.8; width round(16 s / 4) · 4
  CHECK(widths == std::vector<std::int64_t>{8, 8, 8, 8, 8, 8, 12, 12, 16, 16});
  for (const auto& seen : probe.forwarded) CHECK(seen.size(2) == seen.size(3));
  CHECK(all_finite(probe.losses));
  CHECK(parameters_changed(*net, before));
}

TEST_CASE("Trainer<SelectiveBackprop> trains on the selected half of the scheduled batches, split in microbatches") {
  const ImageData data(80);
  auto net = make_cnn();
  const auto before = copy_parameters(*net);
  auto options = train_options(data, *net, "10ba");
  options.device_train_microbatch_size = 2;
  composer::Trainer<alg::SelectiveBackprop, Probe> trainer(net, options);
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  std::vector<std::int64_t> batch_sizes;
  for (const auto& inputs : probe.loaded_inputs) batch_sizes.push_back(inputs.size(0));
  CHECK(batch_sizes == std::vector<std::int64_t>{8, 8, 8, 8, 8, 8, 4, 8, 4, 8});
  CHECK(probe.forwarded.size() == 8 * 4 + 2 * 2);
  for (const auto& seen : probe.forwarded) CHECK(seen.size(0) == 2);
  CHECK(trainer.state().timestamp.sample().count() == 80);  // samples are counted as loaded
  CHECK(all_finite(probe.losses));
  CHECK(parameters_changed(*net, before));
}

// ---------------------------------------------------------------------------------------------------------------
// All of them together

namespace batch_methods_test {
using Everything = composer::Trainer<alg::SelectiveBackprop, alg::ProgressiveResizing, alg::ColOut, alg::CutOut,
                                     alg::MixUp, alg::CutMix, alg::LabelSmoothing, Probe>;

composer::TrainerOptions everything_options(const ImageData& data, torch::nn::Module& net,
                                            const std::string& save_folder = "", const std::string& load_path = "") {
  composer::TrainerOptions options{.train_dataloader = data.loader(8, /*shuffle=*/true),
          .max_duration = Time("10ba"),
          .optimizers = {std::make_shared<torch::optim::SGD>(net.parameters(),
                                                             torch::optim::SGDOptions(0.05).momentum(0.9))},
          .device_train_microbatch_size = 4,
          .save_folder = save_folder,
          .save_interval = Time("4ba"),
          .load_path = load_path,
          .seed = 29,
          .progress_bar = false};
  return options;
}
}  // namespace batch_methods_test

TEST_CASE("seven algorithms in one Trainer train with finite losses, each leaving its mark") {
  const ImageData data(48, 3, 16);
  auto net = make_cnn();
  const auto before = copy_parameters(*net);
  Everything trainer(net, everything_options(data, *net));
  trainer.fit();
  const Probe& probe = trainer.get<Probe>();
  CHECK(trainer.state().timestamp.batch().count() == 10);
  CHECK(all_finite(probe.losses));
  CHECK(all_finite(probe.backward_losses));
  CHECK(parameters_changed(*net, before));
  REQUIRE(probe.loaded_inputs.size() == 10);
  std::vector<std::int64_t> sizes, widths;
  for (const auto& inputs : probe.loaded_inputs) {
    sizes.push_back(inputs.size(0));
    widths.push_back(inputs.size(3));
  }
  // SelectiveBackprop (first on AFTER_DATALOADER) halves batches 6 and 8
  CHECK(sizes == std::vector<std::int64_t>{8, 8, 8, 8, 8, 8, 4, 8, 4, 8});
  // ColOut then ProgressiveResizing (AFTER_DATALOADER runs in reverse): 16 → 13 columns, then scaled by the
  // schedule pinned to multiples of 4: round(13 · 0.5 / 4) · 4 = 8 up to 0.6 (13 · 0.667 / 4 = 2.17),
  // round(13 · 0.833 / 4) · 4 = 12 at 0.7, and round(13 / 4) · 4 = 12 from 0.8 on
  CHECK(widths == std::vector<std::int64_t>{8, 8, 8, 8, 8, 8, 8, 12, 12, 12});
  // LabelSmoothing over MixUp and CutMix: dense targets at the loss, MixUp's mixed targets after it
  for (const auto& t : probe.loss_targets) {
    CHECK(t.dim() == 2);
    CHECK(t.min().item<float>() > 0.0f);  // smoothed
    CHECK(torch::allclose(t.sum(1), torch::ones({t.size(0)})));
  }
  for (const auto& t : probe.after_loss_targets) CHECK(at::isFloatingType(t.scalar_type()));
  // CutOut zeroed a square in every image
  for (const auto& seen : probe.loaded_inputs) CHECK(seen.eq(0).sum().item<std::int64_t>() > 0);
}

TEST_CASE("with the algorithms, a run resumed from a checkpoint finishes exactly as the uninterrupted run") {
  const std::string dir = fresh_dir("resume");
  const ImageData data(48, 3, 16);
  auto net = make_cnn(3, 1);
  Everything reference(net, everything_options(data, *net, dir));
  reference.fit();
  REQUIRE(io::exists(dir + "/ep0-ba4-rank0.pt"));

  auto resumed_net = make_cnn(3, 2);  // other weights: the checkpoint must replace them
  Everything resumed(resumed_net, everything_options(data, *resumed_net, "", dir + "/ep0-ba4-rank0.pt"));
  CHECK(resumed.state().timestamp.batch().count() == 4);
  resumed.fit();
  const auto a = net->parameters();
  const auto b = resumed_net->parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i], b[i]));
  const Probe& first = reference.get<Probe>();
  const Probe& second = resumed.get<Probe>();
  REQUIRE(second.losses.size() <= first.losses.size());
  const std::size_t offset = first.losses.size() - second.losses.size();
  for (std::size_t i = 0; i < second.losses.size(); ++i)
    CHECK(torch::equal(first.losses[offset + i], second.losses[i]));
}
