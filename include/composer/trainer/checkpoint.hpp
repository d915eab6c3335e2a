#pragma once
/// \file
/// Checkpoint files: what they hold, how they are written (atomically) and read (validated before anything
/// is changed), and how a policy keeps its own state in them.

#include <cstdint>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/state.hpp>
#include <composer/core/timestamp.hpp>
#include <composer/io/files.hpp>

namespace composer {

/// Thrown when a checkpoint cannot be written, read, or does not fit the trainer it is loaded into.
/// Composer counterpart: the errors of `composer.utils.checkpoint`.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// True when a policy keeps state across checkpoints with `void save_state(torch::serialize::OutputArchive&)
/// const`. Composer counterpart: `Algorithm.state_dict`.
template <class P>
concept saves_state = requires(const P& p, torch::serialize::OutputArchive& archive) { p.save_state(archive); };

/// True when a policy restores its state with `void load_state(torch::serialize::InputArchive&)`. Composer
/// counterpart: `Algorithm.load_state_dict`.
template <class P>
concept loads_state = requires(P& p, torch::serialize::InputArchive& archive) { p.load_state(archive); };

/// True when a policy restores its state with `void load_state(torch::serialize::InputArchive&, State&)`:
/// such policies are restored before the optimizers, so that they can first bring the model and optimizers
/// back to the shape the checkpoint was saved with (LayerFreezing re-freezes its layers).
template <class P>
concept loads_state_into_state =
    requires(P& p, torch::serialize::InputArchive& archive, State& state) { p.load_state(archive, state); };

namespace detail {
/// The type's name as the compiler spells it, e.g. `MixUp` or `composer::algorithms::EMA`.
template <class T>
std::string type_name() {
  std::string_view pretty = __PRETTY_FUNCTION__;
  const auto start = pretty.find("T = ");
  if (start == std::string_view::npos) return std::string(pretty);
  pretty.remove_prefix(start + 4);
  const auto end = pretty.find_first_of(";]");
  return std::string(pretty.substr(0, end));
}
}  // namespace detail

/// The name a policy is stored under: its `static constexpr std::string_view name` if it has one, else its
/// type's name.
template <class P>
std::string policy_name() {
  if constexpr (requires { std::string_view(P::name); })
    return std::string(std::string_view(P::name));
  else
    return detail::type_name<P>();
}

namespace checkpoint {

/// Selects the policies restored with the State, before the optimizers (`loads_state_into_state`).
struct restored_with_state {
  template <class P>
  static constexpr bool value = loads_state_into_state<P>;
};
/// Selects the policies restored on their own, after the optimizers (`loads_state` only).
struct restored_alone {
  template <class P>
  static constexpr bool value = loads_state<P> && !loads_state_into_state<P>;
};

/// Format version written into every checkpoint.
inline constexpr std::int64_t format_version = 1;

/// Writes `archive` to `path` atomically: into a temporary file beside it, then renamed over `path`, so a
/// crash or a full disk never leaves a half-written checkpoint under the real name.
inline void write_atomically(torch::serialize::OutputArchive& archive, const std::string& path) {
  if (const std::string folder = io::parent_path(path); !folder.empty()) {
    try {
      io::create_directories(folder);
    } catch (const io::FileError& error) {
      throw CheckpointError("composer: cannot create the checkpoint folder '" + folder + "': " + error.reason());
    }
  }
  const std::string tmp = path + ".tmp";
  auto discard_tmp = [&tmp] {
    try {
      io::remove(tmp);
    } catch (const io::FileError&) {
    }
  };
  try {
    archive.save_to(tmp);
  } catch (const std::exception& error) {
    discard_tmp();
    throw CheckpointError("composer: cannot write checkpoint '" + path + "': " + error.what());
  }
  try {
    io::rename(tmp, path);
  } catch (const io::FileError& error) {
    discard_tmp();
    throw CheckpointError("composer: cannot move the new checkpoint into place at '" + path + "': " + error.reason());
  }
}

/// Opens a checkpoint, turning a missing, unreadable, truncated or corrupt file into a `CheckpointError`
/// naming it, and checking the format version.
inline torch::serialize::InputArchive read(const std::string& path) {
  io::FileType type;
  try {
    type = io::file_type(path);
  } catch (const io::FileError& error) {
    throw CheckpointError("composer: checkpoint '" + path + "' cannot be read: " + error.reason());
  }
  if (type == io::FileType::not_found) throw CheckpointError("composer: checkpoint '" + path + "' does not exist");
  if (type != io::FileType::regular)
    throw CheckpointError("composer: checkpoint '" + path + "' is not a regular file");
  torch::serialize::InputArchive archive;
  try {
    // Every tensor is read onto the CPU (a checkpoint written on a GPU loads on a machine without one); the
    // Trainer copies the model's tensors into place and moves the optimizers' state to the training device.
    archive.load_from(path, c10::Device(c10::kCPU));
  } catch (const std::exception& error) {
    const std::string what = error.what();
    throw CheckpointError("composer: checkpoint '" + path +
                          "' is corrupt or truncated and cannot be read (" + what.substr(0, what.find('\n')) + ")");
  }
  at::Tensor version;
  if (!archive.try_read("composer/format", version))
    throw CheckpointError("composer: '" + path + "' is not a composer-cpp checkpoint (no format entry)");
  if (version.item<std::int64_t>() != format_version)
    throw CheckpointError("composer: checkpoint '" + path + "' has format " +
                          std::to_string(version.item<std::int64_t>()) + ", this library reads format " +
                          std::to_string(format_version));
  return archive;
}

/// Writes the model's parameters and buffers under flat dotted names (`model/<name>`).
inline void save_module(torch::serialize::OutputArchive& archive, const torch::nn::Module& module) {
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    archive.write("model/" + item.key(), item.value().detach());
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    archive.write("model/" + item.key(), item.value(), /*is_buffer=*/true);
}

/// Reads every parameter and buffer of `module`, checks names, shapes and dtypes, and only then copies them
/// in: a checkpoint that does not fit leaves the model untouched.
inline void load_module(torch::serialize::InputArchive& archive, torch::nn::Module& module, const std::string& path) {
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;
  auto collect = [&](const std::string& name, const at::Tensor& target) {
    at::Tensor stored;
    if (!archive.try_read("model/" + name, stored))
      throw CheckpointError("composer: checkpoint '" + path + "' has no entry for model tensor '" + name +
                            "' (was it saved from another model?)");
    if (stored.sizes() != target.sizes() || stored.scalar_type() != target.scalar_type())
      throw CheckpointError("composer: checkpoint '" + path + "' holds model tensor '" + name + "' of shape " +
                            c10::str(stored.sizes()) + " and type " + std::string(c10::toString(stored.scalar_type())) +
                            ", the model has " + c10::str(target.sizes()) + " and " +
                            std::string(c10::toString(target.scalar_type())));
    copies.emplace_back(target, stored);
  };
  for (const auto& item : module.named_parameters(true)) collect(item.key(), item.value());
  for (const auto& item : module.named_buffers(true)) collect(item.key(), item.value());
  at::NoGradGuard no_grad;
  for (auto& [target, stored] : copies) target.copy_(stored);
}

/// Writes a timestamp's counters and durations.
inline void save_timestamp(torch::serialize::OutputArchive& archive, const std::string& key, const Timestamp& t) {
  const auto counters = t.counters();
  const auto durations = t.durations();
  archive.write(key + "/counters", at::tensor(std::vector<std::int64_t>(counters.begin(), counters.end())));
  archive.write(key + "/durations", at::tensor(std::vector<double>(durations.begin(), durations.end()),
                                               at::TensorOptions().dtype(at::kDouble)));
}

/// Reads a timestamp written by `save_timestamp`.
inline Timestamp load_timestamp(torch::serialize::InputArchive& archive, const std::string& key,
                                const std::string& path) {
  at::Tensor counters, durations;
  if (!archive.try_read(key + "/counters", counters) || !archive.try_read(key + "/durations", durations) ||
      counters.numel() != 10 || durations.numel() != 4)
    throw CheckpointError("composer: checkpoint '" + path + "' has no valid '" + key + "' entry");
  std::array<std::int64_t, 10> c{};
  std::array<double, 4> d{};
  const auto counters64 = counters.to(at::kLong).contiguous();
  const auto durations64 = durations.to(at::kDouble).contiguous();
  for (int i = 0; i < 10; ++i) c[i] = counters64.data_ptr<std::int64_t>()[i];
  for (int i = 0; i < 4; ++i) d[i] = durations64.data_ptr<double>()[i];
  try {
    return Timestamp::from_counters(c, d);
  } catch (const std::exception& error) {
    throw CheckpointError("composer: checkpoint '" + path + "': " + error.what());
  }
}

/// The state of the default CPU random generator (and that of `device` when it is a CUDA device).
inline void save_rng(torch::serialize::OutputArchive& archive, const c10::Device& device) {
  auto cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    archive.write("rng/cpu", cpu.get_state());
  }
  if (device.is_cuda()) {
    auto cuda = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(cuda.mutex());
    archive.write("rng/cuda", cuda.get_state());
  }
}

/// Restores the generators saved by `save_rng`.
inline void load_rng(torch::serialize::InputArchive& archive, const c10::Device& device, const std::string& path) {
  at::Tensor cpu_state;
  if (!archive.try_read("rng/cpu", cpu_state))
    throw CheckpointError("composer: checkpoint '" + path + "' has no random generator state");
  auto cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(cpu_state);
  }
  at::Tensor cuda_state;
  if (device.is_cuda() && archive.try_read("rng/cuda", cuda_state)) {
    auto cuda = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(cuda.mutex());
    cuda.set_state(cuda_state);
  }
}

/// Serialises an optimizer's state into memory, so that a failed load can put it back.
inline std::string optimizer_snapshot(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

/// Restores an optimizer from `optimizer_snapshot` (its state tensors where they were saved).
inline void restore_optimizer(torch::optim::Optimizer& optimizer, const std::string& snapshot) {
  torch::serialize::InputArchive archive;
  std::istringstream in(snapshot);
  archive.load_from(in);
  optimizer.load(archive);
}

/// Moves the per-parameter state of LibTorch's optimizers (SGD's momentum, Adam's and AdamW's moments, Adagrad's
/// sums, RMSprop's averages) to `device`, as PyTorch's `Optimizer.load_state_dict` casts state to each parameter's
/// device. Used after a checkpoint was read onto the CPU. State of other optimizer types is left where it is.
inline void move_optimizer_state(torch::optim::Optimizer& optimizer, const c10::Device& device) {
  auto moved = [&](const at::Tensor& t) { return t.defined() ? t.to(device) : t; };
  for (auto& [key, state] : optimizer.state()) {
    if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(state.get())) {
      sgd->momentum_buffer(moved(sgd->momentum_buffer()));
    } else if (auto* adam = dynamic_cast<torch::optim::AdamParamState*>(state.get())) {
      adam->exp_avg(moved(adam->exp_avg()));
      adam->exp_avg_sq(moved(adam->exp_avg_sq()));
      adam->max_exp_avg_sq(moved(adam->max_exp_avg_sq()));
    } else if (auto* adamw = dynamic_cast<torch::optim::AdamWParamState*>(state.get())) {
      adamw->exp_avg(moved(adamw->exp_avg()));
      adamw->exp_avg_sq(moved(adamw->exp_avg_sq()));
      adamw->max_exp_avg_sq(moved(adamw->max_exp_avg_sq()));
    } else if (auto* adagrad = dynamic_cast<torch::optim::AdagradParamState*>(state.get())) {
      adagrad->sum(moved(adagrad->sum()));
    } else if (auto* rmsprop = dynamic_cast<torch::optim::RMSpropParamState*>(state.get())) {
      rmsprop->square_avg(moved(rmsprop->square_avg()));
      rmsprop->momentum_buffer(moved(rmsprop->momentum_buffer()));
      rmsprop->grad_avg(moved(rmsprop->grad_avg()));
    }
  }
}

}  // namespace checkpoint
}  // namespace composer
