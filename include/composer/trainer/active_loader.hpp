#pragma once
/// \file
/// Which data loader the State shows as active (`state.dataloader`, its label and length), and swapping it for
/// evaluation or prediction and back.

#include <any>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <composer/core/state.hpp>
#include <composer/data/any_loader.hpp>

namespace composer {

/// Makes `loader` the State's active data loader under `label` ("train", "eval", "predict"). Composer
/// counterpart: `State.set_dataloader`.
inline void activate_loader(State& state, data::AnyLoader& loader, const char* label) {
  state.dataloader = &loader;
  state.dataloader_label = label;
  state.dataloader_len = loader.size();
}

/// The State's active data loader, as set aside by `swap_active_loader`.
struct ActiveLoader {
  /// The loader (`state.dataloader`).
  std::any dataloader;
  /// Its label (`state.dataloader_label`).
  std::string label;
  /// Its length (`state.dataloader_len`).
  std::optional<std::int64_t> len;
};

/// Makes `loader` active under `label` and returns the loader that was active, for `restore_active_loader`.
inline ActiveLoader swap_active_loader(State& state, data::AnyLoader& loader, const char* label) {
  ActiveLoader previous{state.dataloader, state.dataloader_label, state.dataloader_len};
  activate_loader(state, loader, label);
  return previous;
}

/// Makes `previous` (from `swap_active_loader`) the active data loader again.
inline void restore_active_loader(State& state, ActiveLoader previous) {
  state.dataloader = std::move(previous.dataloader);
  state.dataloader_label = std::move(previous.label);
  state.dataloader_len = previous.len;
}

}  // namespace composer
