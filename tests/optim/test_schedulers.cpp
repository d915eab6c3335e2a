// Learning-rate schedules of composer::optim: every schedule against its closed form over a run and at chosen
// times, Composer's time conversion (`dur` against epoch and batch max durations, `ep` to batches, the
// scale-schedule ratio), warm-up ramps and their checks, error messages, the expected values of Composer's own
// schedule tests, and the rate the Trainer actually trains each batch with.
#include <torch/torch.h>

#include <composer/core/state.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/optim.hpp>
#include <composer/trainer.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace schedulers_test {

using composer::State;
using composer::Time;
namespace optim = composer::optim;

constexpr double pi = std::numbers::pi;

// A state for a run of `max_duration` with `batches_per_epoch` batches per epoch, at the start of training.
State make_state(const char* max_duration = "10ep", std::optional<std::int64_t> batches_per_epoch = 100) {
  State state(torch::nn::Linear(1, 1), Time(max_duration));
  state.dataloader_len = batches_per_epoch;
  return state;
}

// One training batch of `samples` samples and `tokens` tokens; the epoch ends after its last batch.
void step(State& state, std::int64_t samples = 8, std::int64_t tokens = 64) {
  state.timestamp = state.timestamp.to_next_batch(samples, tokens);
  if (state.dataloader_len && state.timestamp.batch_in_epoch().count() == *state.dataloader_len)
    state.timestamp = state.timestamp.to_next_epoch();
}

// Trains (without a model) until `batch` batches are done.
void advance_to(State& state, std::int64_t batch) {
  while (state.timestamp.batch().count() < batch) step(state);
}

// The state of `make_state(max_duration, batches_per_epoch)` after `batch` batches.
State state_at(std::int64_t batch, const char* max_duration = "10ep", std::optional<std::int64_t> batches_per_epoch = 100) {
  State state = make_state(max_duration, batches_per_epoch);
  advance_to(state, batch);
  return state;
}

// Runs `schedule` batch by batch from the start of `state` to `last_batch` and compares every value with
// `expected(t)`, t the number of batches done. Reports the first mismatch.
template <class Schedule, class Expected>
void check_run(State state, const Schedule& schedule, double ssr, std::int64_t last_batch, Expected expected,
               double tolerance = 1e-12) {
  std::int64_t mismatches = 0;
  std::string first;
  for (std::int64_t t = 0; t <= last_batch; ++t) {
    const double got = schedule(state, ssr);
    const double want = expected(static_cast<double>(t));
    if (!(std::fabs(got - want) <= tolerance)) {
      if (mismatches++ == 0)
        first = "at batch " + std::to_string(t) + ": got " + std::to_string(got) + ", expected " + std::to_string(want);
    }
    step(state);
  }
  INFO(first);
  CHECK(mismatches == 0);
}

// The message of the std::invalid_argument that `f` throws.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<another exception: ") + e.what() + ">";
  }
  return "<nothing thrown>";
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string converted(const char* time, const State& state, double ssr = 1.0) {
  return optim::convert_time(Time(time), state, ssr).to_string();
}

double cosine(double tau, double alpha_f = 0.0) {
  tau = std::min(1.0, std::max(0.0, tau));
  return alpha_f + (1.0 - alpha_f) * (1.0 + std::cos(pi * tau)) / 2.0;
}

// Records the learning rate of the first optimizer's first group at every training batch, as the batch trains.
struct LearningRates {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{composer::Event::BEFORE_TRAIN_BATCH};
  std::vector<double> seen;
  void apply(composer::Event, composer::State& state) {
    seen.push_back(state.optimizers.front()->param_groups().front().options().get_lr());
  }
};

}  // namespace schedulers_test

using namespace schedulers_test;

TEST_CASE("every schedule is a composer::Scheduler, with Composer's defaults") {
  static_assert(std::is_convertible_v<optim::StepScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::MultiStepScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::ConstantScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::LinearScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::ExponentialScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::CosineAnnealingScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::CosineAnnealingWarmRestartsScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::PolynomialScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::MultiStepWithWarmupScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::ConstantWithWarmupScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::LinearWithWarmupScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::CosineAnnealingWithWarmupScheduler, composer::Scheduler>);
  static_assert(std::is_convertible_v<optim::PolynomialWithWarmupScheduler, composer::Scheduler>);
  // Required options have no default.
  static_assert(!std::is_default_constructible_v<optim::StepScheduler>);
  static_assert(!std::is_default_constructible_v<optim::CosineAnnealingWarmRestartsScheduler>);
  static_assert(!std::is_default_constructible_v<optim::LinearWithWarmupScheduler>);

  const optim::StepScheduler step_schedule{Time("1ep")};
  CHECK(step_schedule.gamma == 0.1);
  CHECK(optim::MultiStepScheduler{}.gamma == 0.1);
  CHECK(optim::ConstantScheduler{}.alpha == 1.0);
  CHECK(optim::ConstantScheduler{}.t_max.to_string() == "1.0dur");
  CHECK(optim::LinearScheduler{}.alpha_i == 1.0);
  CHECK(optim::LinearScheduler{}.alpha_f == 0.0);
  CHECK(optim::LinearScheduler{}.t_max.to_string() == "1.0dur");
  CHECK(optim::ExponentialScheduler{0.5}.decay_period.to_string() == "1ep");
  CHECK(optim::CosineAnnealingScheduler{}.t_max.to_string() == "1.0dur");
  CHECK(optim::CosineAnnealingScheduler{}.alpha_f == 0.0);
  const optim::CosineAnnealingWarmRestartsScheduler restarts{Time("1ep")};
  CHECK(restarts.t_mult == 1.0);
  CHECK(restarts.alpha_f == 0.0);
  CHECK(optim::PolynomialScheduler{2.0}.t_max.to_string() == "1.0dur");
  const optim::PolynomialWithWarmupScheduler poly{Time("1ep")};
  CHECK(poly.power == 2.0);
  CHECK(poly.t_max.to_string() == "1.0dur");
  CHECK(poly.alpha_f == 0.0);
  CHECK_FALSE(poly.scale_warmup);
  const optim::LinearWithWarmupScheduler linear{Time("1ep")};
  CHECK(linear.alpha_i == 1.0);
  CHECK(linear.alpha_f == 0.0);
  const optim::MultiStepWithWarmupScheduler multi{Time("1ep"), {Time("2ep")}};
  CHECK(multi.gamma == 0.1);
  CHECK_FALSE(multi.scale_warmup);
  const optim::ConstantWithWarmupScheduler constant{Time("1ep")};
  CHECK(constant.alpha == 1.0);
  CHECK_FALSE(constant.scale_warmup);
  CHECK_FALSE(optim::CosineAnnealingWithWarmupScheduler{Time("1ep")}.scale_warmup);

  // Stored in a composer::Scheduler and called with an explicit ratio, as the Trainer does.
  const composer::Scheduler stored = optim::CosineAnnealingScheduler{.t_max = Time("200ba"), .alpha_f = 0.5};
  const State state = state_at(50);
  CHECK(stored(state, 1.0) == doctest::Approx(cosine(0.25, 0.5)));
  CHECK(stored(state, 0.5) == doctest::Approx(cosine(0.5, 0.5)));
}

TEST_CASE("convert_time: dur against epoch and batch max durations") {
  SUBCASE("max_duration in epochs: dur becomes batches through dataloader_len") {
    const State state = make_state("10ep", 100);
    CHECK(converted("0.5dur", state) == "500ba");
    CHECK(converted("1dur", state) == "1000ba");
    CHECK(converted("0.25dur", state, 2.0) == "250ba");  // dur is never stretched by the ratio
    CHECK(converted("0.25dur", state, 0.1) == "250ba");
    // 0.15 of 3 epochs of 7 batches: int(0.15 · 7 · 3) = 3 batches, where rounding in epochs would give 0.
    CHECK(converted("0.15dur", make_state("3ep", 7)) == "3ba");
    // Python's float product 0.29 · 100 is 28.999999999999996, which truncates to 28.
    CHECK(converted("0.29dur", make_state("1ep", 100)) == "28ba");
  }
  SUBCASE("max_duration in other units: dur stays in that unit") {
    const State batches = make_state("1000ba", std::nullopt);  // no dataloader_len needed
    CHECK(converted("0.5dur", batches) == "500ba");
    CHECK(converted("0.3333dur", batches) == "333ba");
    CHECK(converted("0.29dur", make_state("100ba", std::nullopt)) == "28ba");
    CHECK(converted("0.15dur", make_state("21ba", std::nullopt)) == "3ba");
    CHECK(converted("0.25dur", make_state("8000sp", std::nullopt)) == "2000sp");
    CHECK(converted("0.5dur", make_state("20tok", std::nullopt)) == "10tok");
    CHECK(converted("0.5dur", make_state("4iter", std::nullopt)) == "2iter");
    CHECK(converted("0.5dur", make_state("8000sp", std::nullopt), 4.0) == "4000sp");
  }
  SUBCASE("the same fraction schedules identically for 10ep of 100 batches and for 1000ba") {
    const optim::CosineAnnealingScheduler schedule{Time("0.5dur"), 0.1};
    check_run(make_state("10ep", 100), schedule, 1.0, 700, [](double t) { return cosine(t / 500, 0.1); });
    check_run(make_state("1000ba", 100), schedule, 1.0, 700, [](double t) { return cosine(t / 500, 0.1); });
  }
  SUBCASE("max_duration in samples: dur is compared with the sample count") {
    // 8 samples per batch: 0.5 of 8000 samples is 4000 samples, reached after 500 batches.
    const optim::LinearScheduler schedule{.t_max = Time("0.5dur")};
    check_run(make_state("8000sp", 100), schedule, 1.0, 600, [](double t) { return 1.0 - std::min(1.0, 8 * t / 4000); });
  }
}

TEST_CASE("convert_time: epochs become batches, then the ratio stretches every unit but dur") {
  const State state = make_state("10ep", 100);
  CHECK(converted("2ep", state) == "200ba");
  CHECK(converted("2ep", state, 1.5) == "300ba");
  CHECK(converted("1ep", state, 0.333) == "33ba");  // int(100 · 0.333)
  CHECK(converted("1ep", state, 0.25) == "25ba");   // 0ep if the ratio were applied in epochs
  CHECK(converted("7ba", state, 0.5) == "3ba");
  CHECK(converted("30sp", state, 0.5) == "15sp");
  CHECK(converted("10tok", state, 2.5) == "25tok");
  CHECK(converted("3iter", state, 2.0) == "6iter");
  CHECK(converted("40ba", state) == "40ba");
}

TEST_CASE("convert_time: refusals") {
  const State state = make_state("10ep", 100);
  const std::string sec = error_of([&] { optim::convert_time(Time("30sec"), state, 1.0, "MySchedule"); });
  CHECK(starts_with(sec, "composer: MySchedule: "));
  CHECK(contains(sec, "wall-clock time 30sec"));

  State no_max(torch::nn::Linear(1, 1));
  no_max.dataloader_len = 100;
  for (const char* time : {"10ba", "1ep", "0.5dur"}) {
    const std::string message = error_of([&] { optim::convert_time(Time(time), no_max); });
    CHECK(starts_with(message, "composer: convert_time: "));
    CHECK(contains(message, "max_duration is not set"));
  }

  const State no_length = make_state("10ep", std::nullopt);
  CHECK(contains(error_of([&] { optim::convert_time(Time("1ep"), no_length); }), "dataloader_len is not set"));
  CHECK(contains(error_of([&] { optim::convert_time(Time("0.5dur"), no_length); }), "dataloader_len is not set"));
  CHECK(converted("10ba", no_length) == "10ba");
  CHECK(contains(error_of([&] { optim::convert_time(Time("10ba"), state, std::nan("")); }), "not a representable count"));
}

TEST_CASE("scale_schedule_ratio_max_duration: truncates in the same unit, refuses 0") {
  CHECK(optim::scale_schedule_ratio_max_duration(Time("10ep"), 0.55).to_string() == "5ep");
  CHECK(optim::scale_schedule_ratio_max_duration(Time("3ep"), 1.5).to_string() == "4ep");
  CHECK(optim::scale_schedule_ratio_max_duration(Time("7ep"), 2.0).to_string() == "14ep");
  CHECK(optim::scale_schedule_ratio_max_duration(Time("1000ba"), 0.3333).to_string() == "333ba");
  CHECK(optim::scale_schedule_ratio_max_duration(Time("100sp"), 0.999).to_string() == "99sp");
  CHECK(optim::scale_schedule_ratio_max_duration(Time("1000ep"), 0.01).to_string() == "10ep");

  const std::string zero = error_of([] { optim::scale_schedule_ratio_max_duration(Time("1ep"), 0.5); });
  CHECK(starts_with(zero, "composer: scale_schedule_ratio: "));
  CHECK(contains(zero, "reduces it to 0ep"));
  CHECK(contains(error_of([] { optim::scale_schedule_ratio_max_duration(Time("99ba"), 0.01); }), "reduces it to 0ba"));
  for (double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()})
    CHECK(contains(error_of([&] { optim::scale_schedule_ratio_max_duration(Time("10ep"), bad); }),
                   "must be a positive finite number"));
}

TEST_CASE("StepScheduler: gamma^floor(t / step_size)") {
  const State start = make_state();
  check_run(start, optim::StepScheduler{Time("10ba"), 0.5}, 1.0, 1000,
            [](double t) { return std::pow(0.5, std::floor(t / 10)); });
  check_run(start, optim::StepScheduler{Time("1ep"), 0.5}, 1.0, 1000,
            [](double t) { return std::pow(0.5, std::floor(t / 100)); });
  check_run(start, optim::StepScheduler{Time("1ep")}, 0.25, 300,  // 1ep → 100ba → 25ba
            [](double t) { return std::pow(0.1, std::floor(t / 25)); });
  check_run(start, optim::StepScheduler{Time("10ba"), 0.8}, 0.5, 200,
            [](double t) { return std::pow(0.8, std::floor(t / 5)); });
  check_run(start, optim::StepScheduler{Time("0.05dur"), 0.9}, 0.5, 1000,  // dur: 50ba whatever the ratio
            [](double t) { return std::pow(0.9, std::floor(t / 50)); });

  const std::string zero = error_of([&] { optim::StepScheduler{Time("10ba")}(start, 0.05); });
  CHECK(starts_with(zero, "composer: StepScheduler: "));
  CHECK(contains(zero, "step_size 10ba (0ba after conversion with ssr 0.05) must not be zero"));
}

TEST_CASE("MultiStepScheduler: gamma per milestone reached") {
  const State start = make_state();
  const optim::MultiStepScheduler schedule{{Time("30ba"), Time("1ep"), Time("0.5dur")}, 0.5};
  auto reached = [](double t, std::vector<double> at) {
    int n = 0;
    for (double m : at) n += t >= m ? 1 : 0;
    return n;
  };
  check_run(start, schedule, 1.0, 1000, [&](double t) { return std::pow(0.5, reached(t, {30, 100, 500})); });
  // The ratio moves the batch and epoch milestones but not the fraction of max_duration.
  check_run(start, schedule, 2.0, 1000, [&](double t) { return std::pow(0.5, reached(t, {60, 200, 500})); });
  check_run(start, optim::MultiStepScheduler{}, 1.0, 10, [](double) { return 1.0; });
  const std::string message =
      error_of([&] { optim::MultiStepScheduler{{Time("10ba"), Time("1sec")}}(start, 1.0); });
  CHECK(starts_with(message, "composer: MultiStepScheduler: wall-clock time 1sec"));
}

TEST_CASE("ConstantScheduler: alpha before t_max, then 1") {
  const State start = make_state();
  check_run(start, optim::ConstantScheduler{}, 1.0, 1001, [](double) { return 1.0; });
  check_run(start, optim::ConstantScheduler{0.25, Time("0.3dur")}, 1.0, 1000,
            [](double t) { return t < 300 ? 0.25 : 1.0; });
  check_run(start, optim::ConstantScheduler{0.5}, 1.0, 1001, [](double t) { return t < 1000 ? 0.5 : 1.0; });
  check_run(start, optim::ConstantScheduler{0.5, Time("40ba")}, 1.5, 100, [](double t) { return t < 60 ? 0.5 : 1.0; });
}

TEST_CASE("LinearScheduler: alpha_i + (alpha_f - alpha_i) min(1, t / t_max)") {
  const State start = make_state();
  check_run(start, optim::LinearScheduler{}, 1.0, 1000, [](double t) { return 1.0 - t / 1000; });
  check_run(start, optim::LinearScheduler{0.2, 1.4, Time("2ep")}, 1.0, 400,
            [](double t) { return 0.2 + 1.2 * std::min(1.0, t / 200); });
  check_run(start, optim::LinearScheduler{0.2, 1.4, Time("2ep")}, 0.5, 400,
            [](double t) { return 0.2 + 1.2 * std::min(1.0, t / 100); });
  const std::string zero = error_of([&] { optim::LinearScheduler{.t_max = Time("0ba")}(start, 1.0); });
  CHECK(starts_with(zero, "composer: LinearScheduler: "));
  CHECK(contains(zero, "t_max 0ba must not be zero"));
}

TEST_CASE("ExponentialScheduler: gamma^(t / decay_period)") {
  const State start = make_state();
  check_run(start, optim::ExponentialScheduler{0.5}, 1.0, 1000, [](double t) { return std::pow(0.5, t / 100); });
  check_run(start, optim::ExponentialScheduler{0.9, Time("25ba")}, 2.0, 300, [](double t) { return std::pow(0.9, t / 50); });
  check_run(start, optim::ExponentialScheduler{0.5}, 0.5, 300, [](double t) { return std::pow(0.5, t / 50); });
  const std::string unset = error_of([&] { optim::ExponentialScheduler{}(start, 1.0); });
  CHECK(starts_with(unset, "composer: ExponentialScheduler: "));
  CHECK(contains(unset, "gamma must be set"));
  const std::string no_length = error_of([] { optim::ExponentialScheduler{0.5}(make_state("10ep", std::nullopt), 1.0); });
  CHECK(starts_with(no_length, "composer: ExponentialScheduler: "));
  CHECK(contains(no_length, "cannot convert 1ep to batches: state.dataloader_len is not set"));
}

TEST_CASE("CosineAnnealingScheduler: alpha_f + (1 - alpha_f)(1 + cos(pi tau))/2") {
  const State start = make_state();
  check_run(start, optim::CosineAnnealingScheduler{}, 1.0, 1000,
            [](double t) { return (1 + std::cos(pi * t / 1000)) / 2; });
  check_run(start, optim::CosineAnnealingScheduler{Time("300ba"), 0.2}, 1.0, 600,
            [](double t) { return 0.2 + 0.8 * (1 + std::cos(pi * std::min(1.0, t / 300))) / 2; });
  check_run(start, optim::CosineAnnealingScheduler{Time("300ba"), 0.2}, 0.5, 300,
            [](double t) { return 0.2 + 0.8 * (1 + std::cos(pi * std::min(1.0, t / 150))) / 2; });
  // Without dataloader_len, a batch max duration is enough for the default t_max.
  check_run(make_state("400ba", std::nullopt), optim::CosineAnnealingScheduler{}, 1.0, 400,
            [](double t) { return (1 + std::cos(pi * t / 400)) / 2; });
  const std::string message =
      error_of([] { optim::CosineAnnealingScheduler{}(make_state("10ep", std::nullopt), 1.0); });
  CHECK(starts_with(message, "composer: CosineAnnealingScheduler: "));
  CHECK(contains(message, "cannot convert 1.0dur to batches"));
  const std::string sec = error_of([] { optim::CosineAnnealingScheduler{Time("30sec")}(make_state(), 1.0); });
  CHECK(sec == "composer: CosineAnnealingScheduler: wall-clock time 30sec is not an allowed schedule unit");
}

TEST_CASE("CosineAnnealingWarmRestartsScheduler: cycles of t_0, t_0 t_mult, ...") {
  const State start = make_state();
  // Cycle starts and lengths written out: (start, length).
  auto in_cycles = [](double t, std::vector<std::pair<double, double>> cycles, double alpha_f) {
    for (auto [begin, length] : cycles)
      if (t >= begin && t < begin + length) return cosine((t - begin) / length, alpha_f);
    return -1.0;
  };
  check_run(start, optim::CosineAnnealingWarmRestartsScheduler{Time("30ba"), 2.0, 0.1}, 1.0, 900, [&](double t) {
    return in_cycles(t, {{0, 30}, {30, 60}, {90, 120}, {210, 240}, {450, 480}}, 0.1);
  });
  // int(1.5 · 45) = 67 and int(1.5 · 67) = 100: the lengths are truncated at each step.
  check_run(start, optim::CosineAnnealingWarmRestartsScheduler{Time("20ba"), 1.5}, 1.0, 400, [&](double t) {
    return in_cycles(t, {{0, 20}, {20, 30}, {50, 45}, {95, 67}, {162, 100}, {262, 150}}, 0.0);
  });
  // 1ep under ratio 0.5 is 50 batches (not 0 epochs).
  check_run(start, optim::CosineAnnealingWarmRestartsScheduler{Time("1ep")}, 0.5, 300,
            [](double t) { return cosine(std::fmod(t, 50) / 50); });

  // Shrinking cycles: 8, 4, 2, 1, then 0 — refused once training reaches the end of the 1-batch cycle.
  const optim::CosineAnnealingWarmRestartsScheduler shrinking{Time("8ba"), 0.5};
  CHECK(shrinking(state_at(14), 1.0) == doctest::Approx(1.0));
  const std::string decayed = error_of([&] { shrinking(state_at(15), 1.0); });
  CHECK(starts_with(decayed, "composer: CosineAnnealingWarmRestartsScheduler: "));
  CHECK(contains(decayed, "decayed to 0"));
  CHECK(contains(error_of([&] { optim::CosineAnnealingWarmRestartsScheduler{Time("0ba")}(start, 1.0); }),
                 "decayed to 0"));
  CHECK(contains(error_of([&] { optim::CosineAnnealingWarmRestartsScheduler{Time("5ba"), -1.0}(state_at(5), 1.0); }),
                 "t_mult must be a non-negative number"));
}

TEST_CASE("PolynomialScheduler: alpha_f + (1 - alpha_f)(1 - tau)^power") {
  const State start = make_state();
  check_run(start, optim::PolynomialScheduler{2.0}, 1.0, 1000, [](double t) { return std::pow(1 - t / 1000, 2); });
  check_run(start, optim::PolynomialScheduler{0.5, Time("4ep"), 0.25}, 1.0, 600,
            [](double t) { return 0.25 + 0.75 * std::sqrt(1 - std::min(1.0, t / 400)); });
  check_run(start, optim::PolynomialScheduler{3.0, Time("300ba")}, 2.0, 700,
            [](double t) { return std::pow(1 - std::min(1.0, t / 600), 3); });
  CHECK(contains(error_of([&] { optim::PolynomialScheduler{}(start, 1.0); }), "power must be set"));
  const optim::PolynomialScheduler negative{-1.0, Time("10ba")};
  CHECK(negative(state_at(5), 1.0) == doctest::Approx(2.0));
  const std::string at_end = error_of([&] { negative(state_at(10), 1.0); });
  CHECK(starts_with(at_end, "composer: PolynomialScheduler: power -1.0 is negative"));
}

TEST_CASE("LinearWithWarmupScheduler: ramp to alpha_i, then linear to alpha_f over [t_warmup, t_max]") {
  const State start = make_state();
  check_run(start, optim::LinearWithWarmupScheduler{Time("1ep"), 2.0, 0.5}, 1.0, 1000, [](double t) {
    return t < 100 ? 2.0 * t / 100 : 2.0 - 1.5 * (t - 100) / 900;
  });
  SUBCASE("scale-schedule ratio 0.5 (the Trainer halves max_duration to 5ep)") {
    State half = start;
    half.set_max_duration(optim::scale_schedule_ratio_max_duration(Time("10ep"), 0.5));
    // The warm-up keeps its 100 batches; the rest of the schedule fits in the remaining 400.
    check_run(half, optim::LinearWithWarmupScheduler{Time("1ep")}, 0.5, 500,
              [](double t) { return t < 100 ? t / 100 : 1.0 - (t - 100) / 400; });
    // scale_warmup shortens the ramp to 50 batches but the warm-up still ends at 100: 1 in between.
    check_run(half, optim::LinearWithWarmupScheduler{.t_warmup = Time("1ep"), .scale_warmup = true}, 0.5, 500,
              [](double t) { return t < 100 ? std::min(1.0, t / 50) : 1.0 - (t - 100) / 400; });
  }
  SUBCASE("scale-schedule ratio 2 with scale_warmup: the ramp is cut at the unscaled t_warmup") {
    State twice = start;
    twice.set_max_duration(optim::scale_schedule_ratio_max_duration(Time("10ep"), 2.0));
    check_run(twice, optim::LinearWithWarmupScheduler{.t_warmup = Time("100ba"), .scale_warmup = true}, 2.0, 2000,
              [](double t) { return t < 100 ? t / 200 : 1.0 - (t - 100) / 1900; });
  }
  SUBCASE("t_max equal to t_warmup: alpha_i from then on") {
    check_run(start, optim::LinearWithWarmupScheduler{Time("1000ba"), 1.5, 0.0, Time("1000ba")}, 1.0, 1100,
              [](double t) { return t < 1000 ? 1.5 * t / 1000 : 1.5; });
  }
}

TEST_CASE("ConstantWithWarmupScheduler: ramp to alpha, then alpha, even past t_max") {
  const State start = make_state();
  check_run(start, optim::ConstantWithWarmupScheduler{Time("50ba"), 3.0}, 1.0, 1200,
            [](double t) { return t < 50 ? 3.0 * t / 50 : 3.0; });
  check_run(start, optim::ConstantWithWarmupScheduler{Time("0.1dur")}, 1.0, 300,
            [](double t) { return t < 100 ? t / 100 : 1.0; });
  const std::string mismatch =
      error_of([&] { optim::ConstantWithWarmupScheduler{Time("1ep"), 1.0, Time("8000sp")}(start, 1.0); });
  CHECK(starts_with(mismatch, "composer: ConstantWithWarmupScheduler: "));
  CHECK(contains(mismatch, "must use the same units"));
}

TEST_CASE("CosineAnnealingWithWarmupScheduler: ramp to 1, then cosine to alpha_f over [t_warmup, t_max]") {
  const State start = make_state();
  check_run(start, optim::CosineAnnealingWithWarmupScheduler{Time("0.1dur"), Time("1dur"), 0.1}, 1.0, 1000,
            [](double t) { return t < 100 ? t / 100 : 0.1 + 0.9 * (1 + std::cos(pi * (t - 100) / 900)) / 2; });
  check_run(start, optim::CosineAnnealingWithWarmupScheduler{Time("2ep"), Time("12ep")}, 1.0, 1300, [](double t) {
    return t < 200 ? t / 200 : (1 + std::cos(pi * std::min(1.0, (t - 200) / 1000))) / 2;
  });
}

TEST_CASE("PolynomialWithWarmupScheduler: ramp to 1, then (1 - tau_w)^power") {
  const State start = make_state();
  check_run(start, optim::PolynomialWithWarmupScheduler{Time("100ba")}, 1.0, 1000,
            [](double t) { return t < 100 ? t / 100 : std::pow(1 - (t - 100) / 900, 2); });
  check_run(start, optim::PolynomialWithWarmupScheduler{Time("1ep"), 0.5, Time("1dur"), 0.2}, 1.0, 1000,
            [](double t) { return t < 100 ? t / 100 : 0.2 + 0.8 * std::sqrt(1 - (t - 100) / 900); });
}

TEST_CASE("MultiStepWithWarmupScheduler: ramp to 1, then gamma per milestone") {
  const State start = make_state();
  const optim::MultiStepWithWarmupScheduler schedule{Time("10ba"), {Time("20ba"), Time("40ba")}};
  auto decayed = [](double t, double first, double second) { return std::pow(0.1, (t >= first) + (t >= second)); };
  check_run(start, schedule, 1.0, 100, [&](double t) { return t < 10 ? t / 10 : decayed(t, 20, 40); });
  // Milestones follow the ratio, the warm-up does not (unless scale_warmup, which only shortens the ramp).
  check_run(start, schedule, 0.5, 100, [&](double t) { return t < 10 ? t / 10 : decayed(t, 10, 20); });
  optim::MultiStepWithWarmupScheduler scaled = schedule;
  scaled.scale_warmup = true;
  check_run(start, scaled, 0.5, 100, [&](double t) { return t < 10 ? std::min(1.0, t / 5) : decayed(t, 10, 20); });
  // No unit or t_max checks for this one.
  check_run(start, optim::MultiStepWithWarmupScheduler{Time("1ep"), {Time("4000sp")}}, 1.0, 600,
            [](double t) { return t < 100 ? t / 100 : (8 * t >= 4000 ? 0.1 : 1.0); });
}

TEST_CASE("warm-up checks: units of t_warmup and t_max, t_max against max_duration") {
  const State epochs = make_state("10ep", 100);
  auto linear = [](const char* warmup, const char* t_max) {
    return optim::LinearWithWarmupScheduler{.t_warmup = Time(warmup), .t_max = Time(t_max)};
  };
  SUBCASE("unit mismatch after conversion") {
    const std::string message = error_of([&] { linear("1ep", "5000sp")(epochs, 1.0); });
    CHECK(message ==
          "composer: LinearWithWarmupScheduler: t_warmup 1ep (100ba after conversion with ssr 1.0) and t_max 5000sp "
          "must use the same units");
    const State samples = make_state("8000sp", 100);
    CHECK(contains(error_of([&] { linear("0.1dur", "1000ba")(samples, 1.0); }), "must use the same units"));
    CHECK_NOTHROW(linear("0.1dur", "8000sp")(samples, 1.0));
    CHECK_NOTHROW(linear("0.1dur", "1000ba")(epochs, 1.0));  // dur and ba are both batches here
    CHECK_NOTHROW(linear("1ep", "10ep")(epochs, 1.0));
  }
  SUBCASE("t_max shorter than max_duration") {
    const std::string message = error_of([&] {
      optim::CosineAnnealingWithWarmupScheduler{.t_warmup = Time("1ep"), .t_max = Time("5ep")}(epochs, 1.0);
    });
    CHECK(starts_with(message, "composer: CosineAnnealingWithWarmupScheduler: t_max 5ep (500ba after conversion"));
    CHECK(contains(message, "must be greater than or equal to max_duration 10ep"));
    CHECK(contains(error_of([&] { linear("1ep", "0.5dur")(epochs, 1.0); }), "greater than or equal to max_duration"));
    CHECK(contains(error_of([&] { linear("1ep", "999ba")(epochs, 1.0); }), "greater than or equal to max_duration"));
    CHECK_NOTHROW(linear("1ep", "1000ba")(epochs, 1.0));
    const State batches = make_state("1000ba", 100);
    CHECK(contains(error_of([&] { linear("1ep", "9ep")(batches, 1.0); }), "greater than or equal to max_duration"));
    CHECK_NOTHROW(linear("1ep", "10ep")(batches, 1.0));
    const State samples = make_state("8000sp", 100);
    CHECK(contains(error_of([&] { linear("800sp", "7999sp")(samples, 1.0); }), "greater than or equal to max_duration"));
    CHECK_NOTHROW(linear("800sp", "8000sp")(samples, 1.0));
    // Samples cannot be compared with epochs: no check.
    CHECK(linear("100sp", "200sp")(state_at(20), 1.0) == doctest::Approx(1.0 - (160.0 - 100) / 100));
    // With the ratio, t_max is stretched and compared with the (already scaled) max_duration.
    State half = make_state("5ep", 100);
    CHECK_NOTHROW(linear("1ep", "10ep")(half, 0.5));
    CHECK(contains(error_of([&] { linear("1ep", "9ep")(half, 0.5); }), "t_max 9ep (450ba after conversion with ssr 0.5)"));
  }
  SUBCASE("a warm-up ramp shortened to nothing") {
    const std::string message = error_of([&] {
      optim::PolynomialWithWarmupScheduler{.t_warmup = Time("1ba"), .scale_warmup = true}(epochs, 0.5);
    });
    CHECK(starts_with(message, "composer: PolynomialWithWarmupScheduler: t_warmup 1ba (0ba after conversion"));
    CHECK(contains(message, "must not be zero"));
  }
  SUBCASE("missing dataloader_len or max_duration") {
    const std::string message =
        error_of([] { optim::LinearWithWarmupScheduler{Time("1ep")}(make_state("1000ba", std::nullopt), 1.0); });
    CHECK(starts_with(message, "composer: LinearWithWarmupScheduler: cannot convert 1ep to batches"));
    State no_max(torch::nn::Linear(1, 1));
    no_max.dataloader_len = 10;
    CHECK(starts_with(error_of([&] { optim::MultiStepWithWarmupScheduler{Time("1ba")}(no_max, 1.0); }),
                      "composer: MultiStepWithWarmupScheduler: state.max_duration is not set"));
  }
}

TEST_CASE("warm-up checks over every combination of units (as Composer's fail-fast test)") {
  // 4 epochs of 32 batches of 16 samples of 8 tokens; warm-up for a quarter of it, t_max at 75% or 125%.
  const std::int64_t batches_per_epoch = 32, samples_per_batch = 16, tokens_per_sample = 8, epochs = 4;
  const std::int64_t batches = batches_per_epoch * epochs, samples = batches * samples_per_batch,
                     tokens = samples * tokens_per_sample;
  auto in_unit = [&](const std::string& unit, double fraction) -> std::string {
    if (unit == "ba") return std::to_string(static_cast<std::int64_t>(batches * fraction)) + "ba";
    if (unit == "sp") return std::to_string(static_cast<std::int64_t>(samples * fraction)) + "sp";
    if (unit == "tok") return std::to_string(static_cast<std::int64_t>(tokens * fraction)) + "tok";
    if (unit == "ep") return std::to_string(static_cast<std::int64_t>(epochs * fraction)) + "ep";
    return composer::detail::python_float_repr(fraction) + "dur";
  };
  auto comparable = [](const std::string& a, const std::string& b) {
    return a == b || (a == "ep" && b == "ba") || (a == "ba" && b == "ep");
  };
  using Make = std::function<composer::Scheduler(Time, Time)>;
  const std::vector<std::pair<std::string, Make>> kinds = {
      {"CosineAnnealingWithWarmupScheduler",
       [](Time w, Time m) { return optim::CosineAnnealingWithWarmupScheduler{.t_warmup = w, .t_max = m}; }},
      {"ConstantWithWarmupScheduler",
       [](Time w, Time m) { return optim::ConstantWithWarmupScheduler{.t_warmup = w, .t_max = m}; }},
      {"LinearWithWarmupScheduler",
       [](Time w, Time m) { return optim::LinearWithWarmupScheduler{.t_warmup = w, .t_max = m}; }},
      {"PolynomialWithWarmupScheduler",
       [](Time w, Time m) { return optim::PolynomialWithWarmupScheduler{.t_warmup = w, .t_max = m}; }},
      {"MultiStepWithWarmupScheduler",
       [](Time w, Time) { return optim::MultiStepWithWarmupScheduler{w, {Time("60ba")}}; }},
  };
  int mismatch_errors = 0, short_errors = 0, clean_runs = 0, wrong = 0;
  for (const auto& [name, make] : kinds) {
    for (const std::string max_unit : {"tok", "sp", "ba", "ep"}) {
      for (const std::string warmup_unit : {"ba", "tok", "sp", "ep", "dur"}) {
        for (const std::string t_max_unit : {"ba", "tok", "sp", "ep", "dur"}) {
          for (const double t_max_fraction : {0.75, 1.25}) {
            const composer::Scheduler schedule =
                make(Time(in_unit(warmup_unit, 0.25)), Time(in_unit(t_max_unit, t_max_fraction)));
            State state(torch::nn::Linear(1, 1), Time(in_unit(max_unit, 1.0)));
            state.dataloader_len = batches_per_epoch;
            const std::string warmup_effective = warmup_unit == "dur" ? max_unit : warmup_unit;
            const std::string t_max_effective = t_max_unit == "dur" ? max_unit : t_max_unit;
            std::string expected;  // the part of the error message expected, or "" for none
            if (name != "MultiStepWithWarmupScheduler") {
              if (!comparable(t_max_effective, warmup_effective))
                expected = "must use the same units";
              else if (comparable(t_max_effective, max_unit) && t_max_fraction < 1)
                expected = "must be greater than or equal to max_duration";
            }
            std::string got;
            try {
              for (std::int64_t b = 0; b < batches; ++b) {
                (void)schedule(state, 1.0);
                step(state, samples_per_batch, samples_per_batch * tokens_per_sample);
              }
            } catch (const std::invalid_argument& e) {
              got = e.what();
            }
            const bool ok = expected.empty() ? got.empty()
                                             : starts_with(got, "composer: " + name + ": ") && contains(got, expected);
            if (!ok) {
              ++wrong;
              INFO(name << " max " << max_unit << " warmup " << warmup_unit << " t_max " << t_max_unit << " at "
                        << t_max_fraction << ": expected '" << expected << "', got '" << got << "'");
              CHECK(ok);
            }
            if (expected == "must use the same units") ++mismatch_errors;
            else if (!expected.empty()) ++short_errors;
            else ++clean_runs;
          }
        }
      }
    }
  }
  CHECK(wrong == 0);
  // Every outcome is exercised.
  CHECK(mismatch_errors > 0);
  CHECK(short_errors > 0);
  CHECK(clean_runs > 0);
}

TEST_CASE("the expected values of Composer's schedule tests") {
  // Composer's fixture: max_duration 1000ep scaled by the ratio (int truncation), 1000 batches per epoch; each
  // time is a batch count ("ba") or an epoch count ("ep") with the other counter derived from it.
  struct Row {
    composer::Scheduler schedule;
    double ssr;
    std::vector<const char*> times;
    std::vector<double> expected;
  };
  using optim::ConstantWithWarmupScheduler;
  using optim::CosineAnnealingWithWarmupScheduler;
  using optim::LinearWithWarmupScheduler;
  using optim::MultiStepWithWarmupScheduler;
  using optim::PolynomialWithWarmupScheduler;
  const std::vector<Row> rows = {
      {optim::StepScheduler{Time("10ba")}, 1.0, {"5ba", "15ba", "35ba"}, {1.0, 0.1, 0.001}},
      {optim::StepScheduler{Time("0.002dur"), 0.8}, 1.0, {"1000ba", "3000ba", "7000ba"}, {1.0, 0.8, 0.512}},
      {optim::StepScheduler{Time("1ep"), 0.5}, 1.0, {"500ba", "1500ba", "3500ba"}, {1.0, 0.5, 0.125}},
      {optim::StepScheduler{Time("10ba"), 0.5}, 0.5, {"3ba", "8ba", "18ba"}, {1.0, 0.5, 0.125}},
      {optim::MultiStepScheduler{{Time("10ba"), Time("30ba"), Time("70ba")}},
       1.0,
       {"5ba", "20ba", "50ba", "100ba"},
       {1.0, 0.1, 0.01, 0.001}},
      {optim::MultiStepScheduler{{Time("100ba"), Time("1ep"), Time("0.01dur")}, 0.5},
       1.0,
       {"50ba", "500ba", "5000ba", "50000ba"},
       {1.0, 0.5, 0.25, 0.125}},
      {optim::MultiStepScheduler{{Time("100ba"), Time("1ep"), Time("0.01dur")}, 0.5},
       4.0,
       {"200ba", "2000ba", "20000ba", "200000ba"},
       {1.0, 0.5, 0.25, 0.125}},
      {optim::LinearScheduler{}, 1.0, {"100000ba", "200000ba", "400000ba"}, {0.9, 0.8, 0.6}},
      {optim::LinearScheduler{0.0, 2.0}, 1.0, {"100000ba", "200000ba", "400000ba"}, {0.2, 0.4, 0.8}},
      {optim::LinearScheduler{0.0, 1.0, Time("0.25dur")}, 1.0, {"100000ba", "200000ba", "400000ba"}, {0.4, 0.8, 1.0}},
      {optim::LinearScheduler{0.0, 1.0, Time("0.25dur")}, 2.0, {"100000ba", "200000ba", "400000ba"}, {0.2, 0.4, 0.8}},
      {optim::ExponentialScheduler{0.5}, 1.0, {"1ep", "2ep", "4ep"}, {0.5, 0.25, 0.0625}},
      {optim::ExponentialScheduler{0.5}, 2.0, {"2ep", "4ep", "8ep"}, {0.5, 0.25, 0.0625}},
      {optim::CosineAnnealingScheduler{},
       1.0,
       {"0ba", "333333ba", "500000ba", "666667ba", "1000000ba"},
       {1.0, 0.75, 0.5, 0.25, 0.0}},
      {optim::CosineAnnealingScheduler{Time("30ba"), 0.5},
       1.0,
       {"0ba", "10ba", "15ba", "20ba", "30ba", "50ba"},
       {1.0, 0.875, 0.75, 0.625, 0.5, 0.5}},
      {optim::CosineAnnealingScheduler{Time("30ba"), 0.5},
       0.2,
       {"0ba", "2ba", "3ba", "4ba", "6ba", "10ba"},
       {1.0, 0.875, 0.75, 0.625, 0.5, 0.5}},
      {optim::CosineAnnealingWarmRestartsScheduler{Time("30ba")},
       1.0,
       {"0ba", "10ba", "15ba", "20ba", "30ba", "40ba"},
       {1.0, 0.75, 0.5, 0.25, 1.0, 0.75}},
      {optim::CosineAnnealingWarmRestartsScheduler{Time("0.003dur"), 1.5},
       1.0,
       {"0ba", "1000ba", "3000ba", "4500ba", "7500ba", "14250ba"},
       {1.0, 0.75, 1.0, 0.75, 1.0, 1.0}},
      {optim::CosineAnnealingWarmRestartsScheduler{Time("30ep"), 2.0, 0.5},
       0.5,
       {"0ba", "5000ba", "15000ba", "25000ba"},
       {1.0, 0.875, 1.0, 0.875}},
      {optim::PolynomialScheduler{2.0}, 1.0, {"0ba", "100000ba", "200000ba", "500000ba"}, {1.0, 0.81, 0.64, 0.25}},
      {optim::PolynomialScheduler{2.0, Time("100ba"), 0.5}, 1.0, {"0ba", "10ba", "20ba", "50ba"}, {1.0, 0.905, 0.82, 0.625}},
      {optim::PolynomialScheduler{2.0, Time("100ba"), 0.5}, 0.5, {"0ba", "10ba", "20ba", "50ba"}, {1.0, 0.82, 0.68, 0.5}},
      {MultiStepWithWarmupScheduler{Time("10ba"), {Time("20ba"), Time("40ba")}},
       1.0,
       {"0ba", "5ba", "15ba", "25ba", "45ba"},
       {0.0, 0.5, 1.0, 0.1, 0.01}},
      {MultiStepWithWarmupScheduler{Time("10ba"), {Time("2ep"), Time("4ep")}, 0.5},
       0.5,
       {"0ba", "5ba", "15ba", "1500ba", "2500ba"},
       {0.0, 0.5, 1.0, 0.5, 0.25}},
      {MultiStepWithWarmupScheduler{Time("10ba"), {Time("2ep"), Time("4ep")}, 0.5, true},
       0.5,
       {"0ba", "5ba", "15ba", "1500ba", "2500ba"},
       {0.0, 1.0, 1.0, 0.5, 0.25}},
      {MultiStepWithWarmupScheduler{Time("1000ep"), {}}, 1.0, {"0ep", "100ep", "1000ep"}, {0.0, 0.1, 1.0}},
      {ConstantWithWarmupScheduler{Time("500ep")},
       1.0,
       {"0ba", "250000ba", "500000ba", "750000ba", "1000000ba"},
       {0.0, 0.5, 1.0, 1.0, 1.0}},
      {ConstantWithWarmupScheduler{Time("500ep"), 3.0},
       1.0,
       {"0ba", "250000ba", "500000ba", "500500ba", "501000ba", "502000ba"},
       {0.0, 1.5, 3.0, 3.0, 3.0, 3.0}},
      {ConstantWithWarmupScheduler{Time("0.0005dur")}, 1.0, {"0ba", "250ba", "500ba", "499750ba"}, {0.0, 0.5, 1.0, 1.0}},
      {ConstantWithWarmupScheduler{Time("500ep"), 3.0, Time("501000ep")},
       0.5,
       {"0ba", "250000ba", "500000ba", "500500ba", "501000ba", "502000ba"},
       {0.0, 1.5, 3.0, 3.0, 3.0, 3.0}},
      {ConstantWithWarmupScheduler{Time("1000ep")}, 1.0, {"0ep", "100ep", "1000ep"}, {0.0, 0.1, 1.0}},
      {LinearWithWarmupScheduler{Time("500ep")},
       1.0,
       {"0ba", "250000ba", "500000ba", "750000ba", "1000000ba"},
       {0.0, 0.5, 1.0, 0.5, 0.0}},
      {LinearWithWarmupScheduler{Time("500ep"), 3.0, 2.0, Time("1002ep")},
       0.5,
       {"0ba", "250000ba", "500000ba", "500500ba", "501000ba", "502000ba"},
       {0.0, 1.5, 3.0, 2.5, 2.0, 2.0}},
      {LinearWithWarmupScheduler{Time("0.0005dur")}, 1.0, {"0ba", "250ba", "500ba", "499750ba"}, {0.0, 0.5, 1.0, 0.5}},
      {LinearWithWarmupScheduler{.t_warmup = Time("500ba"), .scale_warmup = false},
       0.5,
       {"0ba", "250ba", "500ba", "249875ba"},
       {0.0, 0.5, 1.0, 0.5}},
      {LinearWithWarmupScheduler{.t_warmup = Time("500ba"), .scale_warmup = true},
       0.5,
       {"0ba", "125ba", "250ba", "249875ba"},
       {0.0, 0.5, 1.0, 0.5}},
      {LinearWithWarmupScheduler{Time("1000ep")}, 1.0, {"0ep", "100ep", "1000ep"}, {0.0, 0.1, 1.0}},
      {CosineAnnealingWithWarmupScheduler{Time("0.9dur")},
       1.0,
       {"0ba", "450000ba", "900000ba", "933333ba", "950000ba", "1000000ba"},
       {0.0, 0.5, 1.0, 0.75, 0.5, 0.0}},
      {CosineAnnealingWithWarmupScheduler{Time("0.9dur"), Time("1dur"), 0.5},
       0.01,
       {"0ba", "4500ba", "9000ba", "9333ba", "9500ba", "10000ba"},
       {0.0, 0.5, 1.0, 0.875, 0.75, 0.5}},
      {CosineAnnealingWithWarmupScheduler{Time("0.9dur"), Time("1dur"), 0.5, true},
       0.01,
       {"0ba", "4500ba", "9000ba", "9333ba", "9500ba", "10000ba"},
       {0.0, 0.5, 1.0, 0.875, 0.75, 0.5}},
      {CosineAnnealingWithWarmupScheduler{Time("1000ep")}, 1.0, {"0ep", "100ep", "1000ep"}, {0.0, 0.1, 1.0}},
      {PolynomialWithWarmupScheduler{Time("0.9dur")},
       1.0,
       {"0ba", "450000ba", "900000ba", "913397ba", "929289ba", "1000000ba"},
       {0.0, 0.5, 1.0, 0.75, 0.5, 0.0}},
      {PolynomialWithWarmupScheduler{Time("0.9dur"), 2.0, Time("1dur"), 0.5},
       0.01,
       {"0ba", "4500ba", "9000ba", "9134ba", "9293ba", "10000ba"},
       {0.0, 0.5, 1.0, 0.875, 0.75, 0.5}},
      {PolynomialWithWarmupScheduler{Time("0.9dur"), 2.0, Time("1dur"), 0.5, true},
       0.01,
       {"0ba", "4500ba", "9000ba", "9134ba", "9293ba", "10000ba"},
       {0.0, 0.5, 1.0, 0.875, 0.75, 0.5}},
      {PolynomialWithWarmupScheduler{Time("1000ep")}, 1.0, {"0ep", "100ep", "1000ep"}, {0.0, 0.1, 1.0}},
  };
  constexpr std::int64_t per_epoch = 1000;
  int row_index = 0;
  for (const Row& row : rows) {
    ++row_index;
    REQUIRE(row.times.size() == row.expected.size());
    State state(torch::nn::Linear(1, 1), optim::scale_schedule_ratio_max_duration(Time("1000ep"), row.ssr));
    state.dataloader_len = per_epoch;
    for (std::size_t i = 0; i < row.times.size(); ++i) {
      const Time at(row.times[i]);
      const bool in_epochs = at.unit() == composer::TimeUnit::EPOCH;
      const std::int64_t batch = in_epochs ? at.count() * per_epoch : at.count();
      const std::int64_t epoch = in_epochs ? at.count() : batch / per_epoch;
      state.timestamp = composer::Timestamp::from_counters({0, epoch, batch, 0, 0, epoch, 0, 0, 0, 0});
      const double got = row.schedule(state, row.ssr);
      INFO("row " << row_index << " at " << row.times[i] << " with ssr " << row.ssr << ": got " << got
                  << ", expected " << row.expected[i]);
      CHECK(std::fabs(got - row.expected[i]) <= 1e-3);  // Composer's tolerance
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Spot values: each schedule at a few chosen times, and the Trainer applying a schedule batch by batch.

TEST_CASE("Composer's time conversion") {
  const auto state = state_at(0);
  CHECK(optim::convert_time(Time("0.5dur"), state) == Time("500ba"));      // dur with max in epochs → batches
  CHECK(optim::convert_time(Time("2ep"), state) == Time("200ba"));         // ep → batches
  CHECK(optim::convert_time(Time("2ep"), state, 1.5) == Time("300ba"));    // then scaled by ssr
  CHECK(optim::convert_time(Time("0.5dur"), state, 2.0) == Time("500ba"));  // dur is not scaled again
  CHECK(optim::convert_time(Time("7sp"), state, 2.0) == Time("14sp"));
  const auto in_batches = state_at(0, "800ba");
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

TEST_CASE("the Trainer trains batch k with the schedule's value at batch k, and SSR stretches the run") {
  torch::manual_seed(0);
  torch::nn::Linear net(4, 3);
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1));
  composer::data::TensorLoader loader(torch::randn({8, 4}), torch::randint(0, 3, {8}),
                                      composer::data::TensorLoaderOptions{2, false, false, 0});
  composer::Trainer<LearningRates> trainer(
      net, {.train_dataloader = loader, .max_duration = Time("2ba"), .optimizers = {sgd},
            .schedulers = {optim::LinearScheduler{}}, .scale_schedule_ratio = 2.0, .seed = 1, .progress_bar = false});
  CHECK(*trainer.state().max_duration() == Time("4ba"));
  trainer.fit();
  const auto& lrs = trainer.get<LearningRates>().seen;
  REQUIRE(lrs.size() == 4);
  for (int k = 0; k < 4; ++k) CHECK(lrs[static_cast<std::size_t>(k)] == doctest::Approx(0.1 * (1.0 - k / 4.0)));
  CHECK_THROWS_WITH_AS(composer::Trainer<>(net, {.max_duration = Time("2ba"), .scale_schedule_ratio = 2.0,
                                                 .progress_bar = false}),
                       doctest::Contains("needs at least one scheduler"), std::invalid_argument);
}
