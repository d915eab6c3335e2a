#pragma once
/// \file
/// The evaluation and prediction loops: the model without gradients over a data loader, firing the EVAL_* or
/// PREDICT_* events, with the training batch, data loader and mode put back afterwards.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/data/any_loader.hpp>
#include <composer/distributed/metric_reduction.hpp>
#include <composer/trainer/active_loader.hpp>
#include <composer/trainer/device_batch.hpp>
#include <composer/trainer/evaluator_schedule.hpp>
#include <composer/trainer/precision_context.hpp>

namespace composer {

/// The model's forward pass on `inputs` under the state's precision (CUDA autocast for `amp_*`). Composer
/// counterpart: `model(batch)` inside `get_precision_context`.
inline at::Tensor forward_in_precision(State& state, const at::Tensor& inputs) {
  PrecisionContext precision(state.precision, state.device);
  return state.model.forward(inputs);
}

/// Evaluates the model with `evaluator` (on its data loader, at most its `subset_num_batches` batches), firing
/// `EVAL_START` (with its loader active under its label), the `EVAL_BATCH_*` and `EVAL_*_FORWARD` events per batch,
/// then storing its metrics in `state.eval_metric_values[label]`, logging them (`metrics/<label>/<name>`) and firing
/// `EVAL_END`; returns the metrics. In a data-parallel run (`group`), each rank evaluates its shard and the metrics
/// are those of every rank's samples (`dist::compute_over_ranks`). Composer counterpart: `Trainer._eval_loop`.
/// \throws std::runtime_error when the loader yields no batch.
template <class Engine>
MetricValues run_evaluation(Engine& engine, State& state, ScheduledEvaluator& evaluator,
                            const dist::ProcessGroup* group = nullptr) {
  const bool was_training = state.model->is_training();
  const Batch train_batch = state.batch;
  auto previous = swap_active_loader(state, evaluator.dataloader, evaluator.label, evaluator.subset_num_batches);
  state.model->train(false);
  evaluator.metrics.reset();
  std::int64_t batches = 0;
  {
    at::NoGradGuard no_grad;
    state.eval_timestamp = Timestamp{};
    engine.template run<Event::EVAL_START>();
    evaluator.dataloader.start_epoch(0);
    for (; evaluator.subset_num_batches < 0 || batches < evaluator.subset_num_batches; ++batches) {
      auto batch = evaluator.dataloader.next();
      if (!batch) break;
      check_batch(*batch, "evaluation");
      state.batch = to_device(*batch, state.device);
      engine.template run<Event::EVAL_BATCH_START>();
      engine.template run<Event::EVAL_BEFORE_FORWARD>();
      state.outputs = forward_in_precision(state, state.batch.inputs);
      engine.template run<Event::EVAL_AFTER_FORWARD>();
      evaluator.metrics.update(state.outputs, state.batch.targets);
      state.eval_timestamp = state.eval_timestamp.to_next_batch(state.batch.inputs.size(0));
      engine.template run<Event::EVAL_BATCH_END>();
    }
  }
  if (batches == 0)
    throw std::runtime_error("composer: the data loader of evaluator '" + evaluator.label + "' yielded no batch");
  MetricValues values = evaluator.keep_selected(
      dist::compute_over_ranks(evaluator.metrics, group, "evaluator '" + evaluator.label + "'"));
  state.eval_metric_values[evaluator.label] = values;
  Metrics logged;
  for (const auto& [name, value] : values) logged["metrics/" + evaluator.label + "/" + name] = value;
  logged["time/train_seconds"] = state.timestamp.total_wct().count();
  engine.logger().log_metrics(logged);
  engine.template run<Event::EVAL_END>();
  restore_active_loader(state, std::move(previous));
  state.batch = train_batch;
  state.model->train(was_training);
  return values;
}

/// Runs the model over `loader` (at most `subset_num_batches` batches, -1 for all) without gradients, firing
/// `PREDICT_START`, the `PREDICT_BATCH_*` and `PREDICT_*_FORWARD` events per batch and `PREDICT_END`, and returns
/// its outputs on the CPU, one tensor per batch. Composer counterpart: `Trainer.predict`'s loop.
template <class Engine>
std::vector<at::Tensor> run_prediction(Engine& engine, State& state, data::AnyLoader& loader,
                                       std::int64_t subset_num_batches) {
  const bool was_training = state.model->is_training();
  auto previous = swap_active_loader(state, loader, "predict");
  state.model->train(false);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> outputs;
  state.predict_timestamp = Timestamp{};
  engine.template run<Event::PREDICT_START>();
  loader.start_epoch(0);
  for (std::int64_t i = 0; subset_num_batches < 0 || i < subset_num_batches; ++i) {
    auto batch = loader.next();
    if (!batch) break;
    state.batch = to_device(*batch, state.device);
    engine.template run<Event::PREDICT_BATCH_START>();
    engine.template run<Event::PREDICT_BEFORE_FORWARD>();
    state.outputs = forward_in_precision(state, state.batch.inputs);
    engine.template run<Event::PREDICT_AFTER_FORWARD>();
    outputs.push_back(state.outputs.detach().to(at::kCPU));
    state.predict_timestamp = state.predict_timestamp.to_next_batch(state.batch.inputs.size(0));
    engine.template run<Event::PREDICT_BATCH_END>();
  }
  engine.template run<Event::PREDICT_END>();
  restore_active_loader(state, std::move(previous));
  state.model->train(was_training);
  return outputs;
}

}  // namespace composer
