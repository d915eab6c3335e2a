#pragma once
/// \file
/// What `composer::Trainer` works out before it trains, as plain functions over its options and state: the
/// `State` built from `TrainerOptions`, the metrics file, which checkpoint the constructor loads, and the
/// `max_duration` a call of `fit(FitOptions)` trains to, every argument checked before anything changes.
/// Composer counterpart: the set-up parts of `composer.Trainer.__init__` and the argument checks of
/// `Trainer.fit`.

#include <cstdint>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <composer/core/model.hpp>
#include <composer/core/state.hpp>
#include <composer/core/time.hpp>
#include <composer/core/timestamp.hpp>
#include <composer/distributed/process_group.hpp>
#include <composer/loggers/metrics_file.hpp>
#include <composer/trainer/checkpoint_saver.hpp>
#include <composer/trainer/seeding.hpp>
#include <composer/trainer/trainer_options.hpp>

namespace composer {

/// The training state for `model` as `options` describe it (after `options.validate()`): generators seeded, the
/// model on `options.device`, optimizers, schedules, precision, microbatching, run name and the scaled
/// `max_duration`. \throws std::invalid_argument for an empty model or an option that cannot work.
/// In a data-parallel run (`group`), rank r seeds with `rank_zero_seed + r`, rank 0's seed (drawn there when
/// `options.seed` is unset) being broadcast to the others, as Composer does.
inline State prepare_state(Model model, const TrainerOptions& options, const dist::ProcessGroup* group = nullptr) {
  if (!model) throw std::invalid_argument("composer: the Trainer needs a model");
  options.validate();
  std::optional<std::uint64_t> rank_zero_seed = options.seed;
  if (group && !rank_zero_seed) {
    const at::Tensor drawn = at::tensor(std::vector<std::int64_t>{
        static_cast<std::int64_t>(std::random_device{}() & 0x7fffffffu)});
    group->broadcast(drawn, 0, "broadcast of rank 0's seed");
    rank_zero_seed = static_cast<std::uint64_t>(drawn.item<std::int64_t>());
  }
  const int rank = group ? group->rank() : 0;
  const std::optional<std::uint64_t> own_seed =
      rank_zero_seed ? std::optional<std::uint64_t>(*rank_zero_seed + static_cast<std::uint64_t>(rank)) : std::nullopt;
  const std::uint64_t seed = seed_everything(own_seed, options.device, options.deterministic_mode);
  model->to(options.device);
  State state(std::move(model), std::nullopt, seed - static_cast<std::uint64_t>(rank));
  state.rank = rank;
  state.world_size = group ? group->world_size() : 1;
  state.optimizers = options.optimizers;
  state.schedulers = options.schedulers;
  state.precision = options.precision;
  state.device = options.device;
  state.device_train_microbatch_size = options.device_train_microbatch_size;
  state.run_name = options.run_name;
  if (options.max_duration) state.set_max_duration(*options.scaled_max_duration());
  return state;
}

/// The Trainer's metrics file (disabled without `options.metrics_file`). Each row names its run: the user's
/// `run_name` when one is set (so a resumed run can keep its name), otherwise a name generated for this Trainer.
inline loggers::MetricsFile make_metrics_file(const TrainerOptions& options) {
  if (options.metrics_file.empty()) return loggers::MetricsFile();
  loggers::MetricsFileOptions file;
  file.path = options.metrics_file;
  if (options.run_name != TrainerOptions{}.run_name) file.run_name = options.run_name;
  return loggers::MetricsFile(std::move(file));
}

/// A checkpoint the Trainer's constructor loads: its path, and whether only the model's weights are taken.
struct CheckpointToLoad {
  std::string path;           ///< the file
  bool weights_only = false;  ///< only the model's parameters and buffers
};

/// What the constructor loads between `BEFORE_LOAD` and `AFTER_LOAD`: with `autoresume`, the newest checkpoint
/// in `save_folder` when there is one, in full (Composer turns `load_weights_only` off when it autoresumes);
/// else `load_path`, whole or its weights only (a `latest-rank{R}.pt` that leads to no file standing for the newest
/// whole checkpoint beside it); else nothing.
inline std::optional<CheckpointToLoad> checkpoint_to_load(const TrainerOptions& options, std::int64_t rank) {
  if (options.autoresume) {
    std::string latest = CheckpointSaver::latest_checkpoint(options.save_folder, rank);
    if (!latest.empty()) return CheckpointToLoad{std::move(latest), false};
  }
  if (options.load_path.empty()) return std::nullopt;
  // A `latest` link that leads nowhere (a run killed before it first made the link): the newest whole checkpoint
  // beside it.
  if (io::file_name(options.load_path) == latest_link_name(rank) && !io::is_regular_file(options.load_path)) {
    std::string newest = CheckpointSaver::latest_checkpoint(io::parent_path(options.load_path), rank);
    if (!newest.empty()) return CheckpointToLoad{std::move(newest), options.load_weights_only};
  }
  return CheckpointToLoad{options.load_path, options.load_weights_only};
}

/// The `max_duration` a call of `fit(fit_options)` trains to, starting from `start` (the current timestamp, or
/// zero with `reset_time`), with every argument checked first: a training loader (new or the options'), an
/// optimizer, a subset size positive or -1, a positive `duration` in a unit the Trainer counts, and time left to
/// train. \throws std::invalid_argument naming the argument.
inline Time fit_max_duration(const FitOptions& fit_options, bool has_train_dataloader, const State& state,
                             const Timestamp& start) {
  const std::optional<Time>& duration = fit_options.duration;
  if (!fit_options.train_dataloader && !has_train_dataloader)
    throw std::invalid_argument("composer: fit() needs a train_dataloader");
  if (state.optimizers.empty()) throw std::invalid_argument("composer: fit() needs at least one optimizer");
  if (const auto subset = fit_options.train_subset_num_batches; subset && (*subset == 0 || *subset < -1))
    throw std::invalid_argument("composer: fit(train_subset_num_batches) must be positive or -1 (all batches), got " +
                                std::to_string(*subset));
  if (duration && duration->value() <= 0)
    throw std::invalid_argument("composer: fit(duration) needs a positive duration, got " + duration->to_string());
  if (duration && duration->unit() != TimeUnit::DURATION && duration->unit() != TimeUnit::SECOND &&
      !TrainerOptions::trainer_counts(*duration))
    throw std::invalid_argument("composer: fit(duration) got " + duration->to_string() +
                                ", a unit the Trainer does not count (it counts ep, ba, sp and tok)");
  const std::optional<Time> max_duration =
      duration ? std::optional<Time>(*duration + start.get(duration->unit())) : state.max_duration();
  if (!max_duration)
    throw std::invalid_argument("composer: fit() needs a max_duration, in the options or as its argument");
  if (start >= *max_duration)
    throw std::invalid_argument("composer: training already reached max_duration " + max_duration->to_string() +
                                " (at " + start.to_string() + "); call fit(duration) to train longer, or "
                                "fit({.reset_time = true}) to start the clock again");
  return *max_duration;
}

}  // namespace composer
