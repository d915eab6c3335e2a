#pragma once
/// \file
/// composer::TrainerOptions — everything a Trainer is configured with, except its policies.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Context.h>
#include <c10/core/Device.h>
#include <torch/optim/optimizer.h>

#include <composer/core/precision.hpp>
#include <composer/core/state.hpp>
#include <composer/core/time.hpp>
#include <composer/trainer/interval.hpp>
#include <composer/data/any_loader.hpp>
#include <composer/distributed/process_group.hpp>
#include <composer/metrics/classification.hpp>
#include <composer/metrics/metric.hpp>
#include <composer/trainer/evaluator.hpp>

namespace composer {

/// Configuration of a `Trainer`, in the spirit of Composer's `Trainer(...)` keyword arguments; use designated
/// initializers: `{.train_dataloader = loader, .max_duration = Time("5ep"), .optimizers = {sgd}}`.
/// Composer counterpart: the arguments of `composer.Trainer`.
struct TrainerOptions {
  /// The training data. Composer counterpart: `train_dataloader`.
  data::AnyLoader train_dataloader;
  /// Evaluation data, evaluated as the evaluator labelled `"eval"` with the options' metrics, interval and batch
  /// limit; none: only `evaluators` are evaluated. Composer counterpart: `eval_dataloader` (a data loader).
  data::AnyLoader eval_dataloader;
  /// Further evaluation data sets, each with its label, loader and, optionally, its own metrics, interval and
  /// batch limit. Composer counterpart: `eval_dataloader` (a list of `Evaluator`s).
  std::vector<Evaluator> evaluators;
  /// How long to train, in ep, ba, sp or tok (the Trainer counts no iterations, so `iter` is refused; tokens are
  /// counted as `data::tokens_in_batch` says). Composer counterpart: `max_duration`.
  std::optional<Time> max_duration;
  /// The optimizers of the model's parameters. Composer counterpart: `optimizers`.
  std::vector<std::shared_ptr<torch::optim::Optimizer>> optimizers;
  /// Learning-rate schedules (multipliers of the optimizers' initial learning rates). Composer counterpart:
  /// `schedulers`.
  std::vector<Scheduler> schedulers;
  /// Update the learning rate before every batch (true) or at the start of every epoch. Composer
  /// counterpart: `step_schedulers_every_batch`.
  bool step_schedulers_every_batch = true;
  /// Stretches or shrinks the whole schedule and `max_duration`. Composer counterpart: `scale_schedule_ratio`.
  double scale_schedule_ratio = 1.0;
  /// Samples per microbatch (gradient accumulation); unset means the whole batch. Composer counterpart:
  /// `device_train_microbatch_size`.
  std::optional<std::int64_t> device_train_microbatch_size;
  /// How often each evaluator without its own interval evaluates during `fit`, in ep, ba, sp or tok; 0 disables. Composer
  /// counterpart: `eval_interval`.
  Time eval_interval = Time::from_epoch(1);
  /// Evaluate on at most this many batches (positive, or -1: all). Composer counterpart: `eval_subset_num_batches`.
  std::int64_t eval_subset_num_batches = -1;
  /// The metrics every evaluator computes unless it has its own. Composer counterpart: the model's
  /// `get_metrics(is_train=False)`.
  metrics::MetricCollection eval_metrics = metrics::classification_metrics();
  /// Metrics computed on the training batches (the model's outputs against the targets as they are at
  /// `BEFORE_FORWARD`), accumulated over each epoch, computed after every batch into
  /// `State::train_metric_values["train"]` and logged as `metrics/train/<name>`; empty computes none. Each
  /// computation waits for the device once per batch. Composer counterpart: the model's
  /// `get_metrics(is_train=True)` with `compute_training_metrics=True`.
  metrics::MetricCollection train_metrics;
  /// Folder for checkpoints; empty disables saving. The Trainer locks it for its life (the file
  /// `.composer-rank0.lock`): a second Trainer on the same folder, in this process or another, is refused. Composer
  /// counterpart: `save_folder`.
  std::string save_folder;
  /// How often to save, in ep, ba, sp or tok. Composer counterpart: `save_interval`.
  Time save_interval = Time::from_epoch(1);
  /// Keep at most this many of the checkpoints this Trainer writes (positive, or -1: all). Composer counterpart:
  /// `save_num_checkpoints_to_keep` (whose 0, keep none locally, serves remote uploads, which do not exist here).
  int save_num_checkpoints_to_keep = -1;
  /// Write checkpoints holding only the model's parameters and buffers (no optimizers, timestamp, schedules,
  /// random generators or policies' state), for inference or fine-tuning. Composer counterpart:
  /// `save_weights_only`.
  bool save_weights_only = false;
  /// Checkpoint to resume from; empty starts fresh. Composer counterpart: `load_path`.
  std::string load_path;
  /// Load only the model's weights from `load_path` (a full or a weights-only checkpoint), leaving the timestamp,
  /// optimizers, schedules and policies' state as constructed. Composer counterpart: `load_weights_only`.
  bool load_weights_only = false;
  /// When loading the model's weights, a model tensor missing from the checkpoint, or a checkpoint tensor the model
  /// does not have, is an error (true) or skipped (false); a shape or type mismatch is an error either way.
  /// Composer counterpart: `load_strict_model_weights`.
  bool load_strict_model_weights = true;
  /// Resume from `load_path` (or by `autoresume`) even when the settings that shape the run differ from the
  /// checkpoint's: the optimizers' learning rates (the new ones then apply from the next batch), the seed (when set)
  /// and the training data's batches per epoch or batch size; false refuses such a checkpoint with a
  /// `CheckpointError` naming the setting. Composer counterpart: none (Composer resumes with the checkpoint's
  /// learning rates and whatever loader it is given, silently).
  bool load_allow_changed_settings = false;
  /// At construction, resume from the newest checkpoint in `save_folder` (its `latest-rank{R}.pt` link, or the
  /// newest whole checkpoint when the link is missing) when there is one, instead of `load_path` and with
  /// `load_weights_only` ignored; with none there, start as without it (from `load_path` when set). Needs
  /// `save_folder`. Composer counterpart: `autoresume`.
  bool autoresume = false;
  /// Train on at most this many batches of each epoch (-1: all), so an epoch ends early. Composer counterpart:
  /// `train_subset_num_batches`.
  std::int64_t train_subset_num_batches = -1;
  /// Seed of rank 0; unset draws one at random. Composer counterpart: `seed`.
  std::optional<std::uint64_t> seed;
  /// Use deterministic kernels only. Composer counterpart: `deterministic_mode`.
  bool deterministic_mode = false;
  /// Device to train on; the model is moved there and each microbatch with it. Composer counterpart:
  /// `device`.
  c10::Device device = c10::Device(c10::kCPU);
  /// Numerical precision (`amp_*` need CUDA). Composer counterpart: `precision`.
  Precision precision = Precision::fp32;
  /// Name of the run. Composer counterpart: `run_name`.
  std::string run_name = "composer-run";
  /// Run the algorithms' input stages (MixUp, CutMix, CutOut, NormalizeInputs) as one fused pass over each device
  /// microbatch when the composition, the batch and the device allow it (see `trainer/fused_inputs.hpp`); false
  /// always runs the eager stages. Both give the same batches. Composer counterpart: none (Composer is always
  /// eager).
  bool fuse_batch_transforms = true;
  /// Show a console progress bar (plain lines when not on a terminal). Composer counterpart: `progress_bar`.
  bool progress_bar = true;
  /// File receiving every logged metric (`.csv` or `.jsonl`); empty writes none. Composer counterpart:
  /// `FileLogger`.
  std::string metrics_file;
  /// The data-parallel group this Trainer trains in (`dist::ProcessGroup::create`); null takes the process's default
  /// group, made from the launcher's variables (`WORLD_SIZE`, `RANK`, `MASTER_ADDR`, `MASTER_PORT`) when they are
  /// set, and otherwise trains in this process alone. Composer counterpart: the process group Composer initializes
  /// from the same variables.
  std::shared_ptr<dist::ProcessGroup> process_group;
  /// In a data-parallel run, give every loader (training and evaluation) its rank's shard through its
  /// `set_shard(num_replicas, rank)` hook (`data::AnyLoader::shard`); a loader without the hook is then an error.
  /// False leaves the loaders as they are: the user has sharded them (a `torch::data` distributed sampler).
  /// Composer counterpart: the `DistributedSampler` a Composer user gives each `DataLoader`.
  bool shard_loaders = true;

  /// `max_duration` stretched by `scale_schedule_ratio` (unset when `max_duration` is). Composer counterpart:
  /// the duration scaling of `scale_schedule_ratio`.
  std::optional<Time> scaled_max_duration() const {
    if (!max_duration || scale_schedule_ratio == 1.0) return max_duration;
    return *max_duration * scale_schedule_ratio;
  }

  /// Whether the Trainer can reach `duration`: it counts epochs, batches, samples and tokens, not iterations.
  static bool trainer_counts(const Time& duration) { return counted_interval_unit(duration.unit()); }

  /// Throws `std::invalid_argument` naming the first option that cannot work: a `max_duration` in a unit the
  /// Trainer does not count (iter), a non-positive microbatch size or
  /// schedule ratio, an interval not in ep, ba, sp or tok, saving without a positive interval, a CUDA device this process
  /// cannot see, mixed precision off CUDA, a null optimizer, a schedule ratio without a scheduler or scaling
  /// `max_duration` to zero, `autoresume` without `save_folder`, `load_weights_only` with nothing to load, or a
  /// `train_subset_num_batches`, `eval_subset_num_batches` or `save_num_checkpoints_to_keep` neither positive nor -1 (the evaluators are checked
  /// by `schedule_evaluators`). Composer counterpart: the argument checks of
  /// `composer.Trainer.__init__`.
  void validate() const {
    if (max_duration && max_duration->unit() != TimeUnit::DURATION && max_duration->unit() != TimeUnit::SECOND &&
        !trainer_counts(*max_duration))
      throw std::invalid_argument("composer: max_duration " + max_duration->to_string() +
                                  " is in a unit the Trainer does not count (it counts ep, ba, sp and tok): training "
                                  "would never stop");
    if (autoresume && save_folder.empty())
      throw std::invalid_argument("composer: autoresume needs save_folder (it resumes from the latest checkpoint there)");
    if (load_weights_only && load_path.empty() && !autoresume)
      throw std::invalid_argument("composer: load_weights_only needs load_path (or autoresume) to load from");
    if (train_subset_num_batches == 0 || train_subset_num_batches < -1)
      throw std::invalid_argument("composer: train_subset_num_batches must be positive or -1 (all batches), got " +
                                  std::to_string(train_subset_num_batches));
    if (eval_subset_num_batches == 0 || eval_subset_num_batches < -1)
      throw std::invalid_argument("composer: eval_subset_num_batches must be positive or -1 (all batches), got " +
                                  std::to_string(eval_subset_num_batches));
    if (device_train_microbatch_size && *device_train_microbatch_size <= 0)
      throw std::invalid_argument("composer: device_train_microbatch_size must be positive, got " +
                                  std::to_string(*device_train_microbatch_size));
    if (!(scale_schedule_ratio > 0)) throw std::invalid_argument("composer: scale_schedule_ratio must be positive");
    for (const auto& [name, interval] :
         {std::pair{"eval_interval", eval_interval}, std::pair{"save_interval", save_interval}})
      if (!counted_interval_unit(interval.unit()))
        throw std::invalid_argument(std::string("composer: ") + name + " must be in ep, ba, sp or tok, got " +
                                    interval.to_string());
    if (save_num_checkpoints_to_keep == 0 || save_num_checkpoints_to_keep < -1)
      throw std::invalid_argument("composer: save_num_checkpoints_to_keep must be positive or -1 (keep all), got " +
                                  std::to_string(save_num_checkpoints_to_keep) +
                                  (save_num_checkpoints_to_keep == 0 ? " (keeping none would delete every checkpoint "
                                                                       "and leave the latest link dangling)"
                                                                     : std::string()));
    if (save_interval.value() <= 0 && !save_folder.empty())
      throw std::invalid_argument("composer: save_interval must be positive when save_folder is set");
    if (device.is_cuda()) {
      const std::int64_t gpus = at::globalContext().hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
      if (gpus == 0)
        throw std::invalid_argument("composer: device " + device.str() +
                                    " needs a LibTorch built with CUDA and a visible GPU; this process sees none");
      if (device.has_index() && device.index() >= gpus)
        throw std::invalid_argument("composer: device " + device.str() + " does not exist: this process sees " +
                                    std::to_string(gpus) + " GPU(s)");
    }
    if (precision != Precision::fp32 && !device.is_cuda())
      throw std::invalid_argument("composer: precision " + std::string(to_string(precision)) + " needs a CUDA device");
    for (const auto& optimizer : optimizers)
      if (!optimizer) throw std::invalid_argument("composer: an optimizer in the options is null");
    if (max_duration && scale_schedule_ratio != 1.0) {
      if (schedulers.empty()) throw std::invalid_argument("composer: scale_schedule_ratio needs at least one scheduler");
      if (scaled_max_duration()->value() == 0)
        throw std::invalid_argument("composer: scale_schedule_ratio " + std::to_string(scale_schedule_ratio) +
                                    " scales max_duration " + max_duration->to_string() + " to zero");
    }
  }
};

/// What one call of `Trainer::fit(FitOptions)` changes, each field optional; use designated initializers:
/// `trainer.fit({.train_dataloader = loader, .duration = Time("2ep"), .reset_time = true})`. Composer counterpart:
/// the arguments of `composer.Trainer.fit`.
struct FitOptions {
  /// Replaces the training data from this call on; none keeps the current loader. Composer counterpart:
  /// `train_dataloader`.
  data::AnyLoader train_dataloader;
  /// Train this much longer than the current time, in its unit (from zero with `reset_time`); unset keeps
  /// `max_duration`. Composer counterpart: `duration`.
  std::optional<Time> duration;
  /// Set the timestamp (and with it the schedules, which are functions of it) back to zero before training; the
  /// model, optimizers' state and policies are kept. Composer counterpart: `reset_time`.
  bool reset_time = false;
  /// Replaces `TrainerOptions::train_subset_num_batches` from this call on (-1: all, else positive). Composer
  /// counterpart: `train_subset_num_batches`.
  std::optional<std::int64_t> train_subset_num_batches;
};

}  // namespace composer
