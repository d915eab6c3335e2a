// Optimizer and training-loop methods: compute_ema, apply_gradient_clipping, freeze_layers, and the EMA, SWA,
// SAM, GradientClipping and LayerFreezing algorithms inside a Trainer.
#include <torch/torch.h>

#include <composer/algorithms/ema.hpp>
#include <composer/algorithms/gradient_clipping.hpp>
#include <composer/algorithms/layer_freezing.hpp>
#include <composer/algorithms/sam.hpp>
#include <composer/algorithms/swa.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/functional/ema.hpp>
#include <composer/functional/gradient_clipping.hpp>
#include <composer/functional/layer_freezing.hpp>
#include <composer/io/files.hpp>
#include <composer/trainer/state_archive.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using composer::Event;
using composer::Time;
namespace alg = composer::algorithms;
namespace cf = composer::functional;
namespace io = composer::io;

namespace optimizer_methods_test {

composer::data::TensorLoader make_loader(std::int64_t samples, std::int64_t batch, bool shuffle = false,
                                         std::uint64_t seed = 0) {
  torch::manual_seed(1234);
  auto x = torch::randn({samples, 4});
  auto y = torch::randint(0, 3, {samples});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, shuffle, false, seed});
}

torch::nn::Sequential make_mlp(std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::ReLU(), torch::nn::Linear(8, 3));
}

std::shared_ptr<torch::optim::SGD> sgd(torch::nn::Module& module, double lr = 0.1, double momentum = 0.0) {
  return std::make_shared<torch::optim::SGD>(module.parameters(), torch::optim::SGDOptions(lr).momentum(momentum));
}

std::vector<torch::Tensor> snapshot(const torch::nn::Module& module) {
  std::vector<torch::Tensor> copies;
  for (const auto& p : module.parameters()) copies.push_back(p.detach().clone());
  return copies;
}

bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

bool all_close(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, double tol = 1e-6) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::allclose(a[i], b[i], tol, tol)) return false;
  return true;
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = io::join(io::temp_directory(), "composer_optimizer_methods_" + name);
  io::remove_all(dir);
  io::create_directories(dir);
  return dir;
}

// Counts the events it sees, as a callback (after the algorithms on every event but INIT).
struct Counter {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events = composer::EventSet::all();
  std::map<Event, int> count;
  void apply(Event e, composer::State&) { ++count[e]; }
};

// Records the model's parameters at BATCH_END, EVAL_START and EVAL_END, as a callback.
struct WeightLog {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BATCH_END, Event::EVAL_START, Event::EVAL_END};
  std::vector<std::vector<torch::Tensor>> batch_end, eval_start, eval_end;
  void apply(Event e, composer::State& state) {
    auto weights = snapshot(state.model.module());
    if (e == Event::BATCH_END)
      batch_end.push_back(std::move(weights));
    else if (e == Event::EVAL_START)
      eval_start.push_back(std::move(weights));
    else
      eval_end.push_back(std::move(weights));
  }
};

// The EMA storage as a list in the model's parameter order.
std::vector<torch::Tensor> ema_weights(const alg::EMA& ema, const torch::nn::Module& model) {
  std::vector<torch::Tensor> out;
  for (const auto& item : model.named_parameters()) out.push_back(ema.ema_parameters().named_parameters()[item.key()].clone());
  return out;
}

}  // namespace optimizer_methods_test

using namespace optimizer_methods_test;

// ---------------------------------------------------------------------------------------------------------------
// compute_ema

TEST_CASE("compute_ema: ema <- s*ema + (1-s)*model on parameters and buffers, for s in {0, .5, .99, 1}") {
  for (double s : {0.0, 0.5, 0.99, 1.0}) {
    CAPTURE(s);
    torch::manual_seed(0);
    torch::nn::Sequential model(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2));
    torch::nn::Sequential ema(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2));
    model->train();
    model->forward(torch::randn({5, 3}));  // moves the running statistics away from their initial values
    std::map<std::string, torch::Tensor> before;
    for (const auto& item : ema->named_parameters()) before[item.key()] = item.value().detach().clone();
    for (const auto& item : ema->named_buffers()) before[item.key()] = item.value().detach().clone();
    cf::compute_ema(*model, *ema, s);
    for (const auto& item : model->named_parameters()) {
      const auto expected = before[item.key()] * s + item.value().detach() * (1.0 - s);
      CHECK(torch::equal(ema->named_parameters()[item.key()], expected));
    }
    for (const auto& item : model->named_buffers()) {
      const auto expected = (before[item.key()] * s + item.value() * (1.0 - s)).to(item.value().scalar_type());
      CHECK(torch::equal(ema->named_buffers()[item.key()], expected));
    }
  }
}

TEST_CASE("compute_ema: hand-computed values, integer buffers truncate, bad smoothing is refused") {
  torch::nn::Linear model(torch::nn::LinearOptions(1, 1).bias(false));
  torch::nn::Linear ema(torch::nn::LinearOptions(1, 1).bias(false));
  {
    torch::NoGradGuard no_grad;
    model->weight.fill_(1.0);
    ema->weight.fill_(3.0);
  }
  cf::compute_ema(*model, *ema, 0.75);
  CHECK(ema->weight.item<float>() == doctest::Approx(2.5));  // 0.75*3 + 0.25*1
  cf::compute_ema(*model, *ema, 0.5);
  CHECK(ema->weight.item<float>() == doctest::Approx(1.75));  // 0.5*2.5 + 0.5*1

  torch::nn::BatchNorm1d bn_model(2), bn_ema(2);
  bn_model->num_batches_tracked.fill_(10);
  bn_ema->num_batches_tracked.fill_(0);
  cf::compute_ema(*bn_model, *bn_ema, 0.5);
  CHECK(bn_ema->num_batches_tracked.item<std::int64_t>() == 5);
  cf::compute_ema(*bn_model, *bn_ema, 0.99);  // 0.99*5 + 0.01*10 = 5.05 -> 5
  CHECK(bn_ema->num_batches_tracked.item<std::int64_t>() == 5);

  CHECK_THROWS_AS(cf::compute_ema(*model, *ema, 1.5), std::invalid_argument);
  CHECK_THROWS_AS(cf::compute_ema(*model, *ema, -0.1), std::invalid_argument);
}

TEST_CASE("EMAParameters: copies trainable parameters and buffers; swap exchanges values, twice restores") {
  torch::manual_seed(3);
  torch::nn::Sequential model(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2), torch::nn::Linear(2, 1));
  model[2]->as<torch::nn::Linear>()->bias.set_requires_grad(false);
  cf::EMAParameters ema(*model);
  CHECK(ema.named_parameters().size() == 5);  // 6 parameters, one frozen
  CHECK_FALSE(ema.named_parameters().contains("2.bias"));
  CHECK(ema.named_buffers().size() == 3);
  const auto weight = model[0]->as<torch::nn::Linear>()->weight;
  CHECK(weight.data_ptr() != ema.named_parameters()["0.weight"].data_ptr());

  {
    torch::NoGradGuard no_grad;
    ema.named_parameters()["0.weight"].fill_(7.0);
  }
  const auto original = weight.detach().clone();
  const auto* storage = weight.data_ptr();
  ema.swap_params(*model);
  CHECK(torch::all(weight == 7.0).item<bool>());
  CHECK(weight.data_ptr() == storage);  // same tensor, new values
  CHECK(torch::equal(ema.named_parameters()["0.weight"], original));
  ema.swap_params(*model);
  CHECK(torch::equal(weight, original));

  cf::compute_ema(*model, ema, 0.5);  // (7 + w) / 2
  CHECK(torch::allclose(ema.named_parameters()["0.weight"], (original + 7.0) / 2));
}

// ---------------------------------------------------------------------------------------------------------------
// apply_gradient_clipping

namespace optimizer_methods_test {
torch::Tensor with_grad(std::vector<float> values, std::vector<float> grad, std::vector<std::int64_t> shape = {}) {
  if (shape.empty()) shape = {static_cast<std::int64_t>(values.size())};
  auto p = torch::tensor(values).reshape(shape).set_requires_grad(true);
  p.mutable_grad() = torch::tensor(grad).reshape(shape);
  return p;
}
}  // namespace optimizer_methods_test

TEST_CASE("clipping by norm scales all gradients together by threshold / (norm + 1e-6)") {
  auto a = with_grad({0, 0}, {3, 4});
  auto b = with_grad({0}, {12});  // global norm 13
  cf::apply_gradient_clipping({a, b}, "norm", 6.5);
  const double c = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad()[0].item<float>() == doctest::Approx(3 * c));
  CHECK(a.grad()[1].item<float>() == doctest::Approx(4 * c));
  CHECK(b.grad()[0].item<float>() == doctest::Approx(12 * c));
  const double norm = std::sqrt(a.grad().pow(2).sum().item<double>() + b.grad().pow(2).sum().item<double>());
  CHECK(norm <= 6.5);
  CHECK(norm == doctest::Approx(6.5).epsilon(1e-5));

  // below the threshold: untouched
  auto d = with_grad({0, 0}, {3, 4});
  cf::apply_gradient_clipping({d}, "norm", 100.0);
  CHECK(torch::equal(d.grad(), torch::tensor({3.0f, 4.0f})));

  // parameters without a gradient are skipped
  auto no_grad = torch::zeros({2}).set_requires_grad(true);
  CHECK_NOTHROW(cf::apply_gradient_clipping({no_grad}, "norm", 1.0));
  CHECK_FALSE(no_grad.grad().defined());
}

TEST_CASE("clipping by value clamps each element") {
  auto a = with_grad({0, 0, 0}, {-3, 0.5, 2});
  cf::apply_gradient_clipping({a}, "value", 1.0);
  CHECK(torch::equal(a.grad(), torch::tensor({-1.0f, 0.5f, 1.0f})));
}

TEST_CASE("adaptive clipping: Composer's worked examples, unit-wise over 2-D, 3-D and 4-D, zeros") {
  // w = [3, 4], g = [7, 24], threshold .5 -> coefficient .5*5/25 = .1
  auto a = with_grad({3, 4}, {7, 24});
  cf::apply_gradient_clipping({a}, "adaptive", 0.5);
  CHECK(torch::allclose(a.grad(), torch::tensor({0.7f, 2.4f})));

  // 2-D: each row (output unit) is clipped on its own
  auto w = with_grad({3, 4, 1, 0}, {7, 24, 0.1f, 0}, {2, 2});
  cf::apply_gradient_clipping({w}, "adaptive", 0.5);
  CHECK(torch::allclose(w.grad(), torch::tensor({0.7f, 2.4f, 0.1f, 0.0f}).reshape({2, 2})));

  // 3-D and 4-D: the norm runs over every dimension but the first
  auto t3 = with_grad({3, 4, 0, 1}, {7, 24, 0, 10}, {2, 1, 2});
  cf::apply_gradient_clipping({t3}, "adaptive", 0.5);
  CHECK(torch::allclose(t3.grad(), torch::tensor({0.7f, 2.4f, 0.0f, 0.5f}).reshape({2, 1, 2})));
  auto t4 = with_grad({3, 4, 0, 1}, {7, 24, 0, 10}, {2, 1, 1, 2});
  cf::apply_gradient_clipping({t4}, "adaptive", 0.5);
  CHECK(torch::allclose(t4.grad(), torch::tensor({0.7f, 2.4f, 0.0f, 0.5f}).reshape({2, 1, 1, 2})));
  CHECK(cf::unitwise_norm(torch::ones({3, 2, 2, 2})).sizes() == torch::IntArrayRef({3, 1, 1, 1}));
  CHECK(cf::unitwise_norm(torch::ones({5})).dim() == 0);

  // zero weights clip any gradient to zero; zero weights and zero gradient stay zero (0/0 counts as 1)
  auto zw = with_grad({0, 0}, {1, 2});
  cf::apply_gradient_clipping({zw}, "adaptive", 0.5);
  CHECK(torch::equal(zw.grad(), torch::zeros({2})));
  auto zz = with_grad({0, 0}, {0, 0});
  cf::apply_gradient_clipping({zz}, "adaptive", 0.5);
  CHECK(torch::equal(zz.grad(), torch::zeros({2})));
  // a zero gradient with non-zero weights stays zero and finite
  auto zg = with_grad({1, 1}, {0, 0});
  cf::apply_gradient_clipping({zg}, "adaptive", 0.5);
  CHECK(torch::equal(zg.grad(), torch::zeros({2})));
}

TEST_CASE("apply_gradient_clipping on a module, and bad arguments") {
  torch::manual_seed(0);
  torch::nn::Linear net(4, 3);
  net->forward(torch::randn({8, 4})).pow(2).sum().mul(100).backward();
  cf::apply_gradient_clipping(*net, "norm", 0.01);
  double total = 0;
  for (const auto& p : net->parameters()) total += p.grad().pow(2).sum().item<double>();
  CHECK(std::sqrt(total) <= 0.01 + 1e-6);
  CHECK_THROWS_AS(cf::apply_gradient_clipping(*net, "l1", 0.01), std::invalid_argument);
  CHECK_THROWS_AS(cf::apply_gradient_clipping(*net, "norm", -1.0), std::invalid_argument);
  CHECK_THROWS_AS(alg::GradientClipping(alg::GradientClippingOptions{}), std::invalid_argument);  // no threshold
}

// ---------------------------------------------------------------------------------------------------------------
// freeze_layers

TEST_CASE("freeze schedule: none before the start, then linear to freeze_level at the end") {
  CHECK(cf::freeze_schedule(0.1, 0.5, 1.0) == 0.0);
  CHECK(cf::freeze_schedule(0.5, 0.5, 1.0) == 0.0);
  CHECK(cf::freeze_schedule(0.75, 0.5, 1.0) == doctest::Approx(0.5));
  CHECK(cf::freeze_schedule(1.0, 0.5, 0.8) == doctest::Approx(0.8));
  CHECK(cf::freeze_schedule(0.8, 0.05, 1.0) == doctest::Approx(0.75 / 0.95));
}

namespace optimizer_methods_test {
// first (Linear), block (Linear, ReLU, Linear), last (Linear)
struct Nested : torch::nn::Module {
  Nested() {
    first = register_module("first", torch::nn::Linear(4, 4));
    block = register_module("block", std::make_shared<torch::nn::Module>());
    inner_a = block->register_module("a", torch::nn::Linear(4, 4));
    block->register_module("relu", torch::nn::ReLU());
    inner_b = block->register_module("b", torch::nn::Linear(4, 4));
    last = register_module("last", torch::nn::Linear(4, 2));
  }
  torch::nn::Linear first{nullptr}, inner_a{nullptr}, inner_b{nullptr}, last{nullptr};
  std::shared_ptr<torch::nn::Module> block;
};
}  // namespace optimizer_methods_test

TEST_CASE("freeze_layers freezes the earliest leaf layers, never the last, and drops them from the optimizer") {
  torch::manual_seed(0);
  // leaf layers in depth-first order: first, block.a, block.b, last (the ReLU has no parameters)
  auto model = std::make_shared<Nested>();
  const auto layers = cf::leaf_layers(*model);
  REQUIRE(layers.size() == 4);
  CHECK(layers[0] == model->first.get());
  CHECK(layers[1] == model->inner_a.get());
  CHECK(layers[2] == model->inner_b.get());
  CHECK(layers[3] == model->last.get());
  auto optimizer = sgd(*model);
  REQUIRE(optimizer->param_groups()[0].params().size() == 8);

  // 10% into training with start .5: nothing
  auto none = cf::freeze_layers(*model, optimizer, 0.1, 0.5, 1.0);
  CHECK(none.layers_frozen == 0);
  CHECK(none.fraction == 0.0);
  CHECK(optimizer->param_groups()[0].params().size() == 8);

  // 80% with start .05: fraction .789..., int(.789 * 3) = 2 layers
  auto [frozen, fraction] = cf::freeze_layers(*model, optimizer, 0.8, 0.05, 1.0);
  CHECK(frozen == 2);
  CHECK(fraction == doctest::Approx(0.75 / 0.95));
  const auto& params = optimizer->param_groups()[0].params();
  CHECK(params.size() == 4);
  for (std::size_t i = 0; i < 2; ++i)
    for (const auto& p : layers[i]->parameters()) {
      CHECK_FALSE(p.requires_grad());
      for (const auto& q : params) CHECK(q.unsafeGetTensorImpl() != p.unsafeGetTensorImpl());
    }
  for (std::size_t i = 2; i < 4; ++i)
    for (const auto& p : layers[i]->parameters()) CHECK(p.requires_grad());

  // the end of training with level 1 freezes all but the last
  CHECK(cf::freeze_layers(*model, optimizer, 1.0, 0.0, 1.0).layers_frozen == 3);
  CHECK(optimizer->param_groups()[0].params().size() == 2);
  CHECK(model->last->weight.requires_grad());

  CHECK_THROWS_AS(cf::freeze_layers(*model, optimizer, 0.5, 1.0, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(alg::LayerFreezing(0.5, 1.5), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------------------
// EMA

TEST_CASE("EMA: smoothing from the half life, and Composer's argument checks") {
  CHECK(alg::EMA().smoothing() == doctest::Approx(std::pow(2.0, -1.0 / 1000.0)));
  CHECK(alg::EMA().update_interval() == Time("1ba"));
  alg::EMA epochs({.half_life = Time("10ep")});
  CHECK(epochs.update_interval() == Time("1ep"));
  CHECK(epochs.smoothing() == doctest::Approx(std::exp(-std::log(2.0) / 10.0)));
  CHECK(alg::EMA({.half_life = Time("10ba"), .update_interval = Time("5ba")}).smoothing() == doctest::Approx(std::sqrt(0.5)));
  CHECK(alg::EMA({.half_life = std::nullopt, .smoothing = 0.9}).smoothing() == 0.9);
  CHECK_THROWS_AS(alg::EMA({.half_life = Time("10ba"), .smoothing = 0.9}), std::invalid_argument);
  CHECK_THROWS_AS(alg::EMA({.half_life = std::nullopt}), std::invalid_argument);
  CHECK_THROWS_AS(alg::EMA({.half_life = Time("10ba"), .update_interval = Time("1ep")}), std::invalid_argument);
  CHECK_THROWS_AS(alg::EMA({.half_life = Time("10sp")}), std::invalid_argument);
  CHECK_THROWS_AS(alg::EMA({.half_life = std::nullopt, .smoothing = 1.5}), std::invalid_argument);
}

TEST_CASE("EMA in a Trainer: the EMA weights follow the closed-form recursion and differ from the raw ones") {
  auto net = make_mlp(5);
  const double s = 0.5;
  composer::Trainer<alg::EMA, WeightLog> trainer(
      net, {.train_dataloader = make_loader(16, 4), .max_duration = Time("4ba"), .optimizers = {sgd(*net, 0.5)},
            .seed = 1, .progress_bar = false},
      alg::EMA({.half_life = std::nullopt, .smoothing = s}), WeightLog{});
  trainer.fit();
  const auto& raw = trainer.get<WeightLog>().batch_end;
  REQUIRE(raw.size() == 4);
  // starts at the first BATCH_END (0.0dur) from a copy of w_1 and updates it at once; then
  // ema_k = s*ema_(k-1) + (1-s)*w_k
  std::vector<torch::Tensor> expected = raw[0];
  for (std::size_t k = 0; k < raw.size(); ++k)
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = expected[i] * s + raw[k][i] * (1.0 - s);
  const auto ema = ema_weights(trainer.get<alg::EMA>(), *net);
  CHECK(all_equal(ema, expected));
  CHECK_FALSE(all_close(ema, raw.back(), 1e-4));
  CHECK(all_equal(snapshot(*net), raw.back()));  // the model keeps its training weights
  CHECK(trainer.get<alg::EMA>().ema_started());
  CHECK_FALSE(trainer.get<alg::EMA>().ema_weights_active());

  // get_ema_model puts them into a module
  auto copy = make_mlp(77);
  trainer.get<alg::EMA>().get_ema_model(*copy);
  CHECK(all_equal(snapshot(*copy), expected));
}

TEST_CASE("EMA: evaluation runs with the EMA weights, training resumes with the raw ones") {
  auto net = make_mlp(6);
  composer::Trainer<alg::EMA, WeightLog> trainer(
      net, {.train_dataloader = make_loader(12, 4), .eval_dataloader = make_loader(3, 3),
            .max_duration = Time("3ba"), .optimizers = {sgd(*net, 0.5)}, .eval_interval = Time("1ba"), .seed = 2,
            .progress_bar = false},
      alg::EMA({.half_life = Time("2ba"), .ema_start = Time("2ba")}), WeightLog{});
  trainer.fit();
  const auto& log = trainer.get<WeightLog>();
  REQUIRE(log.batch_end.size() == 3);
  REQUIRE(log.eval_start.size() == 3);
  REQUIRE(log.eval_end.size() == 3);
  // before ema_start (batch 1) evaluation sees the raw weights
  CHECK(all_equal(log.eval_start[0], log.batch_end[0]));
  // batch 2 starts the average from a copy of w2 and updates it (e2 = s*w2 + (1-s)*w2); batch 3:
  // e3 = s*e2 + (1-s)*w3
  const double s = std::pow(2.0, -0.5);
  std::vector<torch::Tensor> e2, expected;
  for (std::size_t i = 0; i < log.batch_end[1].size(); ++i) {
    e2.push_back(log.batch_end[1][i] * s + log.batch_end[1][i] * (1.0 - s));
    expected.push_back(e2[i] * s + log.batch_end[2][i] * (1.0 - s));
  }
  CHECK(all_equal(log.eval_start[1], e2));
  CHECK(all_close(log.eval_start[1], log.batch_end[1], 1e-6));
  CHECK(all_equal(log.eval_start[2], expected));
  CHECK_FALSE(all_close(log.eval_start[2], log.batch_end[2], 1e-4));
  // after each evaluation the raw weights are back, and the EMA storage again holds the average
  for (std::size_t k = 0; k < 3; ++k) CHECK(all_equal(log.eval_end[k], log.batch_end[k]));
  CHECK(all_equal(snapshot(*net), log.batch_end[2]));
  CHECK(all_equal(ema_weights(trainer.get<alg::EMA>(), *net), expected));
  // a standalone eval swaps in and out again
  trainer.eval();
  CHECK(all_equal(trainer.get<WeightLog>().eval_start.back(), expected));
  CHECK(all_equal(snapshot(*net), log.batch_end[2]));
}

TEST_CASE("EMA: a resumed run equals an uninterrupted one, EMA state included") {
  const std::string dir = fresh_dir("ema_resume");
  auto options = [](torch::nn::Module& net, std::string load_path = "") {
    return composer::TrainerOptions{.train_dataloader = make_loader(12, 4, true, 7),
                                    .max_duration = Time("7ba"),
                                    .optimizers = {sgd(net, 0.2, 0.9)},
                                    .load_path = std::move(load_path),
                                    .seed = 11,
                                    .progress_bar = false};
  };
  const alg::EMA ema({.half_life = Time("3ba")});

  auto reference_net = make_mlp(42);
  composer::Trainer<alg::EMA> reference(reference_net, options(*reference_net), ema);
  reference.fit();

  auto first_net = make_mlp(42);
  composer::Trainer<alg::EMA> first(first_net, options(*first_net), ema);
  first.fit(Time("4ba"));
  first.save_checkpoint(dir + "/mid.pt");

  auto resumed_net = make_mlp(999);
  composer::Trainer<alg::EMA> resumed(resumed_net, options(*resumed_net, dir + "/mid.pt"), ema);
  CHECK(resumed.get<alg::EMA>().ema_started());
  CHECK(all_equal(ema_weights(resumed.get<alg::EMA>(), *resumed_net), ema_weights(first.get<alg::EMA>(), *first_net)));
  resumed.fit();

  CHECK(all_equal(snapshot(*resumed_net), snapshot(*reference_net)));
  const auto reference_ema = ema_weights(reference.get<alg::EMA>(), *reference_net);
  CHECK(all_equal(ema_weights(resumed.get<alg::EMA>(), *resumed_net), reference_ema));
  CHECK_FALSE(all_close(reference_ema, snapshot(*reference_net), 1e-4));
}

// ---------------------------------------------------------------------------------------------------------------
// SAM

TEST_CASE("SAM: wraps the optimizer at AFTER_LOAD; two forward/backward passes per SAM step, every interval") {
  for (std::int64_t interval : {1, 2}) {
    CAPTURE(interval);
    auto net = make_mlp(1);
    composer::Trainer<alg::SAM, Counter> trainer(
        net, {.train_dataloader = make_loader(12, 4), .max_duration = Time("3ba"), .optimizers = {sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::SAM({.interval = interval}), Counter{});
    REQUIRE(trainer.get<alg::SAM>().optimizer());
    CHECK(trainer.state().optimizers.front() == trainer.get<alg::SAM>().optimizer());
    trainer.fit();
    const auto& count = trainer.get<Counter>().count;
    // interval 1: 2 passes x 3 steps; interval 2: steps 1 and 3 plain, step 2 sharpness-aware
    const int expected = interval == 1 ? 6 : 4;
    CHECK(count.at(Event::BEFORE_FORWARD) == expected);
    CHECK(count.at(Event::AFTER_BACKWARD) == expected);
    CHECK(count.at(Event::BEFORE_TRAIN_BATCH) == expected);
    CHECK(count.at(Event::BATCH_END) == 3);
    CHECK(trainer.get<alg::SAM>().global_step() == 3);
  }
}

TEST_CASE("SAM: the update uses the gradient at w + rho*g/|g|, and differs from plain SGD") {
  const double lr = 0.1, rho = 0.5;
  torch::manual_seed(1234);
  const auto x = torch::randn({4, 4});
  const auto y = torch::randint(0, 3, {4});

  torch::manual_seed(3);
  torch::nn::Linear net(4, 3);
  const auto w0 = snapshot(*net);

  // by hand
  torch::manual_seed(3);
  torch::nn::Linear hand(4, 3);
  auto loss_grads = [&](torch::nn::Linear& m) {
    for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
    composer::cross_entropy_loss(m->forward(x), y).backward();
    std::vector<torch::Tensor> g;
    for (auto& p : m->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  const auto g1 = loss_grads(hand);
  double sq = 0;
  for (const auto& g : g1) sq += g.pow(2).sum().item<double>();
  const double scale = rho / (std::sqrt(sq) + 1e-12);
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < g1.size(); ++i) hand->parameters()[i].add_(g1[i] * scale);
  }
  const auto g2 = loss_grads(hand);
  std::vector<torch::Tensor> sam_expected, sgd_expected;
  for (std::size_t i = 0; i < w0.size(); ++i) {
    sam_expected.push_back(w0[i] - lr * g2[i]);
    sgd_expected.push_back(w0[i] - lr * g1[i]);
  }

  composer::Trainer<alg::SAM> trainer(
      net, {.train_dataloader = composer::data::TensorLoader(x, y, 4), .max_duration = Time("1ba"),
            .optimizers = {sgd(*net, lr)}, .seed = 1, .progress_bar = false},
      alg::SAM(rho));
  trainer.fit();
  CHECK(all_close(snapshot(*net), sam_expected, 1e-5));
  CHECK_FALSE(all_close(snapshot(*net), sgd_expected, 1e-4));

  // with rho = 0 SAM reduces to the base optimizer
  torch::manual_seed(3);
  torch::nn::Linear plain(4, 3);
  composer::Trainer<alg::SAM> zero(
      plain, {.train_dataloader = composer::data::TensorLoader(x, y, 4), .max_duration = Time("1ba"),
              .optimizers = {sgd(*plain, lr)}, .seed = 1, .progress_bar = false},
      alg::SAM(0.0));
  zero.fit();
  CHECK(all_close(snapshot(*plain), sgd_expected, 1e-6));
}

TEST_CASE("SAM: learning-rate schedules reach the base optimizer; the base steps with the scheduled rate") {
  auto net = make_mlp(4);
  auto base = sgd(*net, 0.1);
  composer::Trainer<alg::SAM> trainer(
      net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("2ba"), .optimizers = {base},
            .schedulers = {[](const composer::State&, double) { return 0.5; }}, .seed = 1, .progress_bar = false});
  trainer.fit();
  CHECK(trainer.get<alg::SAM>().optimizer()->base_optimizer() == base);
  CHECK(base->param_groups()[0].options().get_lr() == doctest::Approx(0.05));
  CHECK(trainer.state().optimizers.front()->param_groups()[0].options().get_lr() == doctest::Approx(0.05));
}

TEST_CASE("SAM: refuses a state without exactly one optimizer, and bad arguments") {
  CHECK_THROWS_AS(alg::SAM({.rho = -1.0}), std::invalid_argument);
  CHECK_THROWS_AS(alg::SAM({.interval = 0}), std::invalid_argument);
  CHECK_THROWS_AS(alg::SAMOptimizer(nullptr), std::invalid_argument);
  auto net = make_mlp(1);
  using Trainer = composer::Trainer<alg::SAM>;
  CHECK_THROWS_AS(Trainer(net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("1ba"),
                                .optimizers = {sgd(*net), sgd(*net)}, .seed = 1, .progress_bar = false}),
                  std::invalid_argument);
}

TEST_CASE("SAM: a resumed run equals an uninterrupted one, the step count restored (interval 2)") {
  const std::string dir = fresh_dir("sam_resume");
  auto options = [](torch::nn::Module& net, std::string load_path = "") {
    return composer::TrainerOptions{.train_dataloader = make_loader(12, 4, true, 3),
                                    .max_duration = Time("6ba"),
                                    .optimizers = {sgd(net, 0.1, 0.9)},
                                    .load_path = std::move(load_path),
                                    .seed = 5,
                                    .progress_bar = false};
  };
  const alg::SAM sam({.interval = 2});
  auto reference_net = make_mlp(8);
  composer::Trainer<alg::SAM> reference(reference_net, options(*reference_net), sam);
  reference.fit();

  auto first_net = make_mlp(8);
  composer::Trainer<alg::SAM> first(first_net, options(*first_net), sam);
  first.fit(Time("3ba"));
  first.save_checkpoint(dir + "/mid.pt");

  auto resumed_net = make_mlp(123);
  composer::Trainer<alg::SAM> resumed(resumed_net, options(*resumed_net, dir + "/mid.pt"), sam);
  CHECK(resumed.get<alg::SAM>().global_step() == 3);
  resumed.fit();
  CHECK(resumed.get<alg::SAM>().global_step() == 6);
  CHECK(all_equal(snapshot(*resumed_net), snapshot(*reference_net)));
}

// ---------------------------------------------------------------------------------------------------------------
// GradientClipping

namespace optimizer_methods_test {
// Records the global gradient norm and the largest gradient element at AFTER_TRAIN_BATCH (after the algorithms).
struct GradientLog {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::AFTER_TRAIN_BATCH};
  std::vector<double> norms, max_abs;
  void apply(Event, composer::State& state) {
    double sq = 0, largest = 0;
    for (const auto& p : state.model->parameters()) {
      sq += p.grad().pow(2).sum().item<double>();
      largest = std::max(largest, p.grad().abs().max().item<double>());
    }
    norms.push_back(std::sqrt(sq));
    max_abs.push_back(largest);
  }
};
}  // namespace optimizer_methods_test

TEST_CASE("GradientClipping in a Trainer bounds the gradients the optimizer sees") {
  SUBCASE("norm") {
    auto net = make_mlp(2);
    const auto before = snapshot(*net);
    composer::Trainer<alg::GradientClipping, GradientLog> trainer(
        net, {.train_dataloader = make_loader(4, 4), .max_duration = Time("1ba"), .optimizers = {sgd(*net, 1.0)},
              .seed = 1, .progress_bar = false},
        alg::GradientClipping("norm", 1e-3), GradientLog{});
    trainer.fit();
    REQUIRE(trainer.get<GradientLog>().norms.size() == 1);
    CHECK(trainer.get<GradientLog>().norms[0] <= 1e-3 * (1 + 1e-5));
    CHECK(trainer.get<GradientLog>().norms[0] == doctest::Approx(1e-3).epsilon(1e-3));
    // with lr 1 the step moved the weights by exactly the clipped gradient
    double moved = 0;
    const auto after = snapshot(*net);
    for (std::size_t i = 0; i < after.size(); ++i) moved += (after[i] - before[i]).pow(2).sum().item<double>();
    CHECK(std::sqrt(moved) == doctest::Approx(1e-3).epsilon(1e-3));
  }
  SUBCASE("value") {
    auto net = make_mlp(2);
    composer::Trainer<alg::GradientClipping, GradientLog> trainer(
        net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("2ba"), .optimizers = {sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::GradientClipping("value", 1e-4), GradientLog{});
    trainer.fit();
    for (double m : trainer.get<GradientLog>().max_abs) CHECK(m <= 1e-4 + 1e-12);
  }
  SUBCASE("without clipping the gradients are larger (the bound is not vacuous)") {
    auto net = make_mlp(2);
    composer::Trainer<GradientLog> trainer(net, {.train_dataloader = make_loader(4, 4), .max_duration = Time("1ba"),
                                                 .optimizers = {sgd(*net)}, .seed = 1, .progress_bar = false});
    trainer.fit();
    CHECK(trainer.get<GradientLog>().norms[0] > 1e-2);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// LayerFreezing

namespace optimizer_methods_test {
// Records the parameters at EPOCH_END, after the algorithms.
struct EpochWeights {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::EPOCH_END};
  std::vector<std::vector<torch::Tensor>> weights;
  std::vector<std::size_t> optimizer_sizes;
  void apply(Event, composer::State& state) {
    weights.push_back(snapshot(state.model.module()));
    optimizer_sizes.push_back(state.optimizers.front()->param_groups()[0].params().size());
  }
};
}  // namespace optimizer_methods_test

TEST_CASE("LayerFreezing: frozen layers leave the optimizer and get no further update") {
  torch::manual_seed(9);
  torch::nn::Sequential net(torch::nn::Linear(4, 8), torch::nn::ReLU(), torch::nn::Linear(8, 8), torch::nn::ReLU(),
                            torch::nn::Linear(8, 3));
  composer::Trainer<alg::LayerFreezing, EpochWeights> trainer(
      net, {.train_dataloader = make_loader(4, 4), .max_duration = Time("4ep"), .optimizers = {sgd(*net, 0.5, 0.9)},
            .seed = 1, .progress_bar = false},
      alg::LayerFreezing(0.0, 1.0), EpochWeights{});
  trainer.fit();
  const auto& log = trainer.get<EpochWeights>();
  REQUIRE(log.weights.size() == 4);
  // d = .25: int(.25*2) = 0; d = .5: 1 layer; d = .75: int(1.5) = 1; d = 1: 2 layers
  CHECK(log.optimizer_sizes == std::vector<std::size_t>{6, 4, 4, 2});
  // the first Linear (parameters 0 and 1) is frozen after epoch 2: unchanged through epochs 3 and 4
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(torch::equal(log.weights[1][i], log.weights[3][i]));
    CHECK_FALSE(torch::equal(log.weights[0][i], log.weights[1][i]));  // but it trained before (momentum 0.9)
  }
  // the second Linear kept training until the end
  CHECK_FALSE(torch::equal(log.weights[1][2], log.weights[3][2]));
  CHECK_FALSE(net[0]->as<torch::nn::Linear>()->weight.requires_grad());
  CHECK_FALSE(net[2]->as<torch::nn::Linear>()->weight.requires_grad());
  CHECK(net[4]->as<torch::nn::Linear>()->weight.requires_grad());
  CHECK(trainer.get<alg::LayerFreezing>().last_result().layers_frozen == 2);
}

TEST_CASE("LayerFreezing: a run that froze layers resumes from a checkpoint bit-identically") {
  const std::string dir = io::join(io::temp_directory(), "composer_layer_freezing_resume");
  io::remove_all(dir);
  io::create_directories(dir);
  auto make_net = [](std::uint64_t seed) {
    torch::manual_seed(seed);
    return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::ReLU(), torch::nn::Linear(8, 8),
                                 torch::nn::ReLU(), torch::nn::Linear(8, 3));
  };
  auto options = [&dir](torch::nn::Module& net, const std::string& load_path) {
    return composer::TrainerOptions{.train_dataloader = make_loader(8, 4, true, 3), .max_duration = Time("4ep"),
                                    .optimizers = {sgd(net, 0.3, 0.9)}, .save_folder = load_path.empty() ? dir : "",
                                    .save_interval = Time("1ep"), .load_path = load_path, .seed = 5,
                                    .progress_bar = false};
  };
  // the reference run saves a checkpoint every epoch; the one after epoch 2 has one layer frozen
  auto reference_net = make_net(2);
  composer::Trainer<alg::LayerFreezing> reference(reference_net, options(*reference_net, ""), alg::LayerFreezing(0.0));
  reference.fit();
  REQUIRE(reference.get<alg::LayerFreezing>().last_result().layers_frozen == 2);

  auto resumed_net = make_net(77);
  composer::Trainer<alg::LayerFreezing> resumed(resumed_net, options(*resumed_net, dir + "/ep2-ba4-rank0.pt"),
                                                alg::LayerFreezing(0.0));
  CHECK(resumed.state().timestamp.epoch().count() == 2);
  CHECK(resumed.get<alg::LayerFreezing>().last_result().layers_frozen == 1);
  CHECK(resumed.state().optimizers.front()->param_groups().front().params().size() == 4);
  CHECK_FALSE(resumed_net[0]->as<torch::nn::Linear>()->weight.requires_grad());
  resumed.fit();
  const auto a = reference_net->parameters();
  const auto b = resumed_net->parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i], b[i]));
}

// ---------------------------------------------------------------------------------------------------------------
// SWA

namespace optimizer_methods_test {
// Records parameters, buffers and the learning rate at BATCH_END, as an algorithm declared before SWA (so it
// runs first: BATCH_END is not one of the reversed AFTER_* events).
struct RawWeights {
  static constexpr composer::EventSet events{Event::BATCH_END};
  std::vector<std::vector<torch::Tensor>> params;
  std::vector<std::vector<torch::Tensor>> buffers;
  void apply(Event, composer::State& state) {
    params.push_back(snapshot(state.model.module()));
    std::vector<torch::Tensor> b;
    for (const auto& t : state.model->buffers()) b.push_back(t.detach().clone());
    buffers.push_back(std::move(b));
  }
};
// Records the first group's learning rate at BATCH_END, as a callback (after SWA).
struct LearningRates {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BATCH_END, Event::BEFORE_FORWARD};
  std::vector<double> at_batch_end, at_forward;
  void apply(Event e, composer::State& state) {
    const double lr = state.optimizers.front()->param_groups()[0].options().get_lr();
    (e == Event::BATCH_END ? at_batch_end : at_forward).push_back(lr);
  }
};

torch::nn::Sequential make_bn_net(std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::BatchNorm1d(8), torch::nn::ReLU(),
                               torch::nn::Linear(8, 3));
}

std::vector<torch::Tensor> mean_of(const std::vector<std::vector<torch::Tensor>>& snapshots, std::vector<std::size_t> which) {
  std::vector<torch::Tensor> mean;
  for (std::size_t i = 0; i < snapshots[which[0]].size(); ++i) {
    auto sum = torch::zeros_like(snapshots[which[0]][i]);
    for (auto k : which) sum += snapshots[k][i];
    mean.push_back(sum / static_cast<double>(which.size()));
  }
  return mean;
}
}  // namespace optimizer_methods_test

TEST_CASE("SWA: the model ends with the mean of the snapshots and the buffers copied at the start") {
  for (std::int64_t interval : {1, 2}) {
    CAPTURE(interval);
    auto net = make_bn_net(3);
    composer::Trainer<RawWeights, alg::SWA> trainer(
        net, {.train_dataloader = make_loader(24, 4), .max_duration = Time("6ba"), .optimizers = {sgd(*net, 0.2)},
              .seed = 1, .progress_bar = false},
        RawWeights{},
        alg::SWA({.swa_start = Time("0.5dur"), .swa_end = Time("1.0dur"), .update_interval = Time(interval, "ba")}));
    trainer.fit();
    const auto& raw = trainer.get<RawWeights>();
    REQUIRE(raw.params.size() == 6);
    const auto& swa = trainer.get<alg::SWA>();
    CHECK(swa.swa_started());
    CHECK(swa.swa_completed());
    // averaging starts at batch 3 (elapsed .5); interval 1 folds in batches 3..6, interval 2 batches 3 and 5
    const std::vector<std::size_t> which = interval == 1 ? std::vector<std::size_t>{2, 3, 4, 5} : std::vector<std::size_t>{2, 4};
    CHECK(swa.num_averaged() == static_cast<std::int64_t>(which.size()));
    const auto expected = mean_of(raw.params, which);
    CHECK(all_close(snapshot(*net), expected, 1e-6));
    CHECK_FALSE(all_close(snapshot(*net), raw.params.back(), 1e-4));
    // buffers: those of batch 3 (not averaged), not the latest ones
    std::vector<torch::Tensor> buffers;
    for (const auto& t : net->buffers()) buffers.push_back(t.detach().clone());
    CHECK(all_equal(buffers, raw.buffers[2]));
    CHECK_FALSE(all_equal(buffers, raw.buffers[5]));
  }
}

TEST_CASE("SWA: nothing happens before swa_start; epoch units") {
  auto net = make_mlp(3);
  composer::Trainer<RawWeights, alg::SWA> trainer(
      net, {.train_dataloader = make_loader(8, 4), .max_duration = Time("4ep"), .optimizers = {sgd(*net, 0.2)},
            .seed = 1, .progress_bar = false},
      RawWeights{}, alg::SWA({.swa_start = Time("2ep"), .swa_end = Time("3ep"), .update_interval = Time("1ep")}));
  trainer.fit(Time("1ep"));
  CHECK_FALSE(trainer.get<alg::SWA>().swa_started());
  trainer.fit(Time("2ep"));  // to the end of epoch 3
  const auto& swa = trainer.get<alg::SWA>();
  CHECK(swa.swa_completed());
  CHECK(swa.num_averaged() == 2);  // EPOCH_END of epochs 2 and 3
  const auto& raw = trainer.get<RawWeights>().params;
  REQUIRE(raw.size() == 6);  // two batches per epoch
  const auto average = mean_of(raw, {3, 5});
  CHECK(all_close(snapshot(*net), average, 1e-6));
  // training goes on from the average
  trainer.fit(Time("1ep"));
  CHECK_FALSE(all_close(snapshot(*net), average, 1e-4));
}

TEST_CASE("SWA: schedule_swa_lr anneals toward swa_lr and holds the rate against the Trainer's schedule") {
  auto net = make_mlp(3);
  composer::Trainer<alg::SWA, LearningRates> trainer(
      net, {.train_dataloader = make_loader(24, 4), .max_duration = Time("6ba"), .optimizers = {sgd(*net, 0.1)},
            .schedulers = {[](const composer::State&, double) { return 1.0; }}, .seed = 1, .progress_bar = false},
      alg::SWA({.swa_start = Time("0.5dur"), .swa_end = Time("1.0dur"), .update_interval = Time("1ba"),
                .schedule_swa_lr = true, .anneal_steps = 2, .swa_lr = 0.0}),
      LearningRates{});
  trainer.fit();
  const auto& lrs = trainer.get<LearningRates>();
  REQUIRE(lrs.at_batch_end.size() == 6);
  CHECK(lrs.at_batch_end[1] == doctest::Approx(0.1));
  CHECK(lrs.at_batch_end[2] == doctest::Approx(0.05));  // first update: t = 1/2
  CHECK(lrs.at_batch_end[3] == doctest::Approx(0.0));   // t = 1
  // the training batches after the start ran with the annealed rate, not the schedule's 0.1
  REQUIRE(lrs.at_forward.size() == 6);
  CHECK(lrs.at_forward[2] == doctest::Approx(0.1));
  CHECK(lrs.at_forward[3] == doctest::Approx(0.05));
  CHECK(lrs.at_forward[4] == doctest::Approx(0.0));

  CHECK_NOTHROW(alg::SWA({.schedule_swa_lr = true, .anneal_strategy = "COSINE", .anneal_steps = 4}));
  CHECK_THROWS_AS(alg::SWA({.anneal_strategy = "exp"}), std::invalid_argument);
  CHECK_THROWS_AS(alg::SWA({.swa_start = Time("0.9dur"), .swa_end = Time("0.5dur")}), std::invalid_argument);
  CHECK_THROWS_AS(alg::SWA({.swa_start = Time("1ep"), .swa_end = Time("0.5dur")}), std::invalid_argument);
  CHECK_THROWS_AS(alg::SWA({.swa_start = Time("10ba"), .swa_end = Time("20ba")}), std::invalid_argument);
  CHECK_THROWS_AS(alg::SWA({.update_interval = Time("0.5dur")}), std::invalid_argument);
  CHECK_THROWS_AS(alg::SWA({.anneal_steps = 0}), std::invalid_argument);
}

TEST_CASE("SWA: a resumed run equals an uninterrupted one, the running average included") {
  const std::string dir = fresh_dir("swa_resume");
  auto options = [](torch::nn::Module& net, std::string load_path = "", std::string save_folder = "") {
    return composer::TrainerOptions{.train_dataloader = make_loader(12, 4, true, 9),
                                    .max_duration = Time("9ba"),
                                    .optimizers = {sgd(net, 0.1, 0.9)},
                                    .save_folder = std::move(save_folder),
                                    .save_interval = Time("5ba"),
                                    .load_path = std::move(load_path),
                                    .seed = 13,
                                    .progress_bar = false};
  };
  const alg::SWA swa({.swa_start = Time("0.3dur"), .swa_end = Time("0.8dur"), .update_interval = Time("1ba")});
  // the uninterrupted run saves a checkpoint after batch 5, while averaging (started at batch 3) is under way
  auto reference_net = make_bn_net(21);
  composer::Trainer<alg::SWA> reference(reference_net, options(*reference_net, "", dir), swa);
  reference.fit();
  CHECK(reference.get<alg::SWA>().swa_completed());
  const std::string mid = dir + "/ep1-ba5-rank0.pt";
  REQUIRE(io::exists(mid));

  auto resumed_net = make_bn_net(77);
  composer::Trainer<alg::SWA> resumed(resumed_net, options(*resumed_net, mid), swa);
  CHECK(resumed.get<alg::SWA>().swa_started());
  CHECK_FALSE(resumed.get<alg::SWA>().swa_completed());
  CHECK(resumed.get<alg::SWA>().num_averaged() == 3);
  CHECK(resumed.get<alg::SWA>().step_counter() == 3);
  resumed.fit();
  CHECK(resumed.get<alg::SWA>().num_averaged() == reference.get<alg::SWA>().num_averaged());
  CHECK(all_equal(snapshot(*resumed_net), snapshot(*reference_net)));
}

// ---------------------------------------------------------------------------------------------------------------
// The checkpoint archive helpers EMA and SWA share, and the argument checks the policies share with the
// functional forms

TEST_CASE("state archive: whole numbers and named tensors come back with their names, order and values") {
  torch::serialize::OutputArchive out;
  composer::write_archived_integer(out, "flag", 1);
  composer::write_archived_integer(out, "count", -(std::int64_t{1} << 40));
  composer::NamedTensors tensors;
  tensors.insert("layer.weight", torch::tensor({{1.5, -2.0}, {0.25, 4.0}}));
  tensors.insert("a.bias", torch::tensor({7, 8, 9}, torch::kLong));
  tensors.insert("z.running_mean", torch::zeros({0}));
  composer::write_named_tensors(out, "parameters", tensors);
  composer::write_named_tensors(out, "empty", composer::NamedTensors());
  out.write("not_names/names", torch::ones({1}));
  std::ostringstream bytes;
  out.save_to(bytes);

  torch::serialize::InputArchive in;
  std::istringstream source(bytes.str());
  in.load_from(source);
  CHECK(composer::read_archived_integer(in, "flag") == 1);
  CHECK(composer::read_archived_integer(in, "count") == -(std::int64_t{1} << 40));
  const composer::NamedTensors back = composer::read_named_tensors(in, "parameters");
  REQUIRE(back.size() == 3);
  CHECK(back.keys() == std::vector<std::string>{"layer.weight", "a.bias", "z.running_mean"});
  for (const auto& item : tensors) {
    CHECK(torch::equal(back[item.key()], item.value()));
    CHECK((back[item.key()].scalar_type() == item.value().scalar_type()));
  }
  CHECK(composer::read_named_tensors(in, "empty").is_empty());
  CHECK_THROWS_AS(composer::read_named_tensors(in, "not_names"), std::runtime_error);
  CHECK_THROWS(composer::read_archived_integer(in, "missing"));
}

TEST_CASE("check_freeze_arguments and check_clipping_arguments: the ranges LayerFreezing and GradientClipping accept") {
  CHECK_NOTHROW(cf::check_freeze_arguments(0.0, 0.0));
  CHECK_NOTHROW(cf::check_freeze_arguments(0.99, 1.0));
  CHECK_THROWS_WITH_AS(cf::check_freeze_arguments(1.0, 0.5),
                       doctest::Contains("freeze_start must be in [0, 1), got 1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(cf::check_freeze_arguments(0.5, 1.5),
                       doctest::Contains("freeze_level must be in [0, 1], got 1.5"), std::invalid_argument);
  CHECK_THROWS_AS(cf::check_freeze_arguments(std::nan(""), 0.5), std::invalid_argument);
  // the policy refuses exactly what the function refuses
  CHECK_THROWS_AS(alg::LayerFreezing({.freeze_start = 1.0}), std::invalid_argument);
  CHECK_THROWS_AS(alg::LayerFreezing({.freeze_level = -0.1}), std::invalid_argument);

  CHECK_NOTHROW(cf::check_clipping_arguments("norm", 0.0));
  CHECK_NOTHROW(cf::check_clipping_arguments("value", 1.0));
  CHECK_NOTHROW(cf::check_clipping_arguments("adaptive", 0.01));
  CHECK_THROWS_WITH_AS(cf::check_clipping_arguments("l2", 1.0), doctest::Contains("clipping_type must be"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(cf::check_clipping_arguments("norm", -1.0),
                       doctest::Contains("clipping_threshold must be a non-negative number, got -1"),
                       std::invalid_argument);
  CHECK_THROWS_AS(alg::GradientClipping({.clipping_type = "l2", .clipping_threshold = 1.0}), std::invalid_argument);
}
