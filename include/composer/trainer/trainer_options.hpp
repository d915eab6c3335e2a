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
#include <composer/data/any_loader.hpp>

namespace composer {

/// Configuration of a `Trainer`, in the spirit of Composer's `Trainer(...)` keyword arguments; use designated
/// initializers: `{.train_dataloader = loader, .max_duration = Time("5ep"), .optimizers = {sgd}}`.
/// Composer counterpart: the arguments of `composer.Trainer`.
struct TrainerOptions {
  /// The training data. Composer counterpart: `train_dataloader`.
  data::AnyLoader train_dataloader;
  /// Evaluation data; none disables evaluation. Composer counterpart: `eval_dataloader`.
  data::AnyLoader eval_dataloader;
  /// How long to train, in ep, ba, sp or tok. Composer counterpart: `max_duration`.
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
  /// How often to evaluate, in ep or ba; 0 disables. Composer counterpart: `eval_interval`.
  Time eval_interval = Time::from_epoch(1);
  /// Evaluate on at most this many batches (-1: all). Composer counterpart: `eval_subset_num_batches`.
  std::int64_t eval_subset_num_batches = -1;
  /// Folder for checkpoints; empty disables saving. Composer counterpart: `save_folder`.
  std::string save_folder;
  /// How often to save, in ep or ba. Composer counterpart: `save_interval`.
  Time save_interval = Time::from_epoch(1);
  /// Keep at most this many checkpoints (-1: all). Composer counterpart: `save_num_checkpoints_to_keep`.
  int save_num_checkpoints_to_keep = -1;
  /// Checkpoint to resume from; empty starts fresh. Composer counterpart: `load_path`.
  std::string load_path;
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

  /// `max_duration` stretched by `scale_schedule_ratio` (unset when `max_duration` is). Composer counterpart:
  /// the duration scaling of `scale_schedule_ratio`.
  std::optional<Time> scaled_max_duration() const {
    if (!max_duration || scale_schedule_ratio == 1.0) return max_duration;
    return *max_duration * scale_schedule_ratio;
  }

  /// Throws `std::invalid_argument` naming the first option that cannot work: a non-positive microbatch size or
  /// schedule ratio, an interval not in ep or ba, saving without a positive interval, a CUDA device this process
  /// cannot see, mixed precision off CUDA, a null optimizer, or a schedule ratio without a scheduler or scaling
  /// `max_duration` to zero. Composer counterpart: the argument checks of `composer.Trainer.__init__`.
  void validate() const {
    if (device_train_microbatch_size && *device_train_microbatch_size <= 0)
      throw std::invalid_argument("composer: device_train_microbatch_size must be positive, got " +
                                  std::to_string(*device_train_microbatch_size));
    if (!(scale_schedule_ratio > 0)) throw std::invalid_argument("composer: scale_schedule_ratio must be positive");
    for (const auto& [name, interval] :
         {std::pair{"eval_interval", eval_interval}, std::pair{"save_interval", save_interval}})
      if (interval.unit() != TimeUnit::EPOCH && interval.unit() != TimeUnit::BATCH)
        throw std::invalid_argument(std::string("composer: ") + name + " must be in ep or ba, got " +
                                    interval.to_string());
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

}  // namespace composer
