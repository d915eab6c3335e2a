#pragma once
/// \file
/// composer::callbacks::SpeedMonitor — training throughput over a window of batches, and wall-clock time spent
/// training and evaluating.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>

namespace composer::callbacks {

/// Settings of a `SpeedMonitor`, with Composer's defaults.
struct SpeedMonitorOptions {
  /// Number of batches the throughput is averaged over (at least 1).
  std::int64_t window_size = 100;
  /// Unit of the `time/*` values: `"seconds"`, `"minutes"`, `"hours"` or `"days"`.
  std::string time_unit = "hours";
  /// The wall clock timing evaluations, in seconds from any origin, monotonic; null means
  /// `std::chrono::steady_clock`. Meant for tests.
  double (*clock)() = nullptr;
};

/// SpeedMonitor: at every `BATCH_END` records the training clock (`State::timestamp`: samples, tokens and
/// `total_wct`, the wall time spent in training batches, evaluation excluded). Once it holds `window_size + 1`
/// records it logs, over the last `window_size` batches,
/// - `throughput/batches_per_sec` = window_size / (wct now − wct window_size batches ago),
/// - `throughput/samples_per_sec` = samples in those batches / the same time,
/// - `throughput/device/batches_per_sec`, `throughput/device/samples_per_sec`: the same divided by the world size,
/// - `throughput/tokens_per_sec` and `throughput/device/tokens_per_sec` when those batches counted tokens
///   (none of these while the window's time is 0, where Composer would divide by zero);
///
/// and at every `BATCH_END`, in `time_unit`: `time/train` (the timestamp's `total_wct`), `time/val` (wall time of
/// all evaluations so far, each timed from `EVAL_START` to `EVAL_END`) and `time/total` (their sum). The
/// evaluation time is checkpointed (`save_state`), as Composer's `state_dict` keeps it.
/// Composer counterpart: `composer.callbacks.SpeedMonitor(window_size=100, time_unit='hours')`, without its
/// FLOP and MFU figures (models here declare no `flops_per_batch`).
class SpeedMonitor {
 public:
  /// A callback: it runs after the algorithms.
  static constexpr Role role = Role::callback;
  /// Batch ends for the throughput and clocks; evaluations for the evaluation time.
  static constexpr EventSet events{Event::BATCH_END, Event::EVAL_START, Event::EVAL_END};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "SpeedMonitor";

  /// A monitor averaging over `window_size` batches, with times in `time_unit`.
  /// \throws std::invalid_argument for a window below 1 or an unknown time unit.
  explicit SpeedMonitor(std::int64_t window_size = 100, std::string time_unit = "hours")
      : SpeedMonitor(SpeedMonitorOptions{.window_size = window_size, .time_unit = std::move(time_unit)}) {}

  /// A monitor with the given options: `SpeedMonitor({.window_size = 10, .time_unit = "seconds"})`.
  /// \throws std::invalid_argument as the positional form.
  explicit SpeedMonitor(SpeedMonitorOptions options) : options_(std::move(options)) {
    if (options_.window_size < 1)
      checks::fail("SpeedMonitor: window_size must be at least 1 batch, got " + std::to_string(options_.window_size));
    if (options_.time_unit == "seconds")
      divider_ = 1;
    else if (options_.time_unit == "minutes")
      divider_ = 60;
    else if (options_.time_unit == "hours")
      divider_ = 60 * 60;
    else if (options_.time_unit == "days")
      divider_ = 60 * 60 * 24;
    else
      checks::fail("SpeedMonitor: time_unit must be one of \"seconds\", \"minutes\", \"hours\" or \"days\", got \"" +
                   options_.time_unit + "\"");
  }

  /// The settings.
  const SpeedMonitorOptions& options() const noexcept { return options_; }
  /// Seconds per `time_unit` (1, 60, 3600 or 86400).
  double time_divider() const noexcept { return divider_; }
  /// Wall time of all evaluations so far, in seconds.
  double total_eval_seconds() const noexcept { return total_eval_wct_; }

  /// Records the clock and logs (`BATCH_END`), or times an evaluation (`EVAL_START`, `EVAL_END`).
  void apply(auto event, State& state, const Logger& logger) {
    if constexpr (event == Event::EVAL_START) {
      eval_started_ = now();
    } else if constexpr (event == Event::EVAL_END) {
      if (eval_started_) total_eval_wct_ += now() - *eval_started_;
      eval_started_.reset();
    } else if constexpr (event == Event::BATCH_END) {
      batch_end(state, logger);
    }
  }

  /// Writes the evaluation time so far.
  void save_state(torch::serialize::OutputArchive& archive) const {
    archive.write("total_eval_wct",
                  at::tensor(std::vector<double>{total_eval_wct_}, at::TensorOptions().dtype(at::kDouble)));
  }

  /// Restores what `save_state` wrote.
  void load_state(torch::serialize::InputArchive& archive) {
    at::Tensor total;
    archive.read("total_eval_wct", total);
    total_eval_wct_ = total.item<double>();
  }

 private:
  struct Record {
    std::int64_t samples;
    std::int64_t tokens;
    double wct;
  };

  double now() const {
    if (options_.clock != nullptr) return options_.clock();
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  void batch_end(const State& state, const Logger& logger) {
    const double train_wct = state.timestamp.total_wct().count();
    history_.push_back({state.timestamp.sample().count(), state.timestamp.token().count(), train_wct});
    if (static_cast<std::int64_t>(history_.size()) > options_.window_size + 1) history_.pop_front();
    if (static_cast<std::int64_t>(history_.size()) == options_.window_size + 1) {
      const Record& first = history_.front();
      const Record& last = history_.back();
      const double elapsed = last.wct - first.wct;
      if (elapsed > 0) {
        const double world = state.world_size > 0 ? static_cast<double>(state.world_size) : 1.0;
        const double batches_per_sec = static_cast<double>(options_.window_size) / elapsed;
        const double samples_per_sec = static_cast<double>(last.samples - first.samples) / elapsed;
        logger.log_metrics({{"throughput/batches_per_sec", batches_per_sec},
                            {"throughput/samples_per_sec", samples_per_sec},
                            {"throughput/device/batches_per_sec", batches_per_sec / world},
                            {"throughput/device/samples_per_sec", samples_per_sec / world}});
        if (const std::int64_t tokens = last.tokens - first.tokens; tokens > 0) {
          const double tokens_per_sec = static_cast<double>(tokens) / elapsed;
          logger.log_metrics({{"throughput/tokens_per_sec", tokens_per_sec},
                              {"throughput/device/tokens_per_sec", tokens_per_sec / world}});
        }
      }
    }
    logger.log_metrics({{"time/train", train_wct / divider_},
                        {"time/val", total_eval_wct_ / divider_},
                        {"time/total", (train_wct + total_eval_wct_) / divider_}});
  }

  SpeedMonitorOptions options_;
  double divider_ = 1;
  std::deque<Record> history_;
  double total_eval_wct_ = 0;
  std::optional<double> eval_started_;
};

}  // namespace composer::callbacks
