#pragma once
/// \file
/// composer::algorithms::SWA — stochastic weight averaging (Izmailov et al. 2018, arXiv:1803.05407): averages
/// the weights visited late in training and replaces the model's weights by the average.

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/core/time.hpp>
#include <composer/trainer/state_archive.hpp>

namespace composer::algorithms {

/// Settings of `SWA`, with Composer's defaults.
struct SWAOptions {
  /// When averaging starts, in `dur` (in [0, 1]) or `ep`.
  Time swa_start = Time::from_duration(0.7);
  /// When the model is replaced by the average, in the unit of `swa_start` and later than it. Leave at least
  /// an epoch of training after it so that batch-norm statistics adapt to the averaged weights.
  Time swa_end = Time::from_duration(0.97);
  /// Average every this many batches (`ba`) or epochs (`ep`), > 0.
  Time update_interval = Time::from_epoch(1);
  /// Anneal the learning rate toward `swa_lr` while averaging.
  bool schedule_swa_lr = false;
  /// `"linear"` (or `"lin"`) or `"cos"` (or `"cosine"`), in any case.
  std::string anneal_strategy = "linear";
  /// Number of averaging updates over which the learning rate is annealed, > 0.
  std::int64_t anneal_steps = 10;
  /// The learning rate annealed toward; none keeps the rate in effect when averaging starts.
  std::optional<double> swa_lr;
};

/// SWA: on `BATCH_END` (interval in `ba`) or `EPOCH_END` (in `ep`), once the elapsed time (epochs, or the
/// elapsed fraction for `dur`) reaches `swa_start`: the first such event copies the model's parameters and
/// buffers (on the model's device) and starts; counting matching events from that one, every `update_interval`-th one
/// folds the parameters into an equal-weight running mean (avg ← avg + (w − avg)/(n + 1), n the number
/// averaged so far); buffers are not averaged. At the first matching event with elapsed ≥ `swa_end`
/// (after that event's update) the averaged parameters and the buffers copied at the start are loaded into
/// the model, and SWA stops. Batch-norm statistics are not recomputed for the averaged weights: training on
/// after `swa_end` updates them.
///
/// With `schedule_swa_lr`, each parameter group's rate is lr = swa_lr·α + lr₀·(1 − α) from the start until
/// `swa_end`, lr₀ the group's rate when averaging started, α = t (linear) or (1 − cos πt)/2 (cos) with
/// t = min(1, updates / anneal_steps); the rate is written at each update and before every training batch
/// (so a Trainer schedule does not overwrite it). Checkpoints hold the average, the counters and the rate
/// schedule. Composer counterpart: `composer.algorithms.SWA(swa_start='0.7dur', swa_end='0.97dur',
/// update_interval='1ep', schedule_swa_lr=False, anneal_strategy='linear', anneal_steps=10, swa_lr=None)`.
class SWA {
 public:
  /// SWA's events (averaging on `BATCH_END` or `EPOCH_END` only, by the interval's unit; the learning rate
  /// is held on `BEFORE_TRAIN_BATCH`).
  static constexpr EventSet events{Event::BEFORE_TRAIN_BATCH, Event::BATCH_END, Event::EPOCH_END};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "SWA";

  /// SWA with Composer's defaults.
  SWA() : SWA(SWAOptions{}) {}

  /// SWA with the given options: `SWA({.swa_start = Time("6ep"), .swa_end = Time("8ep")})`.
  /// \throws std::invalid_argument when swa_start and swa_end differ in unit, are not in `dur` or `ep`, are
  ///         outside [0, 1] in `dur`, or swa_start ≥ swa_end; for an update_interval not in `ba`/`ep` or not
  ///         positive; anneal_steps ≤ 0; an unknown anneal_strategy; or a negative swa_lr.
  explicit SWA(SWAOptions options) : options_(std::move(options)) {
    using checks::fail;
    const Time& start = options_.swa_start;
    const Time& end = options_.swa_end;
    if (start.unit() != end.unit())
      fail("SWA swa_start and swa_end must have the same unit, got " + start.to_string() + " and " + end.to_string());
    if (start.unit() != TimeUnit::DURATION && start.unit() != TimeUnit::EPOCH)
      fail("SWA swa_start must be in dur or ep, got " + start.to_string());
    if (!(start < end)) fail("SWA swa_end must be later than swa_start, got " + start.to_string() + " and " + end.to_string());
    if (start.unit() == TimeUnit::DURATION)
      for (const Time& t : {start, end})
        if (!(t.value() >= 0.0 && t.value() <= 1.0)) fail("SWA times in dur must be in [0, 1], got " + t.to_string());
    const Time& interval = options_.update_interval;
    if (interval.unit() != TimeUnit::BATCH && interval.unit() != TimeUnit::EPOCH)
      fail("SWA update_interval must be in ba or ep, got " + interval.to_string());
    if (interval.count() <= 0) fail("SWA update_interval must be positive, got " + interval.to_string());
    if (options_.anneal_steps <= 0) fail("SWA anneal_steps must be greater than 0");
    std::string strategy = options_.anneal_strategy;
    std::transform(strategy.begin(), strategy.end(), strategy.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (strategy == "linear" || strategy == "lin")
      cosine_ = false;
    else if (strategy == "cos" || strategy == "cosine")
      cosine_ = true;
    else
      fail("SWA anneal_strategy must be 'linear' or 'cos', got '" + options_.anneal_strategy + "'");
    if (options_.swa_lr && !(*options_.swa_lr >= 0.0)) fail("SWA swa_lr must be non-negative");
  }

  /// The settings.
  const SWAOptions& options() const noexcept { return options_; }
  /// Whether averaging has started.
  bool swa_started() const noexcept { return started_; }
  /// Whether the model was replaced by the average (SWA is over).
  bool swa_completed() const noexcept { return completed_; }
  /// Number of weight snapshots folded into the average.
  std::int64_t num_averaged() const noexcept { return num_averaged_; }
  /// Matching events counted since averaging started.
  std::int64_t step_counter() const noexcept { return step_counter_; }
  /// The averaged parameters (on the model's device), by name.
  const NamedTensors& averaged_parameters() const noexcept { return averaged_; }
  /// The buffers copied when averaging started (on the model's device), by name.
  const NamedTensors& swa_buffers() const noexcept { return buffers_; }
  /// The annealed learning rate of each parameter group of the first optimizer after `updates` updates.
  std::vector<double> scheduled_learning_rates(std::int64_t updates) const {
    const double t = std::min(1.0, static_cast<double>(updates) / static_cast<double>(options_.anneal_steps));
    const double alpha = cosine_ ? (1.0 - std::cos(std::numbers::pi * t)) / 2.0 : t;
    std::vector<double> rates;
    for (std::size_t i = 0; i < base_lrs_.size(); ++i) rates.push_back(target_lrs_[i] * alpha + base_lrs_[i] * (1.0 - alpha));
    return rates;
  }

  /// Runs SWA's part of `event` (see the class comment).
  /// \throws std::logic_error for swa times in `dur` without a max_duration; std::invalid_argument with
  ///         `schedule_swa_lr` and other than one optimizer.
  void apply(auto event, State& state) {
    constexpr Event e = decltype(event)::value;
    if constexpr (e == Event::BEFORE_TRAIN_BATCH) {
      if (options_.schedule_swa_lr && started_ && !completed_) write_learning_rates(state);
    } else {
      const bool batch_interval = options_.update_interval.unit() == TimeUnit::BATCH;
      if ((e == Event::BATCH_END) != batch_interval || completed_) return;
      if (elapsed(state) < options_.swa_start) return;
      if (!started_) start(state);
      if (step_counter_ % options_.update_interval.count() == 0) {
        update(state.model.module());
        if (options_.schedule_swa_lr) {
          ++lr_updates_;
          write_learning_rates(state);
        }
      }
      ++step_counter_;
      if (elapsed(state) >= options_.swa_end) finish(state.model.module());
    }
  }

  /// Saves the average, the buffers, the counters and the rate schedule.
  void save_state(torch::serialize::OutputArchive& archive) const {
    write_archived_integer(archive, "swa_started", started_ ? 1 : 0);
    write_archived_integer(archive, "swa_completed", completed_ ? 1 : 0);
    write_archived_integer(archive, "step_counter", step_counter_);
    write_archived_integer(archive, "n_averaged", num_averaged_);
    write_archived_integer(archive, "lr_updates", lr_updates_);
    archive.write("base_lrs", at::tensor(base_lrs_, at::TensorOptions().dtype(at::kDouble)));
    archive.write("target_lrs", at::tensor(target_lrs_, at::TensorOptions().dtype(at::kDouble)));
    write_named_tensors(archive, "parameters", averaged_);
    write_named_tensors(archive, "buffers", buffers_);
  }

  /// Restores what `save_state` wrote.
  void load_state(torch::serialize::InputArchive& archive) {
    const bool started = read_archived_integer(archive, "swa_started") != 0;
    const bool completed = read_archived_integer(archive, "swa_completed") != 0;
    const std::int64_t steps = read_archived_integer(archive, "step_counter");
    const std::int64_t averaged = read_archived_integer(archive, "n_averaged");
    const std::int64_t lr_updates = read_archived_integer(archive, "lr_updates");
    at::Tensor base, target;
    archive.read("base_lrs", base);
    archive.read("target_lrs", target);
    auto parameters = read_named_tensors(archive, "parameters");
    auto buffers = read_named_tensors(archive, "buffers");
    started_ = started;
    completed_ = completed;
    step_counter_ = steps;
    num_averaged_ = averaged;
    lr_updates_ = lr_updates;
    base_lrs_ = to_vector(base);
    target_lrs_ = to_vector(target);
    averaged_ = std::move(parameters);
    buffers_ = std::move(buffers);
  }

 private:
  static std::vector<double> to_vector(const at::Tensor& t) {
    const at::Tensor d = t.to(at::kDouble).contiguous();
    return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  }

  Time elapsed(const State& state) const {
    if (options_.swa_start.unit() == TimeUnit::EPOCH) return state.timestamp.epoch();
    const auto duration = state.get_elapsed_duration();
    if (!duration) throw std::logic_error("composer: SWA with times in dur needs the state's max_duration");
    return *duration;
  }

  void start(State& state) {
    at::NoGradGuard no_grad;
    const torch::nn::Module& model = state.model.module();
    averaged_ = NamedTensors();
    buffers_ = NamedTensors();
    // The average lives beside the model, on its device, as Composer's `AveragedModel` copy does.
    for (const auto& item : model.named_parameters(true)) averaged_.insert(item.key(), item.value().detach().clone());
    for (const auto& item : model.named_buffers(true)) buffers_.insert(item.key(), item.value().detach().clone());
    num_averaged_ = 0;
    step_counter_ = 0;
    lr_updates_ = 0;
    base_lrs_.clear();
    target_lrs_.clear();
    if (options_.schedule_swa_lr) {
      if (state.optimizers.size() != 1)
        checks::fail("SWA with schedule_swa_lr supports exactly one optimizer, got " +
                     std::to_string(state.optimizers.size()));
      for (const auto& group : state.optimizers.front()->param_groups()) {
        base_lrs_.push_back(group.options().get_lr());
        target_lrs_.push_back(options_.swa_lr.value_or(group.options().get_lr()));
      }
    }
    started_ = true;
  }

  void update(const torch::nn::Module& model) {
    at::NoGradGuard no_grad;
    const double weight = 1.0 / static_cast<double>(num_averaged_ + 1);
    for (const auto& item : model.named_parameters(true)) {
      auto* average = averaged_.find(item.key());
      if (!average) continue;
      const at::Tensor current = item.value().detach();
      // A resumed average was read on the CPU: it moves to the model's device once.
      if (average->device() != current.device()) *average = average->to(current.device());
      if (num_averaged_ == 0 || !at::isFloatingType(average->scalar_type()))
        average->copy_(current);
      else
        average->lerp_(current, weight);
    }
    ++num_averaged_;
  }

  void write_learning_rates(State& state) const {
    if (state.optimizers.empty()) return;
    const auto rates = scheduled_learning_rates(lr_updates_);
    auto& groups = state.optimizers.front()->param_groups();
    for (std::size_t i = 0; i < groups.size() && i < rates.size(); ++i) groups[i].options().set_lr(rates[i]);
  }

  void finish(torch::nn::Module& model) {
    at::NoGradGuard no_grad;
    for (const auto& item : model.named_parameters(true))
      if (const auto* average = averaged_.find(item.key())) item.value().detach().copy_(*average);
    for (const auto& item : model.named_buffers(true))
      if (const auto* buffer = buffers_.find(item.key())) item.value().detach().copy_(*buffer);
    completed_ = true;
  }

  SWAOptions options_;
  bool cosine_ = false;
  bool started_ = false;
  bool completed_ = false;
  std::int64_t step_counter_ = 0;
  std::int64_t num_averaged_ = 0;
  std::int64_t lr_updates_ = 0;
  std::vector<double> base_lrs_;
  std::vector<double> target_lrs_;
  NamedTensors averaged_;
  NamedTensors buffers_;
};

}  // namespace composer::algorithms
