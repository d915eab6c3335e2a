#pragma once
/// \file
/// composer::State — everything an algorithm may read or change during training.

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/Device.h>
#include <torch/optim/optimizer.h>

#include <composer/core/batch.hpp>
#include <composer/core/model.hpp>
#include <composer/core/precision.hpp>
#include <composer/core/time.hpp>
#include <composer/core/timestamp.hpp>

namespace composer {

class State;

/// A learning-rate schedule: the multiplier of each optimizer's initial learning rate at the state's current
/// time, given the scale-schedule ratio. Schedules stack multiplicatively. Composer counterpart:
/// `composer.optim.ComposerScheduler` (a callable `(state, ssr) -> float`).
using Scheduler = std::function<double(const State& state, double scale_schedule_ratio)>;

/// Last computed metric values of one data loader, by metric name (e.g. `"accuracy"`).
using MetricValues = std::map<std::string, double>;

/// The training state that the Engine hands to every algorithm and callback: model, optimizers, schedulers,
/// the current batch, outputs and loss, time, durations, the active data loader, precision, microbatching,
/// metrics and the seed. Composer counterpart: `composer.core.State`.
class State {
 public:
  /// An empty state; set `model` and the other fields before use.
  State() = default;
  /// A state for `model`, trained for `max_duration` (not in `dur` or `sec`) with seed `rank_zero_seed`.
  explicit State(Model model, std::optional<Time> max_duration = std::nullopt, std::uint64_t rank_zero_seed = 0)
      : model(std::move(model)), rank_zero_seed(rank_zero_seed) {
    if (max_duration) set_max_duration(*max_duration);
  }

  /// The model being trained. Composer counterpart: `State.model`.
  Model model;
  /// The optimizers (usually one). Composer counterpart: `State.optimizers`.
  std::vector<std::shared_ptr<torch::optim::Optimizer>> optimizers;
  /// The learning-rate schedules, applied multiplicatively. Composer counterpart: `State.schedulers`.
  std::vector<Scheduler> schedulers;
  /// The current batch: the full batch at `AFTER_DATALOADER`/`BATCH_START`/`AFTER_TRAIN_BATCH`, the current
  /// microbatch from `BEFORE_FORWARD` to `AFTER_BACKWARD`. Composer counterpart: `State.batch`.
  Batch batch;
  /// The last forward pass's output. Composer counterpart: `State.outputs`.
  at::Tensor outputs;
  /// The last loss; no tensor (`!loss.defined()`) before the run's first loss unless restored from a checkpoint.
  /// Composer counterpart: `State.loss`.
  at::Tensor loss;
  /// Training progress. Composer counterpart: `State.timestamp`.
  Timestamp timestamp;
  /// Training progress before the last advance (for interval checks). Composer counterpart:
  /// `State.previous_timestamp`.
  Timestamp previous_timestamp;
  /// Progress of the current evaluation. Composer counterpart: `State.eval_timestamp`.
  Timestamp eval_timestamp;
  /// Progress of the current prediction. Composer counterpart: `State.predict_timestamp`.
  Timestamp predict_timestamp;
  /// The active data loader (train, eval or predict), type-erased; see `dataloader_as`. Composer counterpart:
  /// `State.dataloader`.
  std::any dataloader;
  /// Label of the active data loader (`"train"`, `"eval"`, ...). Composer counterpart: `State.dataloader_label`.
  std::string dataloader_label;
  /// Batches per epoch of the active data loader, if known. Composer counterpart: `State.dataloader_len`.
  std::optional<std::int64_t> dataloader_len;
  /// Samples per batch of the training data loader, if known.
  std::optional<std::int64_t> train_batch_size;
  /// Numerical precision. Composer counterpart: `State.precision`.
  Precision precision = Precision::fp32;
  /// Samples per microbatch; unset means the whole batch at once. Composer counterpart:
  /// `State.device_train_microbatch_size`.
  std::optional<std::int64_t> device_train_microbatch_size;
  /// Device the model and the microbatches live on. Composer counterpart: `State.device`.
  c10::Device device = c10::Device(c10::kCPU);
  /// Last computed training metrics, by data loader label. Composer counterpart: `State.train_metric_values`.
  std::map<std::string, MetricValues> train_metric_values;
  /// Last computed evaluation metrics, by evaluator label. Composer counterpart: `State.eval_metric_values`.
  std::map<std::string, MetricValues> eval_metric_values;
  /// The seed of rank 0; rank r seeds with `rank_zero_seed + r`. Composer counterpart: `State.rank_zero_seed`.
  std::uint64_t rank_zero_seed = 0;
  /// This process's rank among data-parallel workers.
  int rank = 0;
  /// Number of data-parallel workers.
  int world_size = 1;
  /// Name of the run (used in checkpoint and log names). Composer counterpart: `State.run_name`.
  std::string run_name = "composer-run";

  /// This rank's seed, `rank_zero_seed + rank`. Composer counterpart: `State.seed`.
  std::uint64_t seed() const noexcept { return rank_zero_seed + static_cast<std::uint64_t>(rank); }

  /// The maximum training duration, if set. Composer counterpart: `State.max_duration`.
  const std::optional<Time>& max_duration() const noexcept { return max_duration_; }
  /// Sets the maximum training duration; throws `std::invalid_argument` for `dur` (a fraction of itself),
  /// `sec`, or a negative value. Composer counterpart: the `State.max_duration` setter.
  void set_max_duration(const Time& duration) {
    if (duration.unit() == TimeUnit::DURATION)
      throw std::invalid_argument("composer: max_duration cannot be in 'dur' (a fraction of itself): got " +
                                  duration.to_string());
    if (duration.unit() == TimeUnit::SECOND)
      throw std::invalid_argument("composer: max_duration in wall-clock seconds is not supported: got " +
                                  duration.to_string());
    if (duration.value() < 0)
      throw std::invalid_argument("composer: max_duration must not be negative: got " + duration.to_string());
    max_duration_ = duration;
  }
  /// Clears the maximum duration.
  void clear_max_duration() noexcept { max_duration_.reset(); }

  /// Elapsed fraction of `max_duration` as a `dur` time, or none without a max duration. Composer counterpart:
  /// `State.get_elapsed_duration`.
  std::optional<Time> get_elapsed_duration() const {
    if (!max_duration_) return std::nullopt;
    if (max_duration_->value() == 0) return Time::from_duration(1.0);
    return timestamp.get(max_duration_->unit()) / *max_duration_;
  }

  /// Ends training after the current batch: sets `max_duration` to the current count in its unit (in
  /// batches when the unit is epochs). Composer counterpart: `State.stop_training`.
  void stop_training() {
    if (!max_duration_ || max_duration_->unit() == TimeUnit::EPOCH)
      max_duration_ = timestamp.batch();
    else
      max_duration_ = timestamp.get(max_duration_->unit());
  }

  /// The active data loader as a `T*`, or null if it holds another type or none.
  template <class T>
  T* dataloader_as() const noexcept {
    if (auto p = std::any_cast<T*>(&dataloader)) return *p;
    return nullptr;
  }

 private:
  std::optional<Time> max_duration_;
};

}  // namespace composer
