// Learning-rate schedules: values at chosen times against their closed forms, Composer's time conversion,
// scale-schedule ratio, errors, and the rate the Trainer actually trains each batch with.
#include <torch/torch.h>

#include <composer/data/tensor_loader.hpp>
#include <composer/optim/schedulers.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

using composer::Time;
namespace optim = composer::optim;

namespace scheduler_test {
// A state 10 epochs long with 100 batches per epoch, at batch `batch` (within its epoch as counted).
composer::State state_at(std::int64_t batch, Time max_duration = Time("10ep"), std::int64_t batches_per_epoch = 100) {
  composer::State state(torch::nn::Linear(1, 1), max_duration);
  state.dataloader_len = batches_per_epoch;
  const std::int64_t epoch = batch / batches_per_epoch;
  state.timestamp = composer::Timestamp::from_counters(
      {0, epoch, batch, batch * 8, 0, epoch, 0, batch % batches_per_epoch, (batch % batches_per_epoch) * 8, 0});
  return state;
}
double cosine(double tau, double alpha_f = 0.0) {
  return alpha_f + (1 - alpha_f) * (1 + std::cos(std::numbers::pi * tau)) / 2;
}
}  // namespace scheduler_test

using scheduler_test::cosine;
using scheduler_test::state_at;

TEST_CASE("Composer's time conversion") {
  const auto state = state_at(0);
  CHECK(optim::convert_time(Time("0.5dur"), state) == Time("500ba"));      // dur with max in epochs → batches
  CHECK(optim::convert_time(Time("2ep"), state) == Time("200ba"));         // ep → batches
  CHECK(optim::convert_time(Time("2ep"), state, 1.5) == Time("300ba"));    // then scaled by ssr
  CHECK(optim::convert_time(Time("0.5dur"), state, 2.0) == Time("500ba"));  // dur is not scaled again
  CHECK(optim::convert_time(Time("7sp"), state, 2.0) == Time("14sp"));
  const auto in_batches = state_at(0, Time("800ba"));
  CHECK(optim::convert_time(Time("0.25dur"), in_batches) == Time("200ba"));
  CHECK_THROWS_WITH_AS(optim::convert_time(Time("10sec"), state), doctest::Contains("wall-clock"), std::invalid_argument);
  auto no_len = state_at(0);
  no_len.dataloader_len.reset();
  CHECK_THROWS_WITH_AS(optim::convert_time(Time("1ep"), no_len), doctest::Contains("dataloader_len"),
                       std::invalid_argument);
}

TEST_CASE("step, multi-step, constant and exponential schedules") {
  CHECK(optim::StepScheduler{Time("10ba"), 0.5}(state_at(25)) == doctest::Approx(0.25));
  CHECK(optim::StepScheduler{Time("10ba"), 0.5}(state_at(25), 2.0) == doctest::Approx(0.5));  // step 20ba
  CHECK(optim::StepScheduler{Time("1ep"), 0.5}(state_at(250)) == doctest::Approx(0.25));
  const optim::MultiStepScheduler multi{{Time("30ba"), Time("50ba")}, 0.1};
  CHECK(multi(state_at(29)) == doctest::Approx(1.0));
  CHECK(multi(state_at(30)) == doctest::Approx(0.1));
  CHECK(multi(state_at(55)) == doctest::Approx(0.01));
  const optim::ConstantScheduler constant{0.5, Time("0.5dur")};
  CHECK(constant(state_at(499)) == 0.5);
  CHECK(constant(state_at(500)) == 1.0);
  CHECK(optim::ExponentialScheduler{0.5}(state_at(150)) == doctest::Approx(std::pow(0.5, 1.5)));
}

TEST_CASE("linear, cosine, warm-restart and polynomial schedules") {
  CHECK(optim::LinearScheduler{}(state_at(250)) == doctest::Approx(0.75));
  CHECK(optim::LinearScheduler{}(state_at(1200)) == doctest::Approx(0.0));
  CHECK(optim::LinearScheduler{0.2, 1.0, Time("400ba")}(state_at(100)) == doctest::Approx(0.4));
  CHECK(optim::CosineAnnealingScheduler{}(state_at(250)) == doctest::Approx(cosine(0.25)));
  CHECK(optim::CosineAnnealingScheduler{Time("1dur"), 0.1}(state_at(500)) == doctest::Approx(cosine(0.5, 0.1)));
  CHECK(optim::CosineAnnealingScheduler{}(state_at(1000)) == doctest::Approx(0.0));
  const optim::CosineAnnealingWarmRestartsScheduler restarts{Time("100ba"), 2.0};
  CHECK(restarts(state_at(50)) == doctest::Approx(cosine(0.5)));   // cycle [0, 100)
  CHECK(restarts(state_at(150)) == doctest::Approx(cosine(0.25)));  // cycle [100, 300)
  CHECK(restarts(state_at(300)) == doctest::Approx(1.0));           // cycle [300, 700) starts
  CHECK(optim::PolynomialScheduler{2.0}(state_at(250)) == doctest::Approx(0.5625));
  CHECK(optim::PolynomialScheduler{0.5, Time("1dur"), 0.2}(state_at(640)) == doctest::Approx(0.2 + 0.8 * 0.6));
}

TEST_CASE("warm-up schedules ramp linearly, then follow their curve over [t_warmup, t_max]") {
  const optim::CosineAnnealingWithWarmupScheduler cos_warm{Time("100ba")};
  CHECK(cos_warm(state_at(0)) == doctest::Approx(0.0));
  CHECK(cos_warm(state_at(50)) == doctest::Approx(0.5));
  CHECK(cos_warm(state_at(100)) == doctest::Approx(1.0));
  CHECK(cos_warm(state_at(550)) == doctest::Approx(cosine(0.5)));
  CHECK(optim::CosineAnnealingWithWarmupScheduler{Time("100ba"), Time("1dur"), 0.1}(state_at(550)) ==
        doctest::Approx(0.55));
  CHECK(optim::LinearWithWarmupScheduler{Time("100ba")}(state_at(550)) == doctest::Approx(0.5));
  CHECK(optim::LinearWithWarmupScheduler{Time("100ba"), 0.8}(state_at(25)) == doctest::Approx(0.2));
  CHECK(optim::ConstantWithWarmupScheduler{Time("100ba"), 0.3}(state_at(50)) == doctest::Approx(0.15));
  CHECK(optim::ConstantWithWarmupScheduler{Time("100ba"), 0.3}(state_at(600)) == doctest::Approx(0.3));
  CHECK(optim::PolynomialWithWarmupScheduler{Time("100ba")}(state_at(550)) == doctest::Approx(0.25));
  const optim::MultiStepWithWarmupScheduler ms_warm{Time("100ba"), {Time("200ba"), Time("400ba")}};
  CHECK(ms_warm(state_at(50)) == doctest::Approx(0.5));
  CHECK(ms_warm(state_at(300)) == doctest::Approx(0.1));
  CHECK(ms_warm(state_at(450)) == doctest::Approx(0.01));
  // the warm-up is stretched by the scale-schedule ratio only when asked
  CHECK(optim::CosineAnnealingWithWarmupScheduler{Time("100ba")}(state_at(50), 2.0) == doctest::Approx(0.5));
  CHECK(optim::CosineAnnealingWithWarmupScheduler{Time("100ba"), Time("1dur"), 0.0, true}(state_at(50), 2.0) ==
        doctest::Approx(0.25));
}

TEST_CASE("warm-up schedules refuse mismatched units and a t_max shorter than training") {
  CHECK_THROWS_WITH_AS(optim::CosineAnnealingWithWarmupScheduler{Time("100sp")}(state_at(10)),
                       doctest::Contains("must use the same unit"), std::invalid_argument);
  CHECK_THROWS_WITH_AS((optim::LinearWithWarmupScheduler{Time("10ba"), 1.0, 0.0, Time("500ba")}(state_at(10))),
                       doctest::Contains("must be greater than or equal to max_duration"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(optim::StepScheduler{Time("0ba")}(state_at(10)), doctest::Contains("must not be zero"),
                       std::invalid_argument);
}

namespace scheduler_test {
struct LearningRates {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{composer::Event::BEFORE_TRAIN_BATCH};
  std::vector<double> seen;
  void apply(composer::Event, composer::State& state) {
    seen.push_back(state.optimizers.front()->param_groups().front().options().get_lr());
  }
};
}  // namespace scheduler_test

TEST_CASE("the Trainer trains batch k with the schedule's value at batch k, and SSR stretches the run") {
  torch::manual_seed(0);
  torch::nn::Linear net(4, 3);
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  composer::data::TensorLoader loader(torch::randn({8, 4}), torch::randint(0, 3, {8}),
                                      composer::data::TensorLoaderOptions{2, false, false, 0});
  composer::Trainer<scheduler_test::LearningRates> trainer(
      net, {.train_dataloader = loader, .max_duration = Time("2ba"), .optimizers = {sgd},
            .schedulers = {optim::LinearScheduler{}}, .scale_schedule_ratio = 2.0, .seed = 1, .progress_bar = false});
  CHECK(*trainer.state().max_duration() == Time("4ba"));
  trainer.fit();
  const auto& lrs = trainer.get<scheduler_test::LearningRates>().seen;
  REQUIRE(lrs.size() == 4);
  for (int k = 0; k < 4; ++k) CHECK(lrs[static_cast<std::size_t>(k)] == doctest::Approx(0.1 * (1.0 - k / 4.0)));
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.max_duration = Time("2ba"), .scale_schedule_ratio = 2.0,
                                                 .progress_bar = false}),
                       doctest::Contains("needs at least one scheduler"), std::invalid_argument);
}
