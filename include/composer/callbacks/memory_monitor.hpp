#pragma once
/// \file
/// composer::callbacks::MemoryMonitor — logs the CUDA caching allocator's memory statistics after each training
/// batch. On the CPU it logs nothing and says so once.
///
/// The statistics are read through c10's device-generic allocator interface (`c10::DeviceAllocator`, LibTorch
/// 2.9 and newer), which lives in LibTorch's CPU libraries: a program using this header links no CUDA symbol, and
/// asks for the statistics only when LibTorch has CUDA (`at::globalContext().hasCUDA()`) and the model is on a
/// CUDA device. With an older LibTorch a CUDA model gets the same one-time notice and no statistics.

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <ATen/Context.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9)
#include <c10/core/Allocator.h>
#include <c10/core/CachingDeviceAllocator.h>
/// 1 when LibTorch offers the device-generic allocator statistics `MemoryMonitor` reads (LibTorch >= 2.9).
#define COMPOSER_MEMORY_MONITOR_DEVICE_STATS 1
#else
#define COMPOSER_MEMORY_MONITOR_DEVICE_STATS 0
#endif

namespace composer::callbacks {

/// Allocator statistics by the names `torch.cuda.memory_stats()` gives them (`"allocated_bytes.all.current"`,
/// `"num_alloc_retries"`, ...).
using MemoryStats = std::map<std::string, std::int64_t>;

/// The statistics `MemoryMonitor` logs by default, as Composer's `_MEMORY_KEYS`: statistic name → logged name
/// (logged as `memory/<name>`; byte counts in gigabytes).
inline std::map<std::string, std::string> default_memory_keys() {
  return {{"allocated_bytes.all.current", "current_allocated_mem"},
          {"active_bytes.all.current", "current_active_mem"},
          {"inactive_split_bytes.all.current", "current_inactive_mem"},
          {"reserved_bytes.all.current", "current_reserved_mem"},
          {"allocated_bytes.all.peak", "peak_allocated_mem"},
          {"active_bytes.all.peak", "peak_active_mem"},
          {"inactive_split_bytes.all.peak", "peak_inactive_mem"},
          {"reserved_bytes.all.peak", "peak_reserved_mem"},
          {"num_alloc_retries", "alloc_retries"}};
}

/// Flattens a caching allocator's `DeviceStats` into `torch.cuda.memory_stats()`'s names: for each statistic array
/// (`allocation`, `segment`, `active`, `inactive_split`, `allocated_bytes`, `reserved_bytes`, `active_bytes`,
/// `inactive_split_bytes`, and `requested_bytes` where present) `<stat>.{all,small_pool,large_pool}.{current,peak,
/// allocated,freed}`, and `num_alloc_retries`, `num_ooms`. A template over the stats type, so that it compiles
/// against any LibTorch's `DeviceStats` (and a test's stand-in).
template <class DeviceStats>
MemoryStats flatten_memory_stats(const DeviceStats& stats) {
  MemoryStats out;
  auto add = [&out](const std::string& name, const auto& array) {
    static constexpr std::array<const char*, 3> pools{"all", "small_pool", "large_pool"};  // c10's StatType order
    for (std::size_t pool = 0; pool < pools.size() && pool < array.size(); ++pool) {
      const std::string prefix = name + "." + pools[pool] + ".";
      out[prefix + "current"] = static_cast<std::int64_t>(array[pool].current);
      out[prefix + "peak"] = static_cast<std::int64_t>(array[pool].peak);
      out[prefix + "allocated"] = static_cast<std::int64_t>(array[pool].allocated);
      out[prefix + "freed"] = static_cast<std::int64_t>(array[pool].freed);
    }
  };
  add("allocation", stats.allocation);
  add("segment", stats.segment);
  add("active", stats.active);
  add("inactive_split", stats.inactive_split);
  add("allocated_bytes", stats.allocated_bytes);
  add("reserved_bytes", stats.reserved_bytes);
  add("active_bytes", stats.active_bytes);
  add("inactive_split_bytes", stats.inactive_split_bytes);
  if constexpr (requires { stats.requested_bytes; }) add("requested_bytes", stats.requested_bytes);
  out["num_alloc_retries"] = static_cast<std::int64_t>(stats.num_alloc_retries);
  if constexpr (requires { stats.num_ooms; }) out["num_ooms"] = static_cast<std::int64_t>(stats.num_ooms);
  return out;
}

/// `value` rounded to `digits` decimal places (a negative count rounds to tens, hundreds, ...), halves away from
/// zero: Python's `round(value, digits)` except on exact binary ties, which it breaks towards even.
inline double round_to_digits(double value, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(value * scale) / scale;
}

/// The report Composer's `_get_memory_report` builds from `stats`: for each `memory_keys` entry present in
/// `stats`, byte counts (names containing `bytes`) in gigabytes (÷ 1e9) rounded to 5 significant digits, under the
/// logged name with `bytes` replaced by `gigabytes`; other statistics as they are.
inline Metrics memory_report(const MemoryStats& stats, const std::map<std::string, std::string>& memory_keys) {
  Metrics report;
  for (const auto& [stat, logged] : memory_keys) {
    const auto found = stats.find(stat);
    if (found == stats.end()) continue;
    if (stat.find("bytes") == std::string::npos) {
      report[logged] = static_cast<double>(found->second);
      continue;
    }
    double gigabytes = static_cast<double>(found->second) / 1.0e9;
    if (gigabytes != 0) {
      const int magnitude = static_cast<int>(std::floor(std::log10(std::fabs(gigabytes))));
      gigabytes = round_to_digits(gigabytes, -magnitude + 4);
    }
    std::string name = logged;
    if (const auto at = name.find("bytes"); at != std::string::npos) name.replace(at, 5, "gigabytes");
    report[name] = gigabytes;
  }
  return report;
}

/// The CUDA caching allocator's statistics for device `index`, or none when this LibTorch cannot give them (no
/// CUDA, older than 2.9, or no device allocator registered for CUDA).
inline std::optional<MemoryStats> cuda_memory_stats([[maybe_unused]] c10::DeviceIndex index) {
#if COMPOSER_MEMORY_MONITOR_DEVICE_STATS
  if (!at::globalContext().hasCUDA()) return std::nullopt;
  try {
    auto* allocator = dynamic_cast<c10::DeviceAllocator*>(c10::GetAllocator(c10::DeviceType::CUDA));
    if (allocator == nullptr) return std::nullopt;
    return flatten_memory_stats(allocator->getDeviceStats(index));
  } catch (const c10::Error&) {
    return std::nullopt;
  }
#else
  return std::nullopt;
#endif
}

/// Settings of a `MemoryMonitor`.
struct MemoryMonitorOptions {
  /// Statistic name (as `torch.cuda.memory_stats()` names it) → logged name; empty means Composer's defaults
  /// (`default_memory_keys()`).
  std::map<std::string, std::string> memory_keys;
  /// Where the one-time notice goes when nothing can be logged; null means `stderr`. Not owned or closed.
  std::FILE* stream = nullptr;
};

/// MemoryMonitor: after every training batch (`AFTER_TRAIN_BATCH`), when the model is on a CUDA device, logs the
/// caching allocator's statistics of that device as `memory/<name>`: by default `memory/current_allocated_mem`,
/// `memory/current_active_mem`, `memory/current_inactive_mem`, `memory/current_reserved_mem`, their `peak_*`
/// counterparts (gigabytes, 5 significant digits) and `memory/alloc_retries`. When the model is not on CUDA (or
/// this LibTorch cannot read the statistics) it logs nothing and writes one notice saying why, once, at `INIT` or
/// at the first batch. Composer counterpart: `composer.callbacks.MemoryMonitor(memory_keys=None)`, without its
/// distributed aggregation (`dist_aggregate_batch_interval`).
class MemoryMonitor {
 public:
  /// A callback: it runs after the algorithms.
  static constexpr Role role = Role::callback;
  /// The device check at `INIT`; the statistics after each training batch.
  static constexpr EventSet events{Event::INIT, Event::AFTER_TRAIN_BATCH};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "MemoryMonitor";

  /// A monitor logging Composer's default statistics.
  MemoryMonitor() : MemoryMonitor(MemoryMonitorOptions{}) {}
  /// A monitor with the given options: `MemoryMonitor({.memory_keys = {{"reserved_bytes.all.peak", "peak"}}})`.
  explicit MemoryMonitor(MemoryMonitorOptions options) : options_(std::move(options)) {
    if (options_.memory_keys.empty()) options_.memory_keys = default_memory_keys();
  }

  /// The statistics it logs: statistic name → logged name.
  const std::map<std::string, std::string>& memory_keys() const noexcept { return options_.memory_keys; }
  /// The notice written when nothing can be logged; empty until then.
  const std::string& notice() const noexcept { return notice_; }

  /// Checks the model's device (`INIT`) or logs the statistics (`AFTER_TRAIN_BATCH`).
  void apply(auto event, State& state, const Logger& logger) {
    const c10::Device device = model_device(state);
    if (!device.is_cuda()) {
      say_once("composer: MemoryMonitor: the model is on " + device.str() +
               ", not on a CUDA device; memory statistics are logged for CUDA only, so nothing is logged");
      return;
    }
    if constexpr (event == Event::AFTER_TRAIN_BATCH) {
      const auto stats = cuda_memory_stats(device.has_index() ? device.index() : c10::DeviceIndex{0});
      if (!stats) {
        say_once("composer: MemoryMonitor: this LibTorch cannot read the CUDA allocator's statistics (it needs "
                 "LibTorch 2.9 or newer, built with CUDA); nothing is logged");
        return;
      }
      Metrics logged;
      for (const auto& [key, value] : memory_report(*stats, options_.memory_keys)) logged["memory/" + key] = value;
      if (!logged.empty()) logger.log_metrics(logged);
    }
  }

 private:
  // The device of the model's first parameter (Composer's check), or the state's device for a model without any.
  static c10::Device model_device(const State& state) {
    if (state.model) {
      const auto parameters = state.model->parameters();
      if (!parameters.empty()) return parameters.front().device();
    }
    return state.device;
  }

  void say_once(const std::string& message) {
    if (!notice_.empty()) return;
    notice_ = message;
    std::FILE* stream = options_.stream != nullptr ? options_.stream : stderr;
    std::fprintf(stream, "%s\n", message.c_str());
    std::fflush(stream);
  }

  MemoryMonitorOptions options_;
  std::string notice_;
};

}  // namespace composer::callbacks
