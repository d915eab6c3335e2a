#pragma once
/// \file
/// Checkpoint files: what they hold (every key of the layout is in `checkpoint::keys`), how a trainer's parts
/// are saved into one and restored from one (`checkpoint::save`, `checkpoint::load`), how they are written
/// (atomically) and read (validated before anything is changed), and how a policy keeps its own state in them.

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
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
#include <composer/io/zip_integrity.hpp>
#include <composer/trainer/checkpoint_names.hpp>
#include <composer/trainer/precision_context.hpp>

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

/// The checkpoint layout: every entry a checkpoint holds, by key. Entries ending in `/` are prefixes followed by
/// a name or an index. Composer counterpart: the keys of Composer's checkpoint `state_dict`.
namespace keys {
/// The format version (`format_version`).
inline constexpr const char format[] = "composer/format";
/// Present (1) in a checkpoint holding only the model (`save_weights`): no other entry below but the format.
inline constexpr const char weights_only[] = "composer/weights_only";
/// Prefix of the model's parameters and buffers, by their dotted names.
inline constexpr const char model[] = "model/";
/// How many optimizers follow.
inline constexpr const char optimizer_count[] = "optimizers/count";
/// Prefix of each optimizer's state, by index.
inline constexpr const char optimizer[] = "optimizers/";
/// The learning rates the schedulers multiply, one per parameter group.
inline constexpr const char base_learning_rates[] = "schedulers/base_lrs";
/// The training timestamp (`/counters` and `/durations` follow).
inline constexpr const char timestamp[] = "timestamp";
/// The default CPU generator's state.
inline constexpr const char cpu_rng[] = "rng/cpu";
/// The CUDA device's generator state (when trained on CUDA).
inline constexpr const char cuda_rng[] = "rng/cuda";
/// The number of ranks of the data-parallel run that saved the checkpoint (absent: one process).
inline constexpr const char world_size[] = "rng/world_size";
/// Prefix of each rank's CPU generator state in a data-parallel run, by rank (`rng/rank/<r>`).
inline constexpr const char rank_cpu_rng[] = "rng/rank/";
/// The seed of rank 0.
inline constexpr const char rank_zero_seed[] = "rank_zero_seed";
/// The fp16 loss scale.
inline constexpr const char loss_scale[] = "scaler/scale";
/// The last loss (`State::loss`, detached); present only when the state held one when it was saved.
inline constexpr const char loss[] = "loss";
/// The trainer's policy names, comma-separated, in order.
inline constexpr const char policy_names[] = "policies/names";
/// Prefix of each policy's own state, by its index among the engine's policies.
inline constexpr const char policy[] = "policies/";
/// The training loader's batch size (from its first batch; -1: none yet).
inline constexpr const char train_batch_size[] = "settings/train_batch_size";
/// The training loader's batches per epoch, as the run used them (-1: unknown).
inline constexpr const char batches_per_epoch[] = "settings/batches_per_epoch";
}  // namespace keys

/// Writes `archive` to `path` atomically: serialised in memory, written into a temporary file beside it and
/// flushed, then renamed over `path`, so a crash or a full disk never leaves a half-written checkpoint under the
/// real name, and a failed write is a `CheckpointError` with the temporary file removed.
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
  // The archive is serialised into memory first: LibTorch's file writer finishes the file in its destructor, where
  // a write error (a full disk) cannot be reported and ends the process. The bytes are then written and flushed by
  // a writer that reports every error.
  std::string bytes;
  try {
    archive.save_to([&bytes](const void* data, std::size_t size) -> std::size_t {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
  } catch (const std::exception& error) {
    throw CheckpointError("composer: cannot serialise checkpoint '" + path + "': " + error.what());
  }
  try {
    io::write_file(tmp, bytes);
  } catch (const io::FileError& error) {
    discard_tmp();
    throw CheckpointError("composer: cannot write checkpoint '" + path + "' (nothing was replaced): " + error.reason());
  }
  try {
    io::rename(tmp, path);
  } catch (const io::FileError& error) {
    discard_tmp();
    throw CheckpointError("composer: cannot move the new checkpoint into place at '" + path + "': " + error.reason());
  }
}

/// Opens a checkpoint, turning a missing, unreadable, truncated or corrupt file (any record whose bytes do not match
/// its stored CRC-32) into a `CheckpointError` naming it, and checking the format version.
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
  // LibTorch's reader does not check the records' CRC-32s: a flipped bit in a tensor would load unnoticed.
  try {
    io::verify_zip_records(path);
  } catch (const io::ZipIntegrityError& error) {
    throw CheckpointError("composer: checkpoint '" + path + "' is corrupt or truncated, nothing was loaded: " +
                          error.what());
  }
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
  if (!archive.try_read(keys::format, version))
    throw CheckpointError("composer: '" + path + "' is not a composer-cpp checkpoint (no format entry)");
  if (version.item<std::int64_t>() != format_version)
    throw CheckpointError("composer: checkpoint '" + path + "' has format " +
                          std::to_string(version.item<std::int64_t>()) + ", this library reads format " +
                          std::to_string(format_version));
  return archive;
}

/// Cross-checks the counters a checkpoint holds against those its Trainer-written file name carries.
/// \throws CheckpointError when they differ (the counters or the name were changed after writing).
inline void check_counters_match_name(const std::string& path, const Timestamp& timestamp) {
  std::string name = io::file_name(path);
  try {  // through the latest link, the name is its target's
    if (io::file_type(path, /*follow_links=*/false) == io::FileType::symlink) name = io::file_name(io::read_symlink(path));
  } catch (const io::FileError&) {
    return;
  }
  const auto named = parse_checkpoint_file_name(name);
  if (!named) return;
  if (named->epoch != timestamp.epoch().count() || named->batch != timestamp.batch().count())
    throw CheckpointError("composer: checkpoint '" + path + "' is named for epoch " + std::to_string(named->epoch) +
                          ", batch " + std::to_string(named->batch) + " but holds epoch " +
                          std::to_string(timestamp.epoch().count()) + ", batch " +
                          std::to_string(timestamp.batch().count()) +
                          ": its counters or its name were changed after it was written; nothing was loaded");
}

/// Writes the model's parameters and buffers under flat dotted names (`model/<name>`).
inline void save_module(torch::serialize::OutputArchive& archive, const torch::nn::Module& module) {
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    archive.write(keys::model + item.key(), item.value().detach());
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    archive.write(keys::model + item.key(), item.value(), /*is_buffer=*/true);
}

/// Reads every parameter and buffer of `module`, checks names, shapes and dtypes, and only then copies them
/// in: a checkpoint that does not fit leaves the model untouched. With `strict` (Composer's
/// `strict_model_weights`), a model tensor the checkpoint lacks, or a checkpoint model tensor the model lacks, is a
/// `CheckpointError` naming it; without, such tensors are skipped. A shape or type mismatch is an error either way.
/// Without `copy`, only checks.
inline void load_module(torch::serialize::InputArchive& archive, torch::nn::Module& module, const std::string& path,
                        bool strict = true, bool copy = true) {
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;
  std::vector<std::string> model_names;
  auto collect = [&](const std::string& name, const at::Tensor& target) {
    model_names.push_back(keys::model + name);
    at::Tensor stored;
    if (!archive.try_read(keys::model + name, stored)) {
      if (!strict) return;
      throw CheckpointError("composer: checkpoint '" + path + "' has no entry for model tensor '" + name +
                            "' (was it saved from another model?)");
    }
    if (stored.sizes() != target.sizes() || stored.scalar_type() != target.scalar_type())
      throw CheckpointError("composer: checkpoint '" + path + "' holds model tensor '" + name + "' of shape " +
                            c10::str(stored.sizes()) + " and type " + std::string(c10::toString(stored.scalar_type())) +
                            ", the model has " + c10::str(target.sizes()) + " and " +
                            std::string(c10::toString(target.scalar_type())));
    copies.emplace_back(target, stored);
  };
  for (const auto& item : module.named_parameters(true)) collect(item.key(), item.value());
  for (const auto& item : module.named_buffers(true)) collect(item.key(), item.value());
  if (strict) {
    const std::string_view prefix = keys::model;
    for (const auto& key : archive.keys())
      if (key.rfind(prefix, 0) == 0 && std::find(model_names.begin(), model_names.end(), key) == model_names.end())
        throw CheckpointError("composer: checkpoint '" + path + "' holds model tensor '" + key.substr(prefix.size()) +
                              "', which the model does not have (load_strict_model_weights=false skips it)");
  }
  if (!copy) return;
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

/// The default CPU random generator's state (what `save_rng` writes, and what each data-parallel rank sends rank 0).
inline at::Tensor cpu_rng_state() {
  auto cpu = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(cpu.mutex());
  return cpu.get_state();
}

/// The state of the default CPU random generator (and that of `device` when it is a CUDA device); in a
/// data-parallel run, also every rank's CPU generator state (`rank_cpu_states`, by rank, gathered from the ranks).
inline void save_rng(torch::serialize::OutputArchive& archive, const c10::Device& device,
                     const std::vector<at::Tensor>& rank_cpu_states = {}) {
  if (!rank_cpu_states.empty()) {
    archive.write(keys::world_size,
                  at::tensor(std::vector<std::int64_t>{static_cast<std::int64_t>(rank_cpu_states.size())}));
    for (std::size_t r = 0; r < rank_cpu_states.size(); ++r)
      archive.write(keys::rank_cpu_rng + std::to_string(r), rank_cpu_states[r]);
  }
  archive.write(keys::cpu_rng, cpu_rng_state());
  if (device.is_cuda()) {
    auto cuda = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(cuda.mutex());
    archive.write(keys::cuda_rng, cuda.get_state());
  }
}

/// The number of ranks of the run that saved the checkpoint in `archive` (1: a single process).
inline std::int64_t saved_world_size(torch::serialize::InputArchive& archive) {
  at::Tensor world;
  return archive.try_read(keys::world_size, world) ? world.item<std::int64_t>() : 1;
}

/// Restores the generators saved by `save_rng`: in a data-parallel run, rank `rank`'s CPU generator.
inline void load_rng(torch::serialize::InputArchive& archive, const c10::Device& device, const std::string& path,
                     int rank = 0, int world_size = 1) {
  at::Tensor cpu_state;
  const bool found = world_size > 1 ? archive.try_read(keys::rank_cpu_rng + std::to_string(rank), cpu_state)
                                    : archive.try_read(keys::cpu_rng, cpu_state);
  if (!found)
    throw CheckpointError("composer: checkpoint '" + path + "' has no random generator state" +
                          (world_size > 1 ? " for rank " + std::to_string(rank) : std::string()));
  auto cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(cpu_state);
  }
  at::Tensor cuda_state;
  if (device.is_cuda() && archive.try_read(keys::cuda_rng, cuda_state)) {
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

/// Reads from an optimizer's own archive (`Optimizer::save`) the hyperparameters of each of its parameter groups
/// (learning rate, momentum, weight decay, …) as they were when it was saved, one options object per group of
/// `optimizer`. LibTorch's `Optimizer::load` restores the per-parameter state but keeps the groups' current
/// options, whereas PyTorch's `Optimizer.load_state_dict` (which Composer's checkpoints go through) restores them:
/// applying these gives a resumed run the learning rate its schedule had set, not the optimizer's initial one.
/// An archive without LibTorch's `param_groups` layout (an optimizer with its own `save`) gives no options (the
/// groups keep theirs); a group count that differs, or a group without options, is a `CheckpointError`.
inline std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> saved_group_options(
    torch::serialize::InputArchive& optimizer_archive, const torch::optim::Optimizer& optimizer,
    const std::string& what) {
  std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> options;
  torch::serialize::InputArchive groups;
  at::Tensor count;
  if (!optimizer_archive.try_read("param_groups", groups) || !groups.try_read("param_groups/size", count))
    return options;
  const auto& current = optimizer.param_groups();
  if (count.item<std::int64_t>() != static_cast<std::int64_t>(current.size()))
    throw CheckpointError("composer: " + what + " holds " + std::to_string(count.item<std::int64_t>()) +
                          " parameter group(s), the optimizer has " + std::to_string(current.size()));
  for (std::size_t g = 0; g < current.size(); ++g) {
    torch::serialize::InputArchive group, saved;
    if (!groups.try_read("param_groups/" + std::to_string(g), group) || !group.try_read("options", saved))
      throw CheckpointError("composer: " + what + " has no options for parameter group " + std::to_string(g));
    auto restored = current[g].options().clone();
    restored->serialize(saved);
    options.push_back(std::move(restored));
  }
  return options;
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

/// What a trainer checkpoints besides its policies: the State (model, optimizers, timestamp, seed, and the
/// device whose generator is saved), the learning rates its schedulers multiply, and the fp16 loss scale;
/// `policy_names` names the policies (in order) the checkpoint must have been saved with.
struct TrainingParts {
  /// The training state.
  State& state;
  /// One base learning rate per parameter group of the state's optimizers.
  std::vector<double>& base_learning_rates;
  /// The loss scaler.
  LossScaler& scaler;
  /// The trainer's policy names, comma-separated, in order.
  std::string policy_names;
  /// The seed the trainer was configured with, if any: `load` refuses a checkpoint of another seed.
  std::optional<std::uint64_t> requested_seed = std::nullopt;
  /// Let `load` take a checkpoint whose learning rates or seed differ from the trainer's; the trainer's learning
  /// rates then apply from the next batch.
  bool allow_changed_settings = false;
  /// The batches per epoch of the trainer's training loader, when known: `load` refuses a checkpoint of a run whose
  /// loader had another number (another batch size, data set or subset).
  std::optional<std::int64_t> batches_per_epoch = std::nullopt;
  /// In a data-parallel run, every rank's CPU generator state by rank, for `save` (gathered by the trainer).
  std::vector<at::Tensor> rank_cpu_rng_states = {};
};

/// Writes `parts` and the state of every policy `policies` visits (with `for_each_policy`, in order; an
/// `Engine`) that `saves_state`, atomically to `path`. Composer counterpart: `composer.utils.save_checkpoint`.
template <class PolicyList>
void save(const std::string& path, const TrainingParts& parts, const PolicyList& policies) {
  const State& state = parts.state;
  torch::serialize::OutputArchive archive;
  archive.write(keys::format, at::tensor(std::vector<std::int64_t>{format_version}));
  save_module(archive, state.model.module());
  archive.write(keys::optimizer_count,
                at::tensor(std::vector<std::int64_t>{static_cast<std::int64_t>(state.optimizers.size())}));
  for (std::size_t i = 0; i < state.optimizers.size(); ++i) {
    torch::serialize::OutputArchive sub;
    state.optimizers[i]->save(sub);
    archive.write(keys::optimizer + std::to_string(i), sub);
  }
  archive.write(keys::base_learning_rates, at::tensor(parts.base_learning_rates, at::TensorOptions().dtype(at::kDouble)));
  save_timestamp(archive, keys::timestamp, state.timestamp);
  save_rng(archive, state.device, parts.rank_cpu_rng_states);
  archive.write(keys::rank_zero_seed,
                at::tensor(std::vector<std::int64_t>{static_cast<std::int64_t>(state.rank_zero_seed)}));
  archive.write(keys::loss_scale,
                at::tensor(std::vector<double>{parts.scaler.scale()}, at::TensorOptions().dtype(at::kDouble)));
  if (state.loss.defined()) archive.write(keys::loss, state.loss.detach());
  archive.write(keys::train_batch_size, at::tensor(std::vector<std::int64_t>{state.train_batch_size.value_or(-1)}));
  archive.write(keys::batches_per_epoch,
                at::tensor(std::vector<std::int64_t>{state.dataloader_label == "train" && state.dataloader_len
                                                         ? *state.dataloader_len
                                                         : -1}));
  archive.write(keys::policy_names, c10::IValue(parts.policy_names));
  std::size_t index = 0;
  policies.for_each_policy([&](const auto& policy) {
    using P = std::remove_cvref_t<decltype(policy)>;
    if constexpr (saves_state<P>) {
      torch::serialize::OutputArchive sub;
      policy.save_state(sub);
      archive.write(keys::policy + std::to_string(index), sub);
    }
    ++index;
  });
  write_atomically(archive, path);
}

/// Whether the checkpoint `archive` (from `read`) holds only the model's weights (`save_weights`).
inline bool is_weights_only(torch::serialize::InputArchive& archive) {
  at::Tensor flag;
  return archive.try_read(keys::weights_only, flag) && flag.item<std::int64_t>() != 0;
}

/// Writes a checkpoint holding only `module`'s parameters and buffers (and the format entries that mark it as
/// such), atomically to `path`. Composer counterpart: `composer.utils.save_checkpoint(weights_only=True)`.
inline void save_weights(const std::string& path, const torch::nn::Module& module) {
  torch::serialize::OutputArchive archive;
  archive.write(keys::format, at::tensor(std::vector<std::int64_t>{format_version}));
  archive.write(keys::weights_only, at::tensor(std::vector<std::int64_t>{1}));
  save_module(archive, module);
  write_atomically(archive, path);
}

/// Copies the model's weights from a full or weights-only checkpoint into `module` (see `load_module` for
/// `strict`), nothing else; a checkpoint that does not fit, or a corrupt file, is a `CheckpointError` and leaves
/// the model as it was. Composer counterpart: `composer.utils.load_checkpoint(load_weights_only=True)`.
inline void load_weights(const std::string& path, torch::nn::Module& module, bool strict = true) {
  auto archive = read(path);
  load_module(archive, module, path, strict);
}

/// Restores a checkpoint written by `save` into `parts` and the policies `policies` visits, so that training
/// continues exactly where it stopped: the optimizers get back their state and each parameter group's
/// hyperparameters (the learning rate the schedule had set), and `State::loss` the saved loss, or no tensor when
/// the checkpoint holds none. Everything is checked before the model changes; a checkpoint that does not fit
/// (another model, other optimizers or policies) or a corrupt file is a `CheckpointError` naming the problem, and
/// leaves every part as it was; so is a weights-only checkpoint (`save_weights`), which holds nothing to resume.
/// `strict_model_weights` is `load_module`'s `strict`. Composer counterpart: `composer.utils.load_checkpoint`.
template <class PolicyList>
void load(const std::string& path, const TrainingParts& parts, PolicyList& policies, bool strict_model_weights = true) {
  State& state = parts.state;
  const std::string& where = path;
  auto archive = read(path);
  if (is_weights_only(archive))
    throw CheckpointError("composer: checkpoint '" + where + "' is weights-only (saved with save_weights_only): it "
                          "holds no training state to resume; load it with load_weights_only");

  c10::IValue names;
  archive.read(keys::policy_names, names);
  if (!names.isString() || names.toStringRef() != parts.policy_names)
    throw CheckpointError("composer: checkpoint '" + where + "' was saved with policies [" +
                          (names.isString() ? names.toStringRef() : std::string("?")) + "] but this trainer has [" +
                          parts.policy_names + "]");
  // A data-parallel run resumes with the ranks it was saved by: each rank takes its own generator back, and the
  // data shards and the global batch depend on the number of ranks.
  if (const std::int64_t saved_world = saved_world_size(archive); saved_world != state.world_size)
    throw CheckpointError("composer: checkpoint '" + where + "' was saved by a run of " + std::to_string(saved_world) +
                          (saved_world == 1 ? " process" : " data-parallel ranks") + "; resume it with the same number "
                          "(this run has " + std::to_string(state.world_size) + ")");
  const Timestamp timestamp = load_timestamp(archive, keys::timestamp, where);
  check_counters_match_name(path, timestamp);
  at::Tensor count, base_lrs, seed, scale;
  if (!archive.try_read(keys::optimizer_count, count) ||
      count.item<std::int64_t>() != static_cast<std::int64_t>(state.optimizers.size()))
    throw CheckpointError("composer: checkpoint '" + where + "' holds " +
                          (count.defined() ? std::to_string(count.item<std::int64_t>()) : std::string("no")) +
                          " optimizer(s), this trainer has " + std::to_string(state.optimizers.size()));
  if (!archive.try_read(keys::base_learning_rates, base_lrs) ||
      base_lrs.numel() != static_cast<std::int64_t>(parts.base_learning_rates.size()))
    throw CheckpointError("composer: checkpoint '" + where + "' does not hold one base learning rate per "
                          "parameter group of this trainer's optimizers");
  if (!archive.try_read(keys::rank_zero_seed, seed) || !archive.try_read(keys::loss_scale, scale))
    throw CheckpointError("composer: checkpoint '" + where + "' lacks its seed or loss scale");
  // The settings that shape the run must be those it was saved with, unless the caller allows a change.
  const auto saved_lrs = base_lrs.to(at::kDouble).contiguous();
  const std::string allow = "; resume with the settings of the run, or allow changed settings "
                            "(TrainerOptions::load_allow_changed_settings). Nothing was loaded";
  bool learning_rates_changed = false;
  for (std::size_t g = 0; g < parts.base_learning_rates.size(); ++g) {
    const double saved = saved_lrs.data_ptr<double>()[g];
    if (saved == parts.base_learning_rates[g]) continue;
    learning_rates_changed = true;
    if (!parts.allow_changed_settings)
      throw CheckpointError("composer: checkpoint '" + where + "' was trained with learning rate " +
                            std::to_string(saved) + " for parameter group " + std::to_string(g) +
                            ", but this trainer's optimizer has " + std::to_string(parts.base_learning_rates[g]) + allow);
  }
  if (parts.requested_seed && static_cast<std::uint64_t>(seed.item<std::int64_t>()) != *parts.requested_seed &&
      !parts.allow_changed_settings)
    throw CheckpointError("composer: checkpoint '" + where + "' was trained with seed " +
                          std::to_string(static_cast<std::uint64_t>(seed.item<std::int64_t>())) +
                          ", but this trainer's seed is " + std::to_string(*parts.requested_seed) + allow);
  at::Tensor saved_batch_size, saved_batches_per_epoch;
  const bool has_batch_size = archive.try_read(keys::train_batch_size, saved_batch_size);
  if (parts.batches_per_epoch && archive.try_read(keys::batches_per_epoch, saved_batches_per_epoch) &&
      saved_batches_per_epoch.item<std::int64_t>() > 0 &&
      saved_batches_per_epoch.item<std::int64_t>() != *parts.batches_per_epoch && !parts.allow_changed_settings)
    throw CheckpointError("composer: checkpoint '" + where + "' was trained with " +
                          std::to_string(saved_batches_per_epoch.item<std::int64_t>()) +
                          " batches per epoch, but this trainer's training data has " +
                          std::to_string(*parts.batches_per_epoch) +
                          " (another batch size, data set or train_subset_num_batches)" + allow);

  at::Tensor loss;
  const bool has_loss = archive.try_read(keys::loss, loss);

  std::vector<std::string> snapshots;
  for (auto& optimizer : state.optimizers) snapshots.push_back(optimizer_snapshot(*optimizer));
  // Each optimizer's saved group options, applied with the rest once everything has been read.
  std::vector<std::vector<std::unique_ptr<torch::optim::OptimizerOptions>>> group_options;
  auto roll_back = [&] {
    for (std::size_t i = 0; i < state.optimizers.size(); ++i) restore_optimizer(*state.optimizers[i], snapshots[i]);
  };
  auto restore_policies = [&](auto restores_now) {
    std::size_t index = 0;
    policies.for_each_policy([&](auto& policy) {
      using P = std::remove_cvref_t<decltype(policy)>;
      if constexpr (std::remove_cvref_t<decltype(restores_now)>::template value<P>) {
        torch::serialize::InputArchive sub;
        if (!archive.try_read(keys::policy + std::to_string(index), sub))
          throw CheckpointError("composer: checkpoint '" + where + "' has no state for policy " + policy_name<P>());
        if constexpr (loads_state_into_state<P>)
          policy.load_state(sub, state);
        else
          policy.load_state(sub);
      }
      ++index;
    });
  };
  try {
    // Policies that reshape the model or optimizers go first, so the optimizers' state fits again.
    restore_policies(restored_with_state{});
    // The model is checked before the optimizers are touched, so a checkpoint of another model is refused by its
    // tensors' names and shapes rather than by an optimizer's state that does not fit.
    load_module(archive, state.model.module(), where, strict_model_weights, /*copy=*/false);
    for (std::size_t i = 0; i < state.optimizers.size(); ++i) {
      torch::serialize::InputArchive sub;
      if (!archive.try_read(keys::optimizer + std::to_string(i), sub))
        throw CheckpointError("composer: checkpoint '" + where + "' has no state for optimizer " + std::to_string(i));
      state.optimizers[i]->load(sub);
      group_options.push_back(
          saved_group_options(sub, *state.optimizers[i], "checkpoint '" + where + "', optimizer " + std::to_string(i)));
      // The checkpoint was read onto the CPU: the optimizer's state (momenta, moments) joins its parameters.
      if (!state.device.is_cpu()) move_optimizer_state(*state.optimizers[i], state.device);
    }
    restore_policies(restored_alone{});
    load_module(archive, state.model.module(), where, strict_model_weights);
  } catch (const CheckpointError&) {
    roll_back();
    throw;
  } catch (const std::exception& error) {
    roll_back();
    const std::string what = error.what();  // LibTorch's messages go on with a stack trace: its first line says it
    throw CheckpointError("composer: checkpoint '" + where + "' could not be restored: " +
                          what.substr(0, what.find('\n')));
  }
  for (std::size_t i = 0; i < group_options.size(); ++i)
    for (std::size_t g = 0; g < group_options[i].size(); ++g)
      state.optimizers[i]->param_groups()[g].set_options(std::move(group_options[i][g]));
  // With changed learning rates allowed, the trainer's own bases stay and its groups take them (its schedules, if
  // any, scale them from the next batch on).
  if (!learning_rates_changed) {
    for (std::size_t i = 0; i < parts.base_learning_rates.size(); ++i)
      parts.base_learning_rates[i] = saved_lrs.data_ptr<double>()[i];
  } else {
    std::size_t index = 0;
    for (auto& optimizer : state.optimizers)
      for (auto& group : optimizer->param_groups()) group.options().set_lr(parts.base_learning_rates[index++]);
  }
  if (has_batch_size && saved_batch_size.item<std::int64_t>() > 0)
    state.train_batch_size = saved_batch_size.item<std::int64_t>();
  state.loss = has_loss ? loss.to(state.device) : at::Tensor();
  state.timestamp = timestamp;
  state.previous_timestamp = timestamp;
  state.rank_zero_seed = static_cast<std::uint64_t>(seed.item<std::int64_t>());
  parts.scaler.set_scale(scale.item<double>());
  load_rng(archive, state.device, where, state.rank, state.world_size);
}

}  // namespace checkpoint
}  // namespace composer
