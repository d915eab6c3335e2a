#pragma once
/// \file
/// Which data loader the State shows as active (`state.dataloader`, its label and length), and swapping it for
/// evaluation or prediction and back.

#include <algorithm>
#include <any>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <composer/core/state.hpp>
#include <composer/data/any_loader.hpp>

namespace composer {

/// The batches per epoch of `loader` when at most `subset_num_batches` of each epoch are used (-1: all): the
/// smaller of the two, the subset when the loader's length is unknown, and unknown when both are.
inline std::optional<std::int64_t> subset_length(const data::AnyLoader& loader, std::int64_t subset_num_batches) {
  const std::optional<std::int64_t> len = loader.size();
  if (subset_num_batches < 0) return len;
  return len ? std::min(*len, subset_num_batches) : subset_num_batches;
}

/// Makes `loader` the State's active data loader under `label` ("train", "eval", "predict"), of which at most
/// `subset_num_batches` batches per epoch are used (-1: all). Composer counterpart: `State.set_dataloader`.
inline void activate_loader(State& state, data::AnyLoader& loader, const std::string& label,
                            std::int64_t subset_num_batches = -1) {
  state.dataloader = &loader;
  state.dataloader_label = label;
  state.dataloader_len = subset_length(loader, subset_num_batches);
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

/// Makes `loader` active under `label` (at most `subset_num_batches` batches used, -1: all) and returns the loader that was active, for `restore_active_loader`.
inline ActiveLoader swap_active_loader(State& state, data::AnyLoader& loader, const std::string& label,
                                       std::int64_t subset_num_batches = -1) {
  ActiveLoader previous{state.dataloader, state.dataloader_label, state.dataloader_len};
  activate_loader(state, loader, label, subset_num_batches);
  return previous;
}

/// Makes `previous` (from `swap_active_loader`) the active data loader again.
inline void restore_active_loader(State& state, ActiveLoader previous) {
  state.dataloader = std::move(previous.dataloader);
  state.dataloader_label = std::move(previous.label);
  state.dataloader_len = previous.len;
}

}  // namespace composer
