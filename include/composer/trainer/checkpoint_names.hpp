#pragma once
/// \file
/// The names the Trainer gives its checkpoint files (`ep{E}-ba{B}-rank{R}.pt`, the link `latest-rank{R}.pt`), and
/// reading the counters back from a name.

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace composer {

/// The counters a checkpoint file name carries.
struct CheckpointName {
  std::int64_t epoch = 0;  ///< epochs done
  std::int64_t batch = 0;  ///< batches done
  std::int64_t rank = 0;   ///< the rank that wrote it
};

/// `ep{epoch}-ba{batch}-rank{rank}.pt`. Composer counterpart: the default `save_filename`.
inline std::string checkpoint_file_name(std::int64_t epoch, std::int64_t batch, std::int64_t rank) {
  return "ep" + std::to_string(epoch) + "-ba" + std::to_string(batch) + "-rank" + std::to_string(rank) + ".pt";
}

/// `latest-rank{rank}.pt`. Composer counterpart: the default `save_latest_filename`.
inline std::string latest_link_name(std::int64_t rank) { return "latest-rank" + std::to_string(rank) + ".pt"; }

/// The counters of a name `checkpoint_file_name` makes (exactly that form, no folder), or none for another name.
inline std::optional<CheckpointName> parse_checkpoint_file_name(std::string_view name) {
  CheckpointName parsed;
  const std::string text(name);
  if (std::sscanf(text.c_str(), "ep%" SCNd64 "-ba%" SCNd64 "-rank%" SCNd64, &parsed.epoch, &parsed.batch,
                  &parsed.rank) != 3)
    return std::nullopt;
  if (parsed.epoch < 0 || parsed.batch < 0 || parsed.rank < 0 ||
      text != checkpoint_file_name(parsed.epoch, parsed.batch, parsed.rank))
    return std::nullopt;
  return parsed;
}

}  // namespace composer
