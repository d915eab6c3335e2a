#pragma once
/// \file
/// composer::Trainer<Policies...> — Composer's training loop over LibTorch, firing every event through a
/// statically dispatched Engine.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/engine.hpp>
#include <composer/core/state.hpp>
#include <composer/data/any_loader.hpp>
#include <composer/loggers/metrics_file.hpp>
#include <composer/loggers/progress_bar.hpp>
#include <composer/metrics/classification.hpp>
#include <composer/trainer/checkpoint.hpp>
#include <composer/io/files.hpp>
#include <composer/trainer/fused_inputs.hpp>
#include <composer/trainer/precision_context.hpp>
#include <composer/trainer/trainer_options.hpp>

namespace composer {

/// Thrown when the training loss is NaN or infinite; the message names the step, and no parameter was
/// updated with it.
struct NonFiniteLossError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline namespace COMPOSER_FUSION_ABI_NAMESPACE {

/// The trainer: `Trainer<MixUp, LabelSmoothing> trainer(model, options); trainer.fit();`. It owns a
/// `State` and an `Engine` over `Policies...` (algorithms, callbacks and loggers, resolved at compile time)
/// and runs Composer's loop, firing every event in Composer's order:
/// `fit()` with `max_duration` in any unit, gradient accumulation over microbatches, optimizer closures,
/// learning-rate schedules in time units, evaluation at intervals, checkpoints saved atomically and resumed
/// exactly, seeding, mixed precision on CUDA. Composer counterpart: `composer.Trainer`.
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
      : options_(std::move(options)), state_(prepare_state(std::move(model), options_)),
        engine_(state_, std::move(policies)..., loggers::ProgressBar(loggers::ProgressBarOptions{.enabled = options_.progress_bar}),
                metrics_file(options_)) {
    record_base_learning_rates();
    engine_.template run<Event::INIT>();
    engine_.template run<Event::BEFORE_LOAD>();
    if (!options_.load_path.empty()) load_checkpoint(options_.load_path);
    engine_.template run<Event::AFTER_LOAD>();
  }

  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Trains until `max_duration`; with `duration`, trains that much longer than the current time (in its
  /// unit). Fires `FIT_START` … `FIT_END`. Composer counterpart: `Trainer.fit(duration=...)`.
  void fit(std::optional<Time> duration = std::nullopt) {
    if (!options_.train_dataloader) throw std::invalid_argument("composer: fit() needs a train_dataloader");
    if (state_.optimizers.empty()) throw std::invalid_argument("composer: fit() needs at least one optimizer");
    if (duration) {
      if (duration->value() <= 0)
        throw std::invalid_argument("composer: fit(duration) needs a positive duration, got " + duration->to_string());
      state_.set_max_duration(*duration + state_.timestamp.get(duration->unit()));
    }
    if (!state_.max_duration())
      throw std::invalid_argument("composer: fit() needs a max_duration, in the options or as its argument");
    const Time max_duration = *state_.max_duration();
    if (state_.timestamp >= max_duration)
      throw std::invalid_argument("composer: training already reached max_duration " + max_duration.to_string() +
                                  " (at " + state_.timestamp.to_string() + "); call fit(duration) to train longer");
    activate_loader(options_.train_dataloader, "train");
    state_.model->train(true);
    engine_.template run<Event::FIT_START>();

    while (state_.timestamp < *state_.max_duration()) {
      if (state_.timestamp.batch_in_epoch().count() == 0) {
        if (state_.timestamp.epoch_in_iteration().count() == 0) engine_.template run<Event::ITERATION_START>();
        engine_.template run<Event::EPOCH_START>();
      }
      const bool epoch_finished = train_epoch();
      if (epoch_finished) end_epoch();
    }
    engine_.template run<Event::FIT_END>();
    if (has_eval() && last_eval_batch_ != state_.timestamp.batch().count()) evaluate(/*standalone=*/false);
    if (!options_.save_folder.empty() && last_save_batch_ != state_.timestamp.batch().count()) save_to_folder();
    for (auto& optimizer : state_.optimizers) optimizer->zero_grad();
  }

  /// Evaluates on the eval data loader and returns the metrics (`accuracy`, `cross_entropy`). Fires
  /// `EVAL_STANDALONE_START`, `EVAL_START` … `EVAL_END`, `EVAL_STANDALONE_END`. Composer counterpart:
  /// `Trainer.eval()`.
  MetricValues eval() {
    if (!has_eval()) throw std::invalid_argument("composer: eval() needs an eval_dataloader");
    engine_.template run<Event::EVAL_STANDALONE_START>();
    MetricValues values = run_evaluator();
    engine_.template run<Event::EVAL_STANDALONE_END>();
    return values;
  }

  /// Runs the model over `loader` (at most `subset_num_batches` batches, -1 for all) without gradients and
  /// returns its outputs on the CPU, one tensor per batch. Composer counterpart: `Trainer.predict`.
  std::vector<at::Tensor> predict(data::AnyLoader loader, std::int64_t subset_num_batches = -1) {
    if (!loader) throw std::invalid_argument("composer: predict() needs a data loader");
    const bool was_training = state_.model->is_training();
    auto previous = swap_active_loader(loader, "predict");
    state_.model->train(false);
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> outputs;
    state_.predict_timestamp = Timestamp{};
    engine_.template run<Event::PREDICT_START>();
    loader.start_epoch(0);
    for (std::int64_t i = 0; subset_num_batches < 0 || i < subset_num_batches; ++i) {
      auto batch = loader.next();
      if (!batch) break;
      state_.batch = to_device(*batch);
      engine_.template run<Event::PREDICT_BATCH_START>();
      engine_.template run<Event::PREDICT_BEFORE_FORWARD>();
      state_.outputs = forward_in_precision(state_.batch.inputs);
      engine_.template run<Event::PREDICT_AFTER_FORWARD>();
      outputs.push_back(state_.outputs.detach().to(at::kCPU));
      state_.predict_timestamp = state_.predict_timestamp.to_next_batch(state_.batch.inputs.size(0));
      engine_.template run<Event::PREDICT_BATCH_END>();
    }
    engine_.template run<Event::PREDICT_END>();
    restore_active_loader(std::move(previous));
    state_.model->train(was_training);
    return outputs;
  }

  /// Writes a checkpoint holding the model, optimizers, learning-rate bases, timestamp, random generator
  /// states, loss scale and every policy's own state, atomically. Composer counterpart:
  /// `Trainer.save_checkpoint`.
  void save_checkpoint(const std::string& path) {
    torch::serialize::OutputArchive archive;
    archive.write("composer/format", at::tensor(std::vector<std::int64_t>{checkpoint::format_version}));
    checkpoint::save_module(archive, state_.model.module());
    archive.write("optimizers/count", at::tensor(std::vector<std::int64_t>{
                                          static_cast<std::int64_t>(state_.optimizers.size())}));
    for (std::size_t i = 0; i < state_.optimizers.size(); ++i) {
      torch::serialize::OutputArchive sub;
      state_.optimizers[i]->save(sub);
      archive.write("optimizers/" + std::to_string(i), sub);
    }
    archive.write("schedulers/base_lrs",
                  at::tensor(base_learning_rates_, at::TensorOptions().dtype(at::kDouble)));
    checkpoint::save_timestamp(archive, "timestamp", state_.timestamp);
    checkpoint::save_rng(archive, state_.device);
    archive.write("rank_zero_seed",
                  at::tensor(std::vector<std::int64_t>{static_cast<std::int64_t>(state_.rank_zero_seed)}));
    archive.write("scaler/scale", at::tensor(std::vector<double>{scaler_.scale()}, at::TensorOptions().dtype(at::kDouble)));
    archive.write("policies/names", c10::IValue(joined_policy_names()));
    std::size_t index = 0;
    engine_.for_each_policy([&](const auto& policy) {
      using P = std::remove_cvref_t<decltype(policy)>;
      if constexpr (saves_state<P>) {
        torch::serialize::OutputArchive sub;
        policy.save_state(sub);
        archive.write("policies/" + std::to_string(index), sub);
      }
      ++index;
    });
    checkpoint::write_atomically(archive, path);
  }

  /// Restores a checkpoint written by `save_checkpoint` so that training continues exactly where it stopped.
  /// Everything is checked before the model changes; a checkpoint that does not fit (another model, other
  /// optimizers or policies) or a corrupt file is a `CheckpointError` naming the problem, and leaves the
  /// trainer as it was. Composer counterpart: `Trainer(load_path=...)`.
  void load_checkpoint(const std::string& path) {
    const std::string& where = path;
    auto archive = checkpoint::read(path);

    c10::IValue names;
    archive.read("policies/names", names);
    if (!names.isString() || names.toStringRef() != joined_policy_names())
      throw CheckpointError("composer: checkpoint '" + where + "' was saved with policies [" +
                            (names.isString() ? names.toStringRef() : std::string("?")) +
                            "] but this trainer has [" + joined_policy_names() + "]");
    const Timestamp timestamp = checkpoint::load_timestamp(archive, "timestamp", where);
    at::Tensor count, base_lrs, seed, scale;
    if (!archive.try_read("optimizers/count", count) ||
        count.item<std::int64_t>() != static_cast<std::int64_t>(state_.optimizers.size()))
      throw CheckpointError("composer: checkpoint '" + where + "' holds " +
                            (count.defined() ? std::to_string(count.item<std::int64_t>()) : std::string("no")) +
                            " optimizer(s), this trainer has " + std::to_string(state_.optimizers.size()));
    if (!archive.try_read("schedulers/base_lrs", base_lrs) ||
        base_lrs.numel() != static_cast<std::int64_t>(base_learning_rates_.size()))
      throw CheckpointError("composer: checkpoint '" + where + "' does not hold one base learning rate per "
                            "parameter group of this trainer's optimizers");
    if (!archive.try_read("rank_zero_seed", seed) || !archive.try_read("scaler/scale", scale))
      throw CheckpointError("composer: checkpoint '" + where + "' lacks its seed or loss scale");

    std::vector<std::string> snapshots;
    for (auto& optimizer : state_.optimizers) snapshots.push_back(checkpoint::optimizer_snapshot(*optimizer));
    auto roll_back = [&] {
      for (std::size_t i = 0; i < state_.optimizers.size(); ++i)
        checkpoint::restore_optimizer(*state_.optimizers[i], snapshots[i]);
    };
    auto restore_policies = [&](auto restores_now) {
      std::size_t index = 0;
      engine_.for_each_policy([&](auto& policy) {
        using P = std::remove_cvref_t<decltype(policy)>;
        if constexpr (std::remove_cvref_t<decltype(restores_now)>::template value<P>) {
          torch::serialize::InputArchive sub;
          if (!archive.try_read("policies/" + std::to_string(index), sub))
            throw CheckpointError("composer: checkpoint '" + where + "' has no state for policy " + policy_name<P>());
          if constexpr (loads_state_into_state<P>)
            policy.load_state(sub, state_);
          else
            policy.load_state(sub);
        }
        ++index;
      });
    };
    try {
      // Policies that reshape the model or optimizers go first, so the optimizers' state fits again.
      restore_policies(checkpoint::restored_with_state{});
      for (std::size_t i = 0; i < state_.optimizers.size(); ++i) {
        torch::serialize::InputArchive sub;
        if (!archive.try_read("optimizers/" + std::to_string(i), sub))
          throw CheckpointError("composer: checkpoint '" + where + "' has no state for optimizer " + std::to_string(i));
        state_.optimizers[i]->load(sub);
        // The checkpoint was read onto the CPU: the optimizer's state (momenta, moments) joins its parameters.
        if (!state_.device.is_cpu()) checkpoint::move_optimizer_state(*state_.optimizers[i], state_.device);
      }
      restore_policies(checkpoint::restored_alone{});
      checkpoint::load_module(archive, state_.model.module(), where);
    } catch (const CheckpointError&) {
      roll_back();
      throw;
    } catch (const std::exception& error) {
      roll_back();
      throw CheckpointError("composer: checkpoint '" + where + "' could not be restored: " + error.what());
    }
    const auto base = base_lrs.to(at::kDouble).contiguous();
    for (std::size_t i = 0; i < base_learning_rates_.size(); ++i) base_learning_rates_[i] = base.data_ptr<double>()[i];
    state_.timestamp = timestamp;
    state_.previous_timestamp = timestamp;
    state_.rank_zero_seed = static_cast<std::uint64_t>(seed.item<std::int64_t>());
    scaler_.set_scale(scale.item<double>());
    checkpoint::load_rng(archive, state_.device, where);
    last_eval_batch_ = last_save_batch_ = timestamp.batch().count();
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
  /// The checkpoints written to `save_folder` so far, oldest first.
  const std::vector<std::string>& saved_checkpoints() const noexcept { return saved_checkpoints_; }

 private:
  static loggers::MetricsFile metrics_file(const TrainerOptions& options) {
    if (options.metrics_file.empty()) return loggers::MetricsFile();
    return loggers::MetricsFile(options.metrics_file);
  }

  static State prepare_state(Model model, const TrainerOptions& options) {
    if (!model) throw std::invalid_argument("composer: the Trainer needs a model");
    if (options.device_train_microbatch_size && *options.device_train_microbatch_size <= 0)
      throw std::invalid_argument("composer: device_train_microbatch_size must be positive, got " +
                                  std::to_string(*options.device_train_microbatch_size));
    if (!(options.scale_schedule_ratio > 0))
      throw std::invalid_argument("composer: scale_schedule_ratio must be positive");
    for (const auto& [name, interval] : {std::pair{"eval_interval", options.eval_interval},
                                         std::pair{"save_interval", options.save_interval}})
      if (interval.unit() != TimeUnit::EPOCH && interval.unit() != TimeUnit::BATCH)
        throw std::invalid_argument(std::string("composer: ") + name + " must be in ep or ba, got " +
                                    interval.to_string());
    if (options.save_interval.value() <= 0 && !options.save_folder.empty())
      throw std::invalid_argument("composer: save_interval must be positive when save_folder is set");
    if (options.device.is_cuda()) {
      const std::int64_t gpus = at::globalContext().hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
      if (gpus == 0)
        throw std::invalid_argument("composer: device " + options.device.str() +
                                    " needs a LibTorch built with CUDA and a visible GPU; this process sees none");
      if (options.device.has_index() && options.device.index() >= gpus)
        throw std::invalid_argument("composer: device " + options.device.str() + " does not exist: this process sees " +
                                    std::to_string(gpus) + " GPU(s)");
    }
    if (options.precision != Precision::fp32 && !options.device.is_cuda())
      throw std::invalid_argument("composer: precision " + std::string(to_string(options.precision)) +
                                  " needs a CUDA device");
    for (const auto& optimizer : options.optimizers)
      if (!optimizer) throw std::invalid_argument("composer: an optimizer in the options is null");

    const std::uint64_t seed = options.seed ? *options.seed : std::random_device{}();
    at::manual_seed(seed);
    if (options.device.is_cuda()) {
      at::Generator cuda_generator = at::globalContext().defaultGenerator(options.device);
      cuda_generator.set_current_seed(seed);
    }
    if (options.deterministic_mode) at::globalContext().setDeterministicAlgorithms(true, false);

    model->to(options.device);
    State state(std::move(model), std::nullopt, seed);
    state.optimizers = options.optimizers;
    state.schedulers = options.schedulers;
    state.precision = options.precision;
    state.device = options.device;
    state.device_train_microbatch_size = options.device_train_microbatch_size;
    state.run_name = options.run_name;
    if (options.max_duration) {
      Time duration = *options.max_duration;
      if (options.scale_schedule_ratio != 1.0) {
        if (options.schedulers.empty())
          throw std::invalid_argument("composer: scale_schedule_ratio needs at least one scheduler");
        duration = duration * options.scale_schedule_ratio;
        if (duration.value() == 0)
          throw std::invalid_argument("composer: scale_schedule_ratio " + std::to_string(options.scale_schedule_ratio) +
                                      " scales max_duration " + options.max_duration->to_string() + " to zero");
      }
      state.set_max_duration(duration);
    }
    return state;
  }

  void record_base_learning_rates() {
    base_learning_rates_.clear();
    for (const auto& optimizer : state_.optimizers)
      for (const auto& group : optimizer->param_groups()) base_learning_rates_.push_back(group.options().get_lr());
    scaler_ = LossScaler(state_.precision == Precision::amp_fp16);
  }

  bool has_eval() const { return static_cast<bool>(options_.eval_dataloader) && options_.eval_interval.value() > 0; }

  void activate_loader(data::AnyLoader& loader, const char* label) {
    state_.dataloader = &loader;
    state_.dataloader_label = label;
    state_.dataloader_len = loader.size();
  }

  struct ActiveLoader {
    std::any dataloader;
    std::string label;
    std::optional<std::int64_t> len;
  };
  ActiveLoader swap_active_loader(data::AnyLoader& loader, const char* label) {
    ActiveLoader previous{state_.dataloader, state_.dataloader_label, state_.dataloader_len};
    activate_loader(loader, label);
    return previous;
  }
  void restore_active_loader(ActiveLoader previous) {
    state_.dataloader = std::move(previous.dataloader);
    state_.dataloader_label = std::move(previous.label);
    state_.dataloader_len = previous.len;
  }

  Batch to_device(const Batch& batch) const {
    if (batch.inputs.device() == state_.device && batch.targets.device() == state_.device) return batch;
    return Batch{batch.inputs.to(state_.device, /*non_blocking=*/true),
                 batch.targets.to(state_.device, /*non_blocking=*/true)};
  }

  static void check_batch(const Batch& batch, const char* where) {
    if (!batch.inputs.defined() || !batch.targets.defined())
      throw std::invalid_argument(std::string("composer: the ") + where + " data loader yielded a batch without inputs or targets");
    if (batch.inputs.dim() == 0 || batch.targets.dim() == 0 || batch.inputs.size(0) != batch.targets.size(0))
      throw std::invalid_argument(std::string("composer: the ") + where + " data loader yielded " +
                                  (batch.inputs.dim() ? std::to_string(batch.inputs.size(0)) : std::string("0-d")) +
                                  " inputs but " +
                                  (batch.targets.dim() ? std::to_string(batch.targets.size(0)) : std::string("0-d")) +
                                  " targets in one batch");
  }

  // One epoch (or its remainder): returns whether the epoch's data was used up, so that it ends.
  bool train_epoch() {
    auto& loader = options_.train_dataloader;
    const std::int64_t epoch = state_.timestamp.epoch().count();
    const std::int64_t resume_at = state_.timestamp.batch_in_epoch().count();
    loader.start_epoch(epoch, resume_at);
    const Time max_duration = *state_.max_duration();
    while (true) {
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
      if (!state_.train_batch_size) state_.train_batch_size = samples;  // the loader's batch size, from its first batch
      state_.batch = std::move(*batch);
      // The fusion plan decides whether this batch's input stages run as one pass per microbatch (then their
      // parameters are drawn here and at BEFORE_FORWARD) or eagerly.
      fused_inputs_.begin_batch(state_, options_.fuse_batch_transforms);
      fused_inputs_.template run<Event::AFTER_DATALOADER>(engine_, state_);
      engine_.template run<Event::BATCH_START>();
      apply_schedulers();
      const double loss = train_batch();
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
      state_.previous_timestamp = state_.timestamp;
      state_.timestamp = state_.timestamp.to_next_batch(samples, 0, took);
      log_batch(loss);
      engine_.template run<Event::BATCH_END>();
      if (interval_crossed(options_.eval_interval, TimeUnit::BATCH) && has_eval()) evaluate(false);
      engine_.template run<Event::BATCH_CHECKPOINT>();
      if (interval_crossed(options_.save_interval, TimeUnit::BATCH) && !options_.save_folder.empty()) save_to_folder();
      if (state_.timestamp >= max_duration) {
        const auto len = loader.size();
        return len && state_.timestamp.batch_in_epoch().count() >= *len;
      }
    }
  }

  void end_epoch() {
    state_.previous_timestamp = state_.timestamp;
    state_.timestamp = state_.timestamp.to_next_epoch();
    engine_.template run<Event::EPOCH_END>();
    if (interval_crossed(options_.eval_interval, TimeUnit::EPOCH) && has_eval()) evaluate(false);
    engine_.template run<Event::EPOCH_CHECKPOINT>();
    if (interval_crossed(options_.save_interval, TimeUnit::EPOCH) && !options_.save_folder.empty()) save_to_folder();
  }

  // Whether the last advance of the timestamp crossed a multiple of `interval` (in `unit` only).
  bool interval_crossed(const Time& interval, TimeUnit unit) const {
    if (interval.unit() != unit || interval.count() <= 0) return false;
    const std::int64_t before = state_.previous_timestamp.get(unit).count();
    const std::int64_t now = state_.timestamp.get(unit).count();
    return before / interval.count() != now / interval.count();
  }

  void apply_schedulers() {
    if (state_.schedulers.empty()) return;
    if (!options_.step_schedulers_every_batch && state_.timestamp.batch_in_epoch().count() != 0) return;
    double multiplier = 1.0;
    for (const auto& scheduler : state_.schedulers) multiplier *= scheduler(state_, options_.scale_schedule_ratio);
    std::size_t index = 0;
    for (auto& optimizer : state_.optimizers)
      for (auto& group : optimizer->param_groups()) group.options().set_lr(base_learning_rates_[index++] * multiplier);
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
      total = train_microbatch(full, 1.0);
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
        at::Tensor part = train_microbatch(Batch{inputs[i], targets[i]}, share);
        total = total.defined() ? total + part : part;
      }
    }
    state_.batch = full;
    last_loss_ = total.item<double>();
    if (!std::isfinite(last_loss_))
      throw NonFiniteLossError("composer: the training loss is " + std::string(std::isnan(last_loss_) ? "NaN" : "infinite") +
                               " at step " + std::to_string(state_.timestamp.batch().count() + 1) + " (epoch " +
                               std::to_string(state_.timestamp.epoch().count()) + ", batch " +
                               std::to_string(state_.timestamp.batch_in_epoch().count()) +
                               " of the epoch, counting from 0); this step's update was not applied");
    finite_gradients_ = !scaler_.enabled() || scaler_.unscale(all_parameters());
    engine_.template run<Event::AFTER_TRAIN_BATCH>();
    return total;
  }

  // The model's forward pass under the state's precision (CUDA autocast for amp_*).
  at::Tensor forward_in_precision(const at::Tensor& inputs) {
    PrecisionContext precision(state_.precision, state_.device);
    return state_.model.forward(inputs);
  }

  // BEFORE_FORWARD … AFTER_BACKWARD on one microbatch; returns its loss times `share`, detached.
  at::Tensor train_microbatch(const Batch& microbatch, double share) {
    state_.batch = to_device(microbatch);
    fused_inputs_.template run<Event::BEFORE_FORWARD>(engine_, state_);
    state_.outputs = forward_in_precision(state_.batch.inputs);
    engine_.template run<Event::AFTER_FORWARD>();
    engine_.template run<Event::BEFORE_LOSS>();
    {
      PrecisionContext precision(state_.precision, state_.device);
      state_.loss = state_.model.loss(state_.outputs, state_.batch.targets);
    }
    engine_.template run<Event::AFTER_LOSS>();
    engine_.template run<Event::BEFORE_BACKWARD>();
    const at::Tensor scaled = share == 1.0 ? state_.loss : state_.loss * share;
    scaler_.scale_loss(scaled).backward();
    engine_.template run<Event::AFTER_BACKWARD>();
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
    logger.log_metrics(metrics);
  }

  // EVAL_BEFORE_ALL, the evaluator, EVAL_AFTER_ALL.
  void evaluate(bool standalone) {
    if (!standalone) engine_.template run<Event::EVAL_BEFORE_ALL>();
    run_evaluator();
    if (!standalone) engine_.template run<Event::EVAL_AFTER_ALL>();
  }

  MetricValues run_evaluator() {
    auto& loader = options_.eval_dataloader;
    const bool was_training = state_.model->is_training();
    const Batch train_batch = state_.batch;
    auto previous = swap_active_loader(loader, "eval");
    state_.model->train(false);
    metrics::ClassificationMetrics metrics;
    {
      at::NoGradGuard no_grad;
      state_.eval_timestamp = Timestamp{};
      engine_.template run<Event::EVAL_START>();
      loader.start_epoch(0);
      for (std::int64_t i = 0; options_.eval_subset_num_batches < 0 || i < options_.eval_subset_num_batches; ++i) {
        auto batch = loader.next();
        if (!batch) break;
        check_batch(*batch, "evaluation");
        state_.batch = to_device(*batch);
        engine_.template run<Event::EVAL_BATCH_START>();
        engine_.template run<Event::EVAL_BEFORE_FORWARD>();
        state_.outputs = forward_in_precision(state_.batch.inputs);
        engine_.template run<Event::EVAL_AFTER_FORWARD>();
        metrics.update(state_.outputs, state_.batch.targets);
        state_.eval_timestamp = state_.eval_timestamp.to_next_batch(state_.batch.inputs.size(0));
        engine_.template run<Event::EVAL_BATCH_END>();
      }
    }
    if (metrics.count() == 0) throw std::runtime_error("composer: the evaluation data loader yielded no batch");
    MetricValues values = metrics.compute();
    state_.eval_metric_values["eval"] = values;
    Metrics logged;
    for (const auto& [name, value] : values) logged["metrics/eval/" + name] = value;
    logged["time/train_seconds"] = state_.timestamp.total_wct().count();
    engine_.logger().log_metrics(logged);
    engine_.template run<Event::EVAL_END>();
    last_eval_batch_ = state_.timestamp.batch().count();
    restore_active_loader(std::move(previous));
    state_.batch = train_batch;
    state_.model->train(was_training);
    return values;
  }

  std::string joined_policy_names() const {
    std::string names;
    ((names += (names.empty() ? "" : ", ") + policy_name<Policies>()), ...);
    return names;
  }

  // Saves ep{E}-ba{B}-rank{R}.pt in save_folder, points latest.pt at it, and drops the oldest beyond the limit.
  void save_to_folder() {
    const std::string& folder = options_.save_folder;
    const std::string name = "ep" + std::to_string(state_.timestamp.epoch().count()) + "-ba" +
                             std::to_string(state_.timestamp.batch().count()) + "-rank" + std::to_string(state_.rank) + ".pt";
    const std::string path = io::join(folder, name);
    save_checkpoint(path);
    last_save_batch_ = state_.timestamp.batch().count();
    saved_checkpoints_.erase(std::remove(saved_checkpoints_.begin(), saved_checkpoints_.end(), path), saved_checkpoints_.end());
    saved_checkpoints_.push_back(path);
    const std::string link = io::join(folder, "latest-rank" + std::to_string(state_.rank) + ".pt");
    const std::string tmp_link = link + ".tmp";
    try {  // the link is a convenience: a file system without links still gets its checkpoints
      io::remove(tmp_link);
      io::create_symlink(name, tmp_link);
      io::rename(tmp_link, link);
    } catch (const io::FileError&) {
    }
    const int keep = options_.save_num_checkpoints_to_keep;
    while (keep >= 0 && saved_checkpoints_.size() > static_cast<std::size_t>(keep)) {
      try {
        io::remove(saved_checkpoints_.front());
      } catch (const io::FileError&) {
      }
      saved_checkpoints_.erase(saved_checkpoints_.begin());
    }
  }

  TrainerOptions options_;
  State state_;
  engine_type engine_;
  FusedInputRunner<engine_type> fused_inputs_;
  std::vector<double> base_learning_rates_;
  LossScaler scaler_;
  double last_loss_ = 0.0;
  bool finite_gradients_ = true;
  std::int64_t last_eval_batch_ = -1;
  std::int64_t last_save_batch_ = -1;
  std::vector<std::string> saved_checkpoints_;
};

}  // namespace COMPOSER_FUSION_ABI_NAMESPACE

}  // namespace composer
