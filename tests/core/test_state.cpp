// State and Model: the fields algorithms read and write, and their checks.
// LibTorch first: Debian's build pulls glog, whose CHECK macro must not replace doctest's.
#include <torch/torch.h>

#include <composer/core/state.hpp>

#include <doctest/doctest.h>

using composer::Time;

TEST_CASE("State keeps a valid max_duration and refuses dur, sec and negative ones") {
  composer::State state(torch::nn::Linear(2, 2), Time("10ep"), 17);
  REQUIRE(state.max_duration().has_value());
  CHECK(*state.max_duration() == Time("10ep"));
  CHECK(state.rank_zero_seed == 17);
  state.rank = 3;
  CHECK(state.seed() == 20);
  CHECK_THROWS_WITH_AS(state.set_max_duration(Time("0.5dur")), doctest::Contains("cannot be in 'dur'"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(state.set_max_duration(Time("1h")), doctest::Contains("wall-clock"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(state.set_max_duration(Time("-1ba")), doctest::Contains("must not be negative"),
                       std::invalid_argument);
  CHECK(*state.max_duration() == Time("10ep"));  // unchanged by the refused values
}

TEST_CASE("elapsed duration is the fraction of max_duration in its unit") {
  composer::State state(torch::nn::Linear(2, 2), Time("8ba"));
  CHECK(*state.get_elapsed_duration() == Time("0dur"));
  state.timestamp = state.timestamp.to_next_batch(4).to_next_batch(4);
  CHECK(*state.get_elapsed_duration() == Time("0.25dur"));
  state.set_max_duration(Time("32sp"));
  CHECK(*state.get_elapsed_duration() == Time("0.25dur"));
  state.clear_max_duration();
  CHECK_FALSE(state.get_elapsed_duration().has_value());
}

TEST_CASE("stop_training ends at the current count, in batches when the unit is epochs") {
  composer::State state(torch::nn::Linear(2, 2), Time("3ep"));
  state.timestamp = state.timestamp.to_next_batch(5).to_next_batch(5).to_next_batch(5);
  state.stop_training();
  CHECK(*state.max_duration() == Time("3ba"));
  state.set_max_duration(Time("100sp"));
  state.stop_training();
  CHECK(*state.max_duration() == Time("15sp"));
}

TEST_CASE("Model runs the module's forward and cross-entropy by default") {
  torch::manual_seed(0);
  torch::nn::Linear linear(5, 3);
  composer::Model model(linear);
  const auto x = torch::randn({4, 5});
  CHECK(torch::equal(model(x), linear->forward(x)));
  const auto y = torch::tensor({0, 2, 1, 2});
  const auto out = model(x);
  CHECK(model.loss(out, y).item<double>() ==
        doctest::Approx(torch::nn::functional::cross_entropy(out, y).item<double>()));
  // probability targets equal to one-hot rows give the same loss as class indices
  const auto one_hot = torch::one_hot(y, 3).to(torch::kFloat);
  CHECK(model.loss(out, one_hot).item<double>() == doctest::Approx(model.loss(out, y).item<double>()));
  CHECK(model.as<torch::nn::LinearImpl>() != nullptr);
  CHECK(model.as<torch::nn::Conv2dImpl>() == nullptr);
  CHECK(model->parameters().size() == 2);
}

TEST_CASE("Model refuses mismatched losses and empty modules with clear errors") {
  composer::Model model(torch::nn::Linear(5, 3));
  const auto out = torch::randn({4, 3});
  CHECK_THROWS_WITH_AS(model.loss(out, torch::tensor({0, 1})), doctest::Contains("4 outputs but 2 targets"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(model.loss(out, torch::rand({4, 5})), doctest::Contains("outputs' shape"),
                       std::invalid_argument);
  composer::Model empty;
  CHECK_FALSE(static_cast<bool>(empty));
  CHECK_THROWS_WITH_AS(empty(out), doctest::Contains("holds no module"), std::logic_error);
}

TEST_CASE("the active data loader is reachable by type") {
  composer::State state;
  std::vector<int> loader{1, 2, 3};
  state.dataloader = &loader;
  CHECK(state.dataloader_as<std::vector<int>>() == &loader);
  CHECK(state.dataloader_as<std::string>() == nullptr);
}
