#pragma once
/// \file
/// composer::callbacks::LRMonitor — logs the learning rate of every optimizer's parameter groups after each batch.

#include <cstdlib>
#include <memory>
#include <string>
#include <typeinfo>

#if defined(__GNUG__) || defined(__clang__)
#include <cxxabi.h>
#endif

#include <torch/optim/optimizer.h>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>

namespace composer::callbacks {

/// The optimizer's class name without its namespace, as Python's `type(optimizer).__name__` gives it: `SGD`,
/// `Adam`, `AdamW`, `SAMOptimizer`, ... (the dynamic type, demangled where the compiler allows).
inline std::string optimizer_class_name(const torch::optim::Optimizer& optimizer) {
  std::string name = typeid(optimizer).name();
#if defined(__GNUG__) || defined(__clang__)
  int status = 0;
  const std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), std::free);
  if (status == 0 && demangled) name = demangled.get();
#endif
  if (const auto arguments = name.find('<'); arguments != std::string::npos) name.resize(arguments);
  if (const auto scope = name.rfind("::"); scope != std::string::npos) name.erase(0, scope + 2);
  if (const auto space = name.rfind(' '); space != std::string::npos) name.erase(0, space + 1);  // "class X"
  return name;
}

/// LRMonitor: at every `BATCH_END`, logs the learning rate of each parameter group of each optimizer under
/// `lr-{OptimizerClassName}/group{i}` (e.g. `lr-SGD/group0`): the rate the batch was trained with, as the
/// Trainer's schedules set it before the batch. Two optimizers of one class share keys, as in Composer.
/// Composer counterpart: `composer.callbacks.LRMonitor()`.
class LRMonitor {
 public:
  /// A callback: it runs after the algorithms.
  static constexpr Role role = Role::callback;
  /// After each training batch.
  static constexpr EventSet events{Event::BATCH_END};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "LRMonitor";

  /// Logs the learning rates (see the class comment).
  void apply(Event, State& state, const Logger& logger) {
    if (!logger.has_metrics_destination()) return;
    Metrics rates;
    for (const auto& optimizer : state.optimizers) {
      if (!optimizer) continue;
      const std::string prefix = "lr-" + optimizer_class_name(*optimizer) + "/group";
      const auto& groups = optimizer->param_groups();
      for (std::size_t i = 0; i < groups.size(); ++i) rates[prefix + std::to_string(i)] = groups[i].options().get_lr();
    }
    if (!rates.empty()) logger.log_metrics(rates);
  }
};

}  // namespace composer::callbacks
