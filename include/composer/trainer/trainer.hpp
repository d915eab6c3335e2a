#pragma once
/// \file
/// composer::Trainer<Policies...> — Composer's training loop over LibTorch, firing every event through a
/// statically dispatched Engine. The loop lives here; its parts live beside it: option checks in
/// `trainer_options.hpp`, seeding in `seeding.hpp`, the checkpoint layout in `checkpoint.hpp`, saving into a
/// folder in `checkpoint_saver.hpp`, evaluation and prediction in `evaluation.hpp`, schedules in
/// `learning_rates.hpp`, the NaN check in `loss_check.hpp`, mixed precision in `precision_context.hpp`, the
/// state, metrics file, checkpoint to load and `fit`'s argument checks in `trainer_setup.hpp`.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/engine.hpp>
#include <composer/core/state.hpp>
#include <composer/core/timestamp.hpp>
#include <composer/data/any_loader.hpp>
#include <composer/distributed/gradient_sync.hpp>
#include <composer/distributed/metric_reduction.hpp>
#include <composer/distributed/process_group.hpp>
#include <composer/io/folder_lock.hpp>
#include <composer/loggers/metrics_file.hpp>
#include <composer/loggers/progress_bar.hpp>
#include <composer/trainer/active_loader.hpp>
#include <composer/trainer/checkpoint.hpp>
#include <composer/trainer/checkpoint_saver.hpp>
#include <composer/trainer/device_batch.hpp>
#include <composer/trainer/evaluation.hpp>
#include <composer/trainer/fused_inputs.hpp>
#include <composer/trainer/interval.hpp>
#include <composer/trainer/learning_rates.hpp>
#include <composer/trainer/loss_check.hpp>
#include <composer/trainer/precision_context.hpp>
#include <composer/trainer/seeding.hpp>
#include <composer/trainer/trainer_options.hpp>
#include <composer/trainer/trainer_setup.hpp>

namespace composer {

inline namespace COMPOSER_FUSION_ABI_NAMESPACE {

/// The trainer: `Trainer<MixUp, LabelSmoothing> trainer(model, options); trainer.fit();`. It owns a
/// `State` and an `Engine` over `Policies...` (algorithms, callbacks and loggers, resolved at compile time)
/// and runs Composer's loop, firing every event in Composer's order:
/// `fit()` with `max_duration` in any unit, gradient accumulation over microbatches, optimizer closures,
/// learning-rate schedules in time units, evaluation at intervals, checkpoints saved atomically and resumed
/// exactly, seeding, mixed precision on CUDA, and data-parallel training over c10d when started by a launcher
/// (README, "Beyond one machine"). Composer counterpart: `composer.Trainer`.
template <class... Policies>
class Trainer {
 public:
  /// The engine type: the user's policies, in the order given, then the built-in logger destinations
  /// (progress bar and metrics file, each switched on or off by the options).
  using engine_type = BasicEngine<State, Policies..., loggers::ProgressBar, loggers::MetricsFile>;

  /// A trainer with default-constructed policies.
  Trainer(Model model, TrainerOptions options)
    requires(sizeof...(Policies) > 0 && (std::is_default_constructible_v<Policies> && ...))
      : Trainer(std::move(model), std::move(options), Policies{}...) {}

  /// A trainer with the given policy objects (in the order of `Policies`).
  Trainer(Model model, TrainerOptions options, Policies... policies)
      : options_(std::move(options)),
        group_(options_.process_group ? options_.process_group : dist::default_group(options_.device)),
        // Taken before anything is written (the metrics file opens with the engine): one run per folder. In a
        // data-parallel run, rank 0 alone writes checkpoints, progress and metrics.
        save_folder_lock_(is_rank_zero() ? options_.save_folder : std::string(), ".composer-rank0.lock"),
        state_(prepare_state(std::move(model), options_, group_.get())),
        engine_(state_, std::move(policies)...,
                loggers::ProgressBar(loggers::ProgressBarOptions{.enabled = options_.progress_bar && is_rank_zero()}),
                is_rank_zero() ? make_metrics_file(options_) : loggers::MetricsFile()),
        base_learning_rates_(base_learning_rates(state_.optimizers)),
        scaler_(state_.precision == Precision::amp_fp16),
        saver_(options_.save_folder, options_.save_interval, options_.save_num_checkpoints_to_keep, 0, is_rank_zero()),
        train_subset_num_batches_(options_.train_subset_num_batches),
        evaluators_(schedule_evaluators(options_)),
        train_metrics_(options_.train_metrics) {
    if (group_) prepare_data_parallel();
    engine_.template run<Event::INIT>();
    engine_.template run<Event::BEFORE_LOAD>();
    // Every rank loads rank 0's checkpoint: in a data-parallel run only rank 0 writes them.
    if (const auto to_load = checkpoint_to_load(options_, 0))
      to_load->weights_only ? load_weights(to_load->path) : load_checkpoint(to_load->path);
    if (group_) {
      check_ranks_resumed_together();
      // All ranks start from rank 0's model, as DistributedDataParallel makes them.
      dist::broadcast_from_rank_zero(*group_, model_tensors());
    }
    engine_.template run<Event::AFTER_LOAD>();
  }

  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Trains until `max_duration`; with `duration`, trains that much longer than the current time (in its
  /// unit). Fires `FIT_START` … `FIT_END`. Composer counterpart: `Trainer.fit(duration=...)`.
  void fit(std::optional<Time> duration = std::nullopt) { fit(FitOptions{.duration = duration}); }

  /// Trains as `fit(duration)` after applying `fit_options`: a new training loader replaces the current one,
  /// `reset_time` sets the timestamp (and so the schedules) back to zero, `duration` is added to the current time
  /// (to zero when reset; unset keeps `max_duration`), and `train_subset_num_batches` replaces the option. Every
  /// argument is checked before anything changes. Composer counterpart: `Trainer.fit(train_dataloader=...,
  /// duration=..., reset_time=..., train_subset_num_batches=...)`.
  ///
  /// The first `fit()` of a Trainer that resumed a run which had already reached `max_duration` (killed during its
  /// final evaluation or checkpoint) trains nothing and finishes what is missing: `FIT_START`, `FIT_END`, the
  /// evaluations that did not run at its last batch and the final checkpoint when there is none.
  void fit(FitOptions fit_options) {
    const Timestamp start = fit_options.reset_time ? Timestamp() : state_.timestamp;
    const bool finishing = resumed_finished_ && !fit_options.duration && !fit_options.reset_time &&
                           !fit_options.train_dataloader && state_.max_duration() &&
                           state_.timestamp >= *state_.max_duration();
    resumed_finished_ = false;
    const Time max_duration = finishing ? *state_.max_duration()
                                        : fit_max_duration(fit_options, static_cast<bool>(options_.train_dataloader),
                                                           state_, start);
    if (fit_options.train_dataloader) {
      options_.train_dataloader = std::move(fit_options.train_dataloader);
      if (group_) shard(options_.train_dataloader, "training");
      check_resumed_batch_size_ = false;  // new data: a new batch size is the caller's choice
    }
    if (fit_options.train_subset_num_batches) train_subset_num_batches_ = *fit_options.train_subset_num_batches;
    if (fit_options.reset_time) {
      state_.timestamp = Timestamp();
      state_.previous_timestamp = Timestamp();
      for (auto& evaluator : evaluators_) evaluator.last_eval_batch = -1;
      saver_.resumed_at(-1);
    }
    state_.set_max_duration(max_duration);
    activate_loader(state_, options_.train_dataloader, "train", train_subset_num_batches_);
    state_.model->train(true);
    engine_.template run<Event::FIT_START>();

    while (state_.timestamp < *state_.max_duration()) {
      if (state_.timestamp.batch_in_epoch().count() == 0) {
        if (state_.timestamp.epoch_in_iteration().count() == 0) engine_.template run<Event::ITERATION_START>();
        engine_.template run<Event::EPOCH_START>();
        train_metrics_.reset();
      }
      const bool epoch_finished = train_epoch();
      if (epoch_finished) end_epoch();
    }
    // A finished run resumed from a checkpoint saved on its epoch's last batch, before that epoch ended: the end of
    // the epoch comes first, as in the run that was not interrupted.
    if (finishing) {
      const auto epoch_length = subset_length(options_.train_dataloader, train_subset_num_batches_);
      if (epoch_length && state_.timestamp.batch_in_epoch().count() >= *epoch_length) end_epoch();
    }
    engine_.template run<Event::FIT_END>();
    // An evaluator whose interval did not divide the run evaluates once more at its end.
    evaluate_due([&](const ScheduledEvaluator& evaluator) {
      return evaluator.interval.count() > 0 && evaluator.last_eval_batch != state_.timestamp.batch().count();
    });
    saver_.fit_end(state_, save_into_folder());
    for (auto& optimizer : state_.optimizers) optimizer->zero_grad();
  }

  /// Evaluates with every evaluator (`eval_dataloader` as `"eval"`, then `evaluators`, whatever their interval)
  /// and returns their metrics by label: `trainer.eval().at("eval").at("accuracy")`. Fires
  /// `EVAL_STANDALONE_START`, `EVAL_START` … `EVAL_END` per evaluator, `EVAL_STANDALONE_END`. Composer counterpart:
  /// `Trainer.eval()`.
  /// \throws std::invalid_argument when the Trainer has no evaluator.
  std::map<std::string, MetricValues> eval() {
    if (evaluators_.empty())
      throw std::invalid_argument("composer: eval() needs an eval_dataloader or evaluators in the TrainerOptions");
    std::map<std::string, MetricValues> values;
    engine_.template run<Event::EVAL_STANDALONE_START>();
    for (auto& evaluator : evaluators_) values[evaluator.label] = run_evaluator(evaluator);
    engine_.template run<Event::EVAL_STANDALONE_END>();
    return values;
  }

  /// Evaluates once with `evaluator` (its metrics, or the options' `eval_metrics`; its batch limit, or the
  /// options'), as one more evaluator that is not kept, and returns its metrics (also stored under its label in
  /// `State::eval_metric_values`). Composer counterpart: `Trainer.eval(eval_dataloader=Evaluator(...))`.
  /// \throws std::invalid_argument for an evaluator the constructor would refuse.
  MetricValues eval(const Evaluator& evaluator) {
    ScheduledEvaluator scheduled = schedule_evaluator(evaluator, options_);
    if (group_) shard(scheduled.dataloader, "evaluator '" + scheduled.label + "'");
    engine_.template run<Event::EVAL_STANDALONE_START>();
    share_rank_zero_buffers();
    MetricValues values = run_evaluation(engine_, state_, scheduled, group_.get());
    engine_.template run<Event::EVAL_STANDALONE_END>();
    return values;
  }

  /// Runs the model over `loader` (at most `subset_num_batches` batches, -1 for all) without gradients and
  /// returns its outputs on the CPU, one tensor per batch. Composer counterpart: `Trainer.predict`.
  std::vector<at::Tensor> predict(data::AnyLoader loader, std::int64_t subset_num_batches = -1) {
    if (!loader) throw std::invalid_argument("composer: predict() needs a data loader");
    return run_prediction(engine_, state_, loader, subset_num_batches);
  }

  /// Writes a checkpoint holding the model, optimizers (with each parameter group's hyperparameters, the current
  /// learning rate among them), learning-rate bases, timestamp, random generator states, loss scale, the last loss
  /// and every policy's own state, atomically; with `weights_only`, the model's parameters and buffers only (load
  /// those with `load_weights`). In a data-parallel run every rank calls it: rank 0 writes the file, with every
  /// rank's random generator state, and the others wait until it is written. Composer counterpart:
  /// `Trainer.save_checkpoint(name, weights_only)`.
  void save_checkpoint(const std::string& path, bool weights_only = false) {
    checkpoint::TrainingParts parts = checkpoint_parts();
    if (group_ && !weights_only)
      parts.rank_cpu_rng_states =
          group_->all_gather(checkpoint::cpu_rng_state(), "gather of the ranks' random generators");
    if (is_rank_zero()) {
      if (weights_only)
        checkpoint::save_weights(path, state_.model.module());
      else
        checkpoint::save(path, parts, engine_);
    }
    if (group_) group_->barrier("wait for rank 0 to write checkpoint '" + path + "'");
  }

  /// Restores a checkpoint written by `save_checkpoint` so that training continues exactly where it stopped: the
  /// resumed run's events see what the uninterrupted run saw at the same point (timestamp, scheduled learning rate,
  /// `State::loss`; README, "Training with `Trainer<Policies...>`"). Everything is checked before the model
  /// changes: a checkpoint that does not fit, a weights-only one (see `load_weights`) or a corrupt file is a
  /// `CheckpointError` naming the problem. Composer counterpart: `Trainer(load_path=...)`.
  /// The settings that shape the run must be the checkpoint's: another learning rate, seed (when set) or number
  /// of batches per epoch is a `CheckpointError` naming it, and so is a first batch of another size, unless
  /// `load_allow_changed_settings`. Resumed from its own save folder, the run's older checkpoints there rotate as
  /// its new ones are saved.
  void load_checkpoint(const std::string& path) {
    checkpoint::load(path, checkpoint_parts(), engine_, options_.load_strict_model_weights);
    const Timestamp& now = state_.timestamp;
    // The evaluations a checkpoint follows: those whose interval fell on its batch (or epoch end) ran before it was
    // saved; the others, due at the end of the run, may not have.
    for (auto& evaluator : evaluators_)
      evaluator.last_eval_batch = evaluated_before_saving(evaluator.interval, now) ? now.batch().count() : -1;
    saver_.resumed_from(path, now.batch().count(), 0);
    resumed_finished_ = state_.max_duration() && now >= *state_.max_duration();
    check_resumed_batch_size_ = !options_.load_allow_changed_settings && state_.train_batch_size.has_value();
  }

  /// Copies only the model's parameters and buffers from a full or weights-only checkpoint, matched as
  /// `load_strict_model_weights` says; the timestamp, optimizers, schedules and policies are left as they are. A
  /// checkpoint that does not fit, or a corrupt file, is a `CheckpointError` and leaves the model as it was.
  /// Composer counterpart: `Trainer(load_path=..., load_weights_only=True)`.
  void load_weights(const std::string& path) {
    checkpoint::load_weights(path, state_.model.module(), options_.load_strict_model_weights);
  }

  /// Closes the engine's policies (flushing loggers). Composer counterpart: `Trainer.close`.
  void close() { engine_.close(); }

  /// The training state.
  State& state() noexcept { return state_; }
  /// The training state.
  const State& state() const noexcept { return state_; }
  /// The engine (use `engine().template get<P>()` to reach a policy).
  engine_type& engine() noexcept { return engine_; }
  /// The options the trainer was built with.
  const TrainerOptions& options() const noexcept { return options_; }
  /// The policy of type `P`.
  template <class P>
  P& get() noexcept {
    return engine_.template get<P>();
  }
  /// The fusion plan of `Trainer<Policies...>` (decided at compile time; see `trainer/fused_inputs.hpp`).
  using fusion_plan = FusedInputPlan<engine_type>;
  /// Whether `Trainer<Policies...>`'s input stages fuse into one pass per microbatch.
  static constexpr bool fuses_batch_transforms = fusion_plan::enabled;
  /// Whether CUDA microbatches take the fused pass too: this translation unit was compiled as CUDA by nvcc
  /// (`COMPOSER_CUDA_FUSION`); otherwise they run the eager stages on the device.
  static constexpr bool cuda_fusion = FusedInputRunner<engine_type>::cuda_fusion;
  /// Training microbatches that went through the fused pass so far, one launch each (the others ran the eager
  /// stages).
  std::int64_t fused_microbatches() const noexcept { return fused_inputs_.fused_microbatches(); }
  /// Output buffers the fused pass allocated so far: one in steady state (the buffer is reused while no policy
  /// keeps the previous batch's inputs).
  std::int64_t fused_buffer_allocations() const noexcept { return fused_inputs_.buffer_allocations(); }
  /// The checkpoints in `save_folder` this run keeps and rotates, oldest first: those it wrote, and after a resume
  /// from that folder the run's earlier ones up to the resumed batch.
  const std::vector<std::string>& saved_checkpoints() const noexcept { return saver_.saved_checkpoints(); }
  /// The data-parallel group this trainer trains in; null in a single process.
  const dist::ProcessGroup* process_group() const noexcept { return group_.get(); }
  /// Seconds this rank has waited for the gradient all-reduces after its backward passes: the communication the
  /// backward pass did not hide (0 in a single process).
  double gradient_wait_seconds() const noexcept {
    return earlier_wait_seconds_ + (sync_ ? sync_->wait_seconds() : 0.0);
  }

 private:
  bool is_rank_zero() const noexcept { return !group_ || group_->rank() == 0; }

  // A data-parallel run: every loader sharded (or left to the user), every metric reducible over the ranks.
  void prepare_data_parallel() {
    if (options_.train_dataloader) shard(options_.train_dataloader, "training");
    for (auto& evaluator : evaluators_) {
      shard(evaluator.dataloader, "evaluator '" + evaluator.label + "'");
      dist::require_reducible(evaluator.metrics, group_->world_size(), "evaluator '" + evaluator.label + "'");
    }
    dist::require_reducible(train_metrics_, group_->world_size(), "training");
  }

  // Every rank must start at the same point: a rank that found another checkpoint (or none) would train out of step.
  void check_ranks_resumed_together() const {
    const std::int64_t mine = state_.timestamp.batch().count();
    const auto all = group_->all_gather(at::tensor(std::vector<std::int64_t>{mine}),
                                        "comparison of the ranks' starting points");
    for (std::size_t r = 0; r < all.size(); ++r)
      if (const std::int64_t theirs = all[r].item<std::int64_t>(); theirs != mine)
        throw dist::DistributedError("composer: rank " + std::to_string(group_->rank()) + " starts at batch " +
                                     std::to_string(mine) + " but rank " + std::to_string(r) + " at batch " +
                                     std::to_string(theirs) + "; every rank must load the same checkpoint (a "
                                     "load_path or save_folder that all ranks see, on a shared file system)");
  }

  // Gives `loader` this rank's shard through its hook, unless the user shards the loaders.
  void shard(data::AnyLoader& loader, const std::string& what) {
    if (!options_.shard_loaders || !loader) return;
    if (!loader.shard(group_->world_size(), group_->rank()))
      throw std::invalid_argument("composer: the " + what + " data loader cannot be sharded among " +
                                  std::to_string(group_->world_size()) + " ranks: it has no set_shard(num_replicas, rank); "
                                  "shard it yourself (a distributed sampler) and set TrainerOptions::shard_loaders = false");
  }

  // In a data-parallel run, rank 0's buffers (BatchNorm's running statistics) go to every rank before each training
  // batch and each evaluation, as DistributedDataParallel's buffer broadcast makes them: every rank evaluates the
  // same model, and a run resumed from rank 0's checkpoint continues exactly. Training itself normalises with each
  // rank's own batch statistics.
  void share_rank_zero_buffers() {
    if (!group_) return;
    std::vector<at::Tensor> buffers;
    for (const auto& b : state_.model.module().buffers()) buffers.push_back(b);
    dist::broadcast_from_rank_zero(*group_, buffers);
  }

  // The model's parameters and buffers.
  std::vector<at::Tensor> model_tensors() const {
    std::vector<at::Tensor> tensors;
    for (const auto& p : state_.model.module().parameters()) tensors.push_back(p);
    for (const auto& b : state_.model.module().buffers()) tensors.push_back(b);
    return tensors;
  }

  // The gradient synchronizer for the optimizers' current parameters (a new one after surgery or freezing).
  dist::GradientSynchronizer& synchronizer() {
    std::vector<at::Tensor> parameters;
    std::unordered_set<const void*> seen;  // a parameter in two groups or optimizers is synchronised once
    for (const auto& p : all_parameters())
      if (seen.insert(p.unsafeGetTensorImpl()).second) parameters.push_back(p);
    if (!sync_ || !sync_->serves(parameters)) {
      if (sync_) earlier_wait_seconds_ += sync_->wait_seconds();
      sync_.reset();
      sync_ = std::make_unique<dist::GradientSynchronizer>(group_, std::move(parameters));
    }
    return *sync_;
  }

  // The parts of this trainer a checkpoint holds, besides its policies.
  checkpoint::TrainingParts checkpoint_parts() {
    return {state_,
            base_learning_rates_,
            scaler_,
            joined_policy_names(),
            options_.seed,
            options_.load_allow_changed_settings,
            subset_length(options_.train_dataloader, train_subset_num_batches_)};
  }

  // Whether a checkpoint saved at `saved` followed an evaluation at `interval` (at BATCH_END or EPOCH_END, which
  // come before the checkpoint events). Not known for an interval in sp or tok (whether the saved batch crossed
  // one depends on the batch before it): the resumed run then evaluates once more at its end.
  static bool evaluated_before_saving(const Time& interval, const Timestamp& saved) {
    if (interval.count() <= 0) return false;
    if (interval.unit() == TimeUnit::SAMPLE || interval.unit() == TimeUnit::TOKEN) return false;
    if (interval.unit() == TimeUnit::BATCH)
      return saved.batch().count() > 0 && saved.batch().count() % interval.count() == 0;
    return saved.batch_in_epoch().count() == 0 && saved.epoch().count() > 0 &&
           saved.epoch().count() % interval.count() == 0;
  }

  // The first batch after a resume has the checkpointed run's batch size, unless it is the (shorter) last of its
  // epoch.
  void check_resumed_batch_size(std::int64_t samples, std::optional<std::int64_t> epoch_length) {
    check_resumed_batch_size_ = false;
    const std::int64_t saved = *state_.train_batch_size;
    const bool last_of_epoch = epoch_length && state_.timestamp.batch_in_epoch().count() + 1 == *epoch_length;
    if (samples == saved || (samples < saved && last_of_epoch)) return;
    throw CheckpointError("composer: the resumed run was trained with batches of " + std::to_string(saved) +
                          " samples, but its training data now yields " + std::to_string(samples) +
                          "; resume with the batch size of the run, or allow changed settings "
                          "(TrainerOptions::load_allow_changed_settings)");
  }

  // What the checkpoint saver calls to write a checkpoint into its folder.
  auto save_into_folder() {
    return [this](const std::string& path) { save_checkpoint(path, options_.save_weights_only); };
  }

  // Whether the last advance of the timestamp crossed a multiple of `interval` (in `unit` only).
  bool interval_crossed(const Time& interval, TimeUnit unit) const {
    return composer::interval_crossed(interval, unit, state_.previous_timestamp, state_.timestamp);
  }

  // One epoch (or its remainder): returns whether the epoch's data was used up, so that it ends.
  bool train_epoch() {
    auto& loader = options_.train_dataloader;
    const std::int64_t epoch = state_.timestamp.epoch().count();
    const std::int64_t resume_at = state_.timestamp.batch_in_epoch().count();
    loader.start_epoch(epoch, resume_at);
    const std::optional<std::int64_t> epoch_length = subset_length(loader, train_subset_num_batches_);
    while (true) {
      // `train_subset_num_batches` ends the epoch early, before the next batch is asked for.
      if (train_subset_num_batches_ > 0 && state_.timestamp.batch_in_epoch().count() >= train_subset_num_batches_)
        return true;
      // A batch's time runs from the data loader call to the end of the optimizer step, so that work done by
      // methods at AFTER_DATALOADER (resizing, selecting, mixing) counts as training time.
      const auto started = std::chrono::steady_clock::now();
      engine_.template run<Event::BEFORE_DATALOADER>();
      std::optional<Batch> batch = loader.next();
      if (!batch) {
        if (state_.timestamp.batch_in_epoch().count() == 0)
          throw std::runtime_error("composer: the training data loader yielded no batch in epoch " + std::to_string(epoch));
        return true;
      }
      check_batch(*batch, "training");
      const std::int64_t samples = batch->inputs.size(0);
      const std::int64_t tokens = tokens_in_batch(*batch);
      if (tokens == 0 && state_.max_duration() && state_.max_duration()->unit() == TimeUnit::TOKEN)
        throw std::runtime_error("composer: max_duration " + state_.max_duration()->to_string() +
                                 " is in tokens, but the training data counts no tokens (its inputs are not integer "
                                 "token ids of shape [N, S]): training would never stop");
      if (!state_.train_batch_size) state_.train_batch_size = samples;  // the loader's batch size, from its first batch
      if (check_resumed_batch_size_) check_resumed_batch_size(samples, epoch_length);
      state_.batch = std::move(*batch);
      // The fusion plan decides whether this batch's input stages run as one pass per microbatch (then their
      // parameters are drawn here and at BEFORE_FORWARD) or eagerly.
      fused_inputs_.begin_batch(state_, options_.fuse_batch_transforms);
      fused_inputs_.template run<Event::AFTER_DATALOADER>(engine_, state_);
      engine_.template run<Event::BATCH_START>();
      apply_schedulers(state_, base_learning_rates_, options_.step_schedulers_every_batch, options_.scale_schedule_ratio);
      local_samples_ = samples;
      local_tokens_ = tokens;
      share_rank_zero_buffers();
      const double loss = train_batch();
      compute_train_metrics();
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
      state_.previous_timestamp = state_.timestamp;
      // A batch is the global batch: its samples and tokens are those of every rank, as Composer counts them.
      state_.timestamp = state_.timestamp.to_next_batch(group_ ? global_samples_ : samples,
                                                        group_ ? global_tokens_ : tokens, took);
      log_batch(loss);
      engine_.template run<Event::BATCH_END>();
      evaluate_due([&](const ScheduledEvaluator& evaluator) {
        return batch_interval_crossed(evaluator.interval, state_.previous_timestamp, state_.timestamp);
      });
      engine_.template run<Event::BATCH_CHECKPOINT>();
      saver_.batch_checkpoint(state_, save_into_folder());
      // A policy may end training within the epoch (State::stop_training at BATCH_END, in an evaluation or at a
      // checkpoint), so max_duration is read again after every batch.
      if (state_.max_duration() && state_.timestamp >= *state_.max_duration())
        return epoch_length && state_.timestamp.batch_in_epoch().count() >= *epoch_length;
    }
  }

  void end_epoch() {
    state_.previous_timestamp = state_.timestamp;
    state_.timestamp = state_.timestamp.to_next_epoch();
    engine_.template run<Event::EPOCH_END>();
    evaluate_due([&](const ScheduledEvaluator& evaluator) { return interval_crossed(evaluator.interval, TimeUnit::EPOCH); });
    engine_.template run<Event::EPOCH_CHECKPOINT>();
    saver_.epoch_checkpoint(state_, save_into_folder());
  }

  // BEFORE_TRAIN_BATCH … AFTER_TRAIN_BATCH and the optimizer step; returns the batch's mean loss.
  double train_batch() {
    double loss = 0.0;
    if (state_.optimizers.size() == 1 && !scaler_.enabled()) {
      // The closure path (Composer's default): the optimizer decides how often to evaluate the loss.
      // An optimizer may call the closure more than once (SAM); the logged loss is the first call's, as in
      // Composer.
      bool first_call = true;
      state_.optimizers.front()->step([&]() -> at::Tensor {
        at::Tensor total = train_microbatches();
        if (first_call) loss = last_loss_;
        first_call = false;
        return total;
      });
      return loss;
    }
    train_microbatches();
    if (finite_gradients_)
      for (auto& optimizer : state_.optimizers) optimizer->step();
    scaler_.update(finite_gradients_);
    return last_loss_;
  }

  at::Tensor train_microbatches() {
    const Batch full = state_.batch;
    // An optimizer calling the closure again (SAM) re-runs the microbatches; the training metrics take the first run.
    const bool update_train_metrics = !train_metrics_.empty() && !train_metrics_updated_;
    engine_.template run<Event::BEFORE_TRAIN_BATCH>();
    // Gradients are dropped rather than zeroed (Composer's `zero_grad(set_to_none=True)`): a parameter that gets
    // no gradient in this batch (a block StochasticDepth skipped) is then left alone by the optimizer, with no
    // momentum or weight-decay step, the same whether or not the run was resumed from a checkpoint.
    for (auto& optimizer : state_.optimizers)
      for (auto& group : optimizer->param_groups())
        for (auto& p : group.params()) p.mutable_grad() = at::Tensor();
    const std::int64_t n = full.inputs.size(0);
    const std::int64_t size = state_.device_train_microbatch_size.value_or(n);
    at::Tensor total;
    if (size >= n) {
      total = train_microbatch(full, 1.0, update_train_metrics, true, 0.0);
    } else {
      const auto inputs = full.inputs.split(size);
      const auto targets = full.targets.split(size);
      if (inputs.size() != targets.size())
        throw std::invalid_argument("composer: the batch has " + std::to_string(n) + " inputs but " +
                                    std::to_string(full.targets.size(0)) + " targets after AFTER_DATALOADER");
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        // Each microbatch's mean loss is weighted by its share of the batch, so the accumulated gradient is
        // that of the whole batch's mean loss.
        const double share = static_cast<double>(inputs[i].size(0)) / static_cast<double>(n);
        const bool last = i + 1 == inputs.size();
        const double loss_before = group_ && last && total.defined() ? total.item<double>() : 0.0;
        at::Tensor part = train_microbatch(Batch{inputs[i], targets[i]}, share, update_train_metrics, last, loss_before);
        total = total.defined() ? total + part : part;
      }
    }
    state_.batch = full;
    train_metrics_updated_ = train_metrics_updated_ || update_train_metrics;
    // In a data-parallel run, the loss logged and checked is the mean over the ranks (reduced with the gradients).
    last_loss_ = group_ ? reduced_loss_ : total.item<double>();
    check_finite_loss(last_loss_, state_.timestamp);
    finite_gradients_ = !scaler_.enabled() || scaler_.unscale(all_parameters());
    engine_.template run<Event::AFTER_TRAIN_BATCH>();
    return total;
  }

  // BEFORE_FORWARD … AFTER_BACKWARD on one microbatch; returns its loss times `share`, detached. With
  // `update_train_metrics`, the training metrics take the outputs against the targets as they were before
  // BEFORE_FORWARD (a copy, as Composer's deep copy of the microbatch). In a data-parallel run, the backward pass of
  // the `last` microbatch reduces the gradients (the earlier ones accumulate locally, as under DDP's `no_sync`), with
  // the batch's loss (`loss_before` plus this microbatch's) and samples, before AFTER_BACKWARD.
  at::Tensor train_microbatch(const Batch& microbatch, double share, bool update_train_metrics, bool last,
                              double loss_before) {
    state_.batch = to_device(microbatch, state_.device);
    const at::Tensor metric_targets = update_train_metrics ? state_.batch.targets.clone() : at::Tensor();
    fused_inputs_.template run<Event::BEFORE_FORWARD>(engine_, state_);
    state_.outputs = forward_in_precision(state_, state_.batch.inputs);
    engine_.template run<Event::AFTER_FORWARD>();
    engine_.template run<Event::BEFORE_LOSS>();
    {
      PrecisionContext precision(state_.precision, state_.device);
      state_.loss = state_.model.loss(state_.outputs, state_.batch.targets);
    }
    engine_.template run<Event::AFTER_LOSS>();
    engine_.template run<Event::BEFORE_BACKWARD>();
    const at::Tensor scaled = share == 1.0 ? state_.loss : state_.loss * share;
    if (group_ && last) {
      dist::GradientSynchronizer& sync = synchronizer();
      const double batch_loss = loss_before + scaled.item<double>();
      sync.arm();
      scaler_.scale_loss(scaled).backward();
      const std::vector<double> sums =
          sync.finish({batch_loss, static_cast<double>(local_samples_), static_cast<double>(local_tokens_)});
      reduced_loss_ = sums[0] / group_->world_size();
      global_samples_ = static_cast<std::int64_t>(sums[1]);
      global_tokens_ = static_cast<std::int64_t>(sums[2]);
    } else {
      scaler_.scale_loss(scaled).backward();
    }
    engine_.template run<Event::AFTER_BACKWARD>();
    if (update_train_metrics) train_metrics_.update(state_.outputs.detach(), metric_targets);
    return scaled.detach();
  }

  std::vector<at::Tensor> all_parameters() const {
    std::vector<at::Tensor> parameters;
    for (const auto& optimizer : state_.optimizers)
      for (const auto& group : optimizer->param_groups())
        parameters.insert(parameters.end(), group.params().begin(), group.params().end());
    return parameters;
  }

  void log_batch(double loss) {
    const Logger& logger = engine_.logger();
    if (!logger.has_metrics_destination()) return;
    Metrics metrics{{"loss/train/total", loss}};
    if (!state_.optimizers.empty() && !state_.optimizers.front()->param_groups().empty())
      metrics["lr/group0"] = state_.optimizers.front()->param_groups().front().options().get_lr();
    if (const auto train = state_.train_metric_values.find("train");
        !train_metrics_.empty() && train != state_.train_metric_values.end())
      for (const auto& [name, value] : train->second) metrics["metrics/train/" + name] = value;
    logger.log_metrics(metrics);
  }

  // The training metrics over the epoch so far, after a batch: stored under "train" (logged with the batch).
  void compute_train_metrics() {
    if (train_metrics_.empty() || !train_metrics_updated_) return;
    state_.train_metric_values["train"] = dist::compute_over_ranks(train_metrics_, group_.get(), "training");
    train_metrics_updated_ = false;
  }

  // EVAL_BEFORE_ALL, every evaluator `due` selects, EVAL_AFTER_ALL; nothing when none is due.
  template <class Due>
  void evaluate_due(Due&& due) {
    bool any = false;
    for (const auto& evaluator : evaluators_) any = any || due(evaluator);
    if (!any) return;
    engine_.template run<Event::EVAL_BEFORE_ALL>();
    for (auto& evaluator : evaluators_)
      if (due(evaluator)) run_evaluator(evaluator);
    engine_.template run<Event::EVAL_AFTER_ALL>();
  }

  MetricValues run_evaluator(ScheduledEvaluator& evaluator) {
    share_rank_zero_buffers();
    MetricValues values = run_evaluation(engine_, state_, evaluator, group_.get());
    evaluator.last_eval_batch = state_.timestamp.batch().count();
    return values;
  }

  std::string joined_policy_names() const {
    std::string names;
    ((names += (names.empty() ? "" : ", ") + policy_name<Policies>()), ...);
    return names;
  }

  TrainerOptions options_;
  // The data-parallel group (null: a single process).
  std::shared_ptr<dist::ProcessGroup> group_;
  io::FolderLock save_folder_lock_;
  State state_;
  engine_type engine_;
  FusedInputRunner<engine_type> fused_inputs_;
  std::vector<double> base_learning_rates_;
  LossScaler scaler_;
  double last_loss_ = 0.0;
  bool finite_gradients_ = true;
  CheckpointSaver saver_;
  // Batches per epoch to train on (-1: all): the option, or what the last `fit(FitOptions)` set.
  std::int64_t train_subset_num_batches_ = -1;
  // The evaluators (`eval_dataloader` first), with the batch each last evaluated at.
  std::vector<ScheduledEvaluator> evaluators_;
  // The training metrics, reset at every epoch start, and whether they took a batch since last computed.
  metrics::MetricCollection train_metrics_;
  bool train_metrics_updated_ = false;
  // Loaded from a checkpoint of a run that had reached max_duration: the next fit() finishes it.
  bool resumed_finished_ = false;
  // Loaded from a checkpoint: the first batch's size is checked against the run's.
  bool check_resumed_batch_size_ = false;
  // Data-parallel training: the gradient synchronizer, this rank's samples and tokens in the current batch, and the
  // batch's loss (mean over the ranks), samples and tokens (all ranks') reduced with its gradients.
  std::unique_ptr<dist::GradientSynchronizer> sync_;
  double earlier_wait_seconds_ = 0.0;
  std::int64_t local_samples_ = 0;
  std::int64_t local_tokens_ = 0;
  double reduced_loss_ = 0.0;
  std::int64_t global_samples_ = 0;
  std::int64_t global_tokens_ = 0;
};

}  // namespace COMPOSER_FUSION_ABI_NAMESPACE

}  // namespace composer
