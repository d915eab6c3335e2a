#pragma once
/// \file
/// composer::Engine — the Engine over composer::State, as the Welcome Tour uses it.

#include <composer/core/engine.hpp>
#include <composer/core/state.hpp>

namespace composer {

/// `Engine<MixUp, LabelSmoothing>`: a `BasicEngine` over `composer::State`. Composer counterpart:
/// `composer.core.Engine(state, algorithms)`.
template <class... Policies>
using Engine = BasicEngine<State, Policies...>;

}  // namespace composer
