#pragma once
/// \file
/// composer::algorithms::ChannelsLast — stores the model's 4-D weights in the channels-last (NHWC) memory format.

#include <cstddef>

#include <composer/core/event.hpp>
#include <composer/core/state.hpp>
#include <composer/functional/channels_last.hpp>

namespace composer::algorithms {

/// ChannelsLast: at `INIT`, converts every 4-D parameter and buffer of the model to the channels-last memory
/// format in place (`functional::apply_channels_last`), keeping the parameters the optimizers hold. Convolutions
/// then produce channels-last activations, which GPU convolution kernels usually run faster on. No arguments,
/// nothing logged, no checkpoint state. Composer counterpart: `composer.algorithms.ChannelsLast()`.
class ChannelsLast {
 public:
  /// Converted once, when training is set up.
  static constexpr EventSet events{Event::INIT};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "ChannelsLast";

  /// How many 4-D parameters and buffers the conversion at `INIT` visited.
  std::size_t converted() const noexcept { return converted_; }

  /// Converts the model.
  void apply(auto event, State& state) {
    static_assert(decltype(event)::value == Event::INIT);
    converted_ = functional::apply_channels_last(state.model.module());
  }

 private:
  std::size_t converted_ = 0;
};

}  // namespace composer::algorithms
