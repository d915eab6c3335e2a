#pragma once
/// \file
/// composer::algorithms::StochasticDepth — residual blocks dropped at random during training (Huang et al. 2016,
/// "Deep Networks with Stochastic Depth", arXiv:1603.09382).

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/stochastic_depth.hpp>
#include <composer/modules/stochastic_depth.hpp>
#include <composer/surgery/module_surgery.hpp>

namespace composer::algorithms {

/// Settings of `StochasticDepth`, with Composer's defaults.
struct StochasticDepthOptions {
  /// The block made stochastic: "ResNetBasicBlock" (`models::BasicBlock`), the only one supported (Composer's
  /// argument has no default; its only value there is "ResNetBottleneck").
  std::string target_layer_name = std::string(functional::resnet_basic_block);
  /// "block" drops whole residual branches, "sample" drops them per sample.
  std::string stochastic_method = "block";
  /// The base probability of dropping, in [0, 1].
  double drop_rate = 0.2;
  /// How `drop_rate` is spread over depth: "linear" gives the i-th of L blocks (i from 0) (i + 1) / L ·
  /// drop_rate, "uniform" gives every block drop_rate.
  std::string drop_distribution = "linear";
  /// Fraction of training over which the base rate rises linearly from 0 to `drop_rate` (0: no warm-up).
  double drop_warmup = 0.0;
};

/// StochasticDepth: at `INIT`, makes every target block stochastic (`functional::apply_stochastic_depth`) and logs
/// `stochastic_depth/num_stochastic_layers`. With `drop_warmup` w > 0 it also runs at every `BATCH_START`: with d
/// the elapsed fraction of training, the base rate is d / w · drop_rate while d < w and drop_rate afterwards; the
/// blocks' rates are set from it (`functional::set_stochastic_drop_rates`) and it is logged as
/// `stochastic_depth/drop_rate`. Its checkpoint state is the base rate the blocks were last set from, restored
/// into the blocks on load, so evaluation right after a resume scales as the saved run did.
/// Composer counterpart: `composer.algorithms.StochasticDepth(target_layer_name, stochastic_method='block',
/// drop_rate=0.2, drop_distribution='linear', drop_warmup=0.0)`. Differences: `target_layer_name` defaults to
/// "ResNetBasicBlock"; `drop_warmup` is a fraction of training (Composer also takes a time string, which must be
/// in `dur` anyway); once the warm-up is over the blocks get the full `drop_rate` (Composer stops updating them,
/// leaving the rate of the last warm-up batch).
class StochasticDepth {
 public:
  /// Surgery at `INIT`; the warm-up schedule at `BATCH_START` (guarded by `match`).
  static constexpr EventSet events{Event::INIT, Event::BATCH_START};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "StochasticDepth";
  /// It changes the model between the data loader and the forward pass, never the inputs.
  static constexpr bool touches_inputs = false;

  /// StochasticDepth with Composer's defaults on `models::BasicBlock`.
  StochasticDepth() : StochasticDepth(StochasticDepthOptions{}) {}
  /// StochasticDepth with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit StochasticDepth(std::string_view target_layer_name, std::string_view stochastic_method = "block",
                           double drop_rate = 0.2, std::string_view drop_distribution = "linear",
                           double drop_warmup = 0.0)
      : StochasticDepth(StochasticDepthOptions{.target_layer_name = std::string(target_layer_name),
                                               .stochastic_method = std::string(stochastic_method),
                                               .drop_rate = drop_rate,
                                               .drop_distribution = std::string(drop_distribution),
                                               .drop_warmup = drop_warmup}) {}
  /// StochasticDepth with the given options: `StochasticDepth({.drop_rate = 0.1, .drop_warmup = 0.2})`.
  /// \throws std::invalid_argument for an unsupported target_layer_name, stochastic_method or drop_distribution,
  ///         a drop_rate outside [0, 1], a negative drop_warmup, or a drop_warmup with the "sample" method.
  explicit StochasticDepth(StochasticDepthOptions options) : options_(std::move(options)) {
    functional::check_stochastic_depth_arguments(options_.target_layer_name, options_.stochastic_method,
                                                 options_.drop_rate, options_.drop_distribution,
                                                 options_.drop_warmup);
    current_drop_rate_ = options_.drop_rate;
  }

  /// The settings.
  const StochasticDepthOptions& options() const noexcept { return options_; }
  /// Stochastic blocks in the model after `INIT`.
  std::int64_t num_stochastic_layers() const noexcept { return num_layers_; }
  /// The base rate the blocks' rates were last set from.
  double current_drop_rate() const noexcept { return current_drop_rate_; }
  /// What the surgery at `INIT` replaced.
  const surgery::SurgeryReport& last_report() const noexcept { return report_; }

  /// `INIT` always; `BATCH_START` only with a warm-up (Composer's `match`).
  bool match(Event event, const State&) const noexcept {
    return event == Event::INIT || (event == Event::BATCH_START && options_.drop_warmup > 0.0);
  }

  /// The surgery (`INIT`) or the warm-up step (`BATCH_START`).
  /// \throws std::logic_error at `BATCH_START` without a max_duration.
  void apply(auto event, State& state, const Logger& logger) {
    if constexpr (event == Event::INIT) {
      report_ = functional::apply_stochastic_depth(state.model.module(), options_.target_layer_name,
                                                   options_.stochastic_method, options_.drop_rate,
                                                   options_.drop_distribution, state.optimizers);
      num_layers_ = static_cast<std::int64_t>(
          surgery::count_module_instances<modules::StochasticBasicBlockImpl>(state.model.module()));
      current_drop_rate_ = options_.drop_rate;
      logger.log_metrics({{"stochastic_depth/num_stochastic_layers", static_cast<double>(num_layers_)}});
    } else if constexpr (event == Event::BATCH_START) {
      if (num_layers_ == 0) return;
      const auto elapsed = state.get_elapsed_duration();
      if (!elapsed) throw std::logic_error("composer: StochasticDepth's drop_warmup needs the state's max_duration");
      const double d = elapsed->value();
      const double rate = d < options_.drop_warmup ? d / options_.drop_warmup * options_.drop_rate : options_.drop_rate;
      if (rate != current_drop_rate_) {
        functional::set_stochastic_drop_rates(state.model.module(), rate, options_.drop_distribution);
        current_drop_rate_ = rate;
      }
      logger.log_metrics({{"stochastic_depth/drop_rate", rate}});
    }
  }

  /// Saves the base rate the blocks were last set from.
  void save_state(torch::serialize::OutputArchive& archive) const {
    archive.write("current_drop_rate",
                  at::tensor(std::vector<double>{current_drop_rate_}, at::TensorOptions().dtype(at::kDouble)));
  }
  /// Restores that rate and sets the model's stochastic blocks from it (the blocks exist: `INIT` ran first).
  void load_state(torch::serialize::InputArchive& archive, State& state) {
    at::Tensor rate;
    archive.read("current_drop_rate", rate);
    current_drop_rate_ = rate.item<double>();
    if (num_layers_ > 0)
      functional::set_stochastic_drop_rates(state.model.module(), current_drop_rate_, options_.drop_distribution);
  }

 private:
  StochasticDepthOptions options_;
  surgery::SurgeryReport report_;
  std::int64_t num_layers_ = 0;
  double current_drop_rate_ = 0.0;
};

}  // namespace composer::algorithms
