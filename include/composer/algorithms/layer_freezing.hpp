#pragma once
/// \file
/// composer::algorithms::LayerFreezing — freezes the earliest layers progressively during training (after
/// FreezeOut, Brock et al. 2017, arXiv:1706.04983, and Freeze Training, Raghu et al. 2017, arXiv:1706.05806).

#include <stdexcept>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/layer_freezing.hpp>

namespace composer::algorithms {

/// Settings of `LayerFreezing`, with Composer's defaults.
struct LayerFreezingOptions {
  /// Fraction of training before freezing begins, in [0, 1).
  double freeze_start = 0.5;
  /// Fraction of the layers frozen at the end of training, in [0, 1].
  double freeze_level = 1.0;
};

/// LayerFreezing: at every `EPOCH_END`, with d the elapsed fraction of training, freezes the first
/// int(F · (L − 1)) of the model's L leaf layers, F = freeze_level · (d − freeze_start) / (1 − freeze_start)
/// once d > freeze_start (see `functional::freeze_layers`): their parameters leave the optimizers' groups
/// and stop requiring gradients. Frozen layers are never unfrozen. Logs `layer_freezing/layers_frozen` and
/// `layer_freezing/percentage_frozen` (F). Its checkpoint state is the elapsed fraction at which it last froze:
/// loading re-freezes the same layers before the optimizers are restored, so a run that froze layers resumes
/// exactly (Composer cannot resume such a run: its optimizer groups no longer match).
/// Composer counterpart: `composer.algorithms.LayerFreezing(freeze_start=0.5, freeze_level=1.0)`.
class LayerFreezing {
 public:
  /// Freezing is decided at the end of each epoch.
  static constexpr EventSet events{Event::EPOCH_END};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "LayerFreezing";

  /// LayerFreezing with Composer's defaults.
  LayerFreezing() : LayerFreezing(LayerFreezingOptions{}) {}
  /// LayerFreezing with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit LayerFreezing(double freeze_start, double freeze_level = 1.0)
      : LayerFreezing(LayerFreezingOptions{.freeze_start = freeze_start, .freeze_level = freeze_level}) {}
  /// LayerFreezing with the given options: `LayerFreezing({.freeze_start = 0.2})`.
  /// \throws std::invalid_argument for freeze_start outside [0, 1) or freeze_level outside [0, 1].
  explicit LayerFreezing(LayerFreezingOptions options) : options_(options) {
    functional::check_freeze_arguments(options_.freeze_start, options_.freeze_level);
  }

  /// The settings.
  const LayerFreezingOptions& options() const noexcept { return options_; }
  /// What the last application did.
  const functional::FreezeResult& last_result() const noexcept { return last_; }

  /// Freezes the layers scheduled for the elapsed duration.
  /// \throws std::logic_error without a max_duration.
  void apply(auto event, State& state, const Logger& logger) {
    static_assert(decltype(event)::value == Event::EPOCH_END);
    const auto elapsed = state.get_elapsed_duration();
    if (!elapsed) throw std::logic_error("composer: LayerFreezing needs the state's max_duration");
    last_ = functional::freeze_layers(state.model.module(), state.optimizers, elapsed->value(), options_.freeze_start,
                                      options_.freeze_level);
    applied_at_ = elapsed->value();
    if (logger.has_metrics_destination())
      logger.log_metrics({{"layer_freezing/layers_frozen", static_cast<double>(last_.layers_frozen)},
                          {"layer_freezing/percentage_frozen", last_.fraction}});
  }

  /// Saves the elapsed fraction at which layers were last frozen (−1: never).
  void save_state(torch::serialize::OutputArchive& archive) const {
    archive.write("applied_at", at::tensor(std::vector<double>{applied_at_}, at::TensorOptions().dtype(at::kDouble)));
  }
  /// Re-freezes the layers frozen when the checkpoint was saved (called before the optimizers are restored).
  void load_state(torch::serialize::InputArchive& archive, State& state) {
    at::Tensor applied_at;
    archive.read("applied_at", applied_at);
    applied_at_ = applied_at.item<double>();
    if (applied_at_ >= 0)
      last_ = functional::freeze_layers(state.model.module(), state.optimizers, applied_at_, options_.freeze_start,
                                        options_.freeze_level);
  }

 private:
  LayerFreezingOptions options_;
  functional::FreezeResult last_;
  double applied_at_ = -1.0;
};

}  // namespace composer::algorithms
