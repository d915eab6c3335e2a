#pragma once
/// \file
/// A data-parallel process group on c10d, the engine under `torch.distributed`: the ranks meet at a `TCPStore`
/// (rank 0 serves it at `MASTER_ADDR:MASTER_PORT`) and talk through `ProcessGroupGloo` (or, for CUDA devices in a
/// translation unit compiled with `COMPOSER_WITH_NCCL` against a CUDA LibTorch, `ProcessGroupNCCL`), with a timeout on every
/// collective so that a rank that died or hangs makes the others fail with a `DistributedError` instead of
/// waiting forever. Composer counterpart: `composer.utils.dist` (`initialize_dist`, `all_reduce`, `broadcast`,
/// `all_gather`, `barrier`).

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

// Both LibTorch builds the library supports (Debian's 1.13 and PyPI's 2.x) have Gloo compiled in; the c10d header
// declares its Gloo process group only under this macro.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// NCCL for CUDA devices: define COMPOSER_WITH_NCCL (and give the compiler NCCL's and CUDA's headers) in translation
// units built against a LibTorch with CUDA; the c10d header declares its NCCL process group only under USE_C10D_NCCL.
#if defined(COMPOSER_WITH_NCCL)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace composer::dist {

/// A failed set-up or collective of a data-parallel run: a missing or wrong launcher variable, a rendezvous that
/// could not be reached, or another rank that died or did not answer within the timeout. The message names the
/// rank that raised it and what it was doing. Composer counterpart: the `RuntimeError`s of `torch.distributed`.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The c10d backend a group talks through. Composer counterpart: `dist.initialize_dist`'s backend choice ("gloo" on
/// CPU, "nccl" on CUDA).
enum class Backend {
  automatic,  ///< NCCL for a CUDA device when compiled with `COMPOSER_WITH_NCCL`, Gloo otherwise
  gloo,       ///< Gloo: CPU tensors (and CUDA tensors, through the host)
  nccl,       ///< NCCL: CUDA tensors on `cuda:local_rank`; other tensors are staged there
};

/// Whether this translation unit was compiled with NCCL (`COMPOSER_WITH_NCCL`).
inline constexpr bool nccl_compiled_in =
#if defined(COMPOSER_WITH_NCCL)
    true;
#else
    false;
#endif

/// Where this process stands in a data-parallel run and where the ranks meet: the variables a launcher sets
/// (`composer_launch`, torchrun, a cluster's scheduler). Composer counterpart: the environment
/// `composer.utils.dist.initialize_dist` reads.
struct DistributedOptions {
  /// Number of processes in the run (`WORLD_SIZE`).
  int world_size = 1;
  /// This process's rank, in [0, world_size) (`RANK`).
  int rank = 0;
  /// This process's rank on its node (`LOCAL_RANK`): the CUDA device it should train on.
  int local_rank = 0;
  /// The host of rank 0, which serves the rendezvous store (`MASTER_ADDR`).
  std::string master_addr = "127.0.0.1";
  /// The rendezvous store's TCP port on `master_addr` (`MASTER_PORT`).
  int master_port = 29500;
  /// How long the rendezvous and every collective may wait for the other ranks before failing.
  std::chrono::milliseconds timeout = std::chrono::seconds(120);
  /// The backend; `automatic` chooses by `device`.
  Backend backend = Backend::automatic;
  /// The device the training runs on: a CUDA device selects NCCL under `Backend::automatic` when compiled in.
  c10::Device device = c10::Device(c10::kCPU);

  /// The backend `automatic` stands for with these options.
  Backend resolved_backend() const noexcept {
    if (backend != Backend::automatic) return backend;
    return device.is_cuda() && nccl_compiled_in ? Backend::nccl : Backend::gloo;
  }

  /// \throws DistributedError naming the first value that cannot work.
  void validate() const {
    auto fail = [](const std::string& what) { throw DistributedError("composer: data-parallel set-up: " + what); };
    if (world_size < 1) fail("WORLD_SIZE must be at least 1, got " + std::to_string(world_size));
    if (rank < 0 || rank >= world_size)
      fail("RANK must be in [0, WORLD_SIZE) = [0, " + std::to_string(world_size) + "), got " + std::to_string(rank));
    if (local_rank < 0) fail("LOCAL_RANK must not be negative, got " + std::to_string(local_rank));
    if (master_addr.empty()) fail("MASTER_ADDR is empty");
    if (master_port < 1 || master_port > 65535)
      fail("MASTER_PORT must be in [1, 65535], got " + std::to_string(master_port));
    if (timeout.count() <= 0) fail("the timeout must be positive");
    if (resolved_backend() == Backend::nccl && !nccl_compiled_in)
      fail("the NCCL backend was asked for, but this translation unit was compiled without it: define "
           "COMPOSER_WITH_NCCL (with NCCL's headers, against a LibTorch built with CUDA), or use Backend::gloo");
  }
};

namespace detail {

// The value of environment variable `name`, if set.
inline std::optional<std::string> environment_variable(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::optional<std::string>(value) : std::nullopt;
}

// `text` as a whole integer, or a DistributedError naming `name`.
inline int parse_environment_integer(const char* name, const std::string& text) {
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || value < INT32_MIN || value > INT32_MAX)
    throw DistributedError(std::string("composer: data-parallel set-up: ") + name + " must be a whole number, got '" +
                           text + "'");
  return static_cast<int>(value);
}

// The first line of an error from c10d or Gloo, without LibTorch's backtrace.
inline std::string first_line(const std::exception& error) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string text = c10_error ? c10_error->what_without_backtrace() : error.what();
  if (const auto end = text.find('\n'); end != std::string::npos) text.resize(end);
  return text;
}

}  // namespace detail

/// The launcher's variables, when this process was started as one rank of a data-parallel run: none when
/// `WORLD_SIZE` is unset. `WORLD_SIZE`, `RANK`, `MASTER_ADDR` and `MASTER_PORT` are then required; `LOCAL_RANK`
/// defaults to `RANK`. Composer counterpart: the variables `composer -n N` and torchrun set.
/// \throws DistributedError for a variable that is missing, not a number or out of range.
inline std::optional<DistributedOptions> options_from_environment(
    std::chrono::milliseconds timeout = DistributedOptions{}.timeout, c10::Device device = c10::Device(c10::kCPU)) {
  const auto world_size = detail::environment_variable("WORLD_SIZE");
  if (!world_size) {
    for (const char* name : {"RANK", "LOCAL_RANK"})
      if (detail::environment_variable(name))
        throw DistributedError(std::string("composer: data-parallel set-up: ") + name +
                               " is set but WORLD_SIZE is not; start the ranks with composer_launch, or set WORLD_SIZE, "
                               "RANK, MASTER_ADDR and MASTER_PORT");
    return std::nullopt;
  }
  auto required = [](const char* name) {
    auto value = detail::environment_variable(name);
    if (!value)
      throw DistributedError(std::string("composer: data-parallel set-up: WORLD_SIZE is set but ") + name +
                             " is not; a data-parallel rank needs WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT "
                             "(composer_launch sets them)");
    return *value;
  };
  DistributedOptions options;
  options.world_size = detail::parse_environment_integer("WORLD_SIZE", *world_size);
  options.rank = detail::parse_environment_integer("RANK", required("RANK"));
  const auto local_rank = detail::environment_variable("LOCAL_RANK");
  options.local_rank = local_rank ? detail::parse_environment_integer("LOCAL_RANK", *local_rank) : options.rank;
  options.master_addr = required("MASTER_ADDR");
  options.master_port = detail::parse_environment_integer("MASTER_PORT", required("MASTER_PORT"));
  options.timeout = timeout;
  options.device = device;
  options.validate();
  return options;
}

/// One process's membership of a data-parallel run: its rank, the world size, and the collectives the Trainer
/// uses, each on one tensor of the same shape and dtype on every rank, each bounded by the timeout. Made by
/// `ProcessGroup::create` (or by the Trainer from the launcher's variables). Composer counterpart: the default
/// process group of `torch.distributed`.
class ProcessGroup {
  using Work = decltype(std::declval<c10d::ProcessGroupGloo&>().barrier());
  // What every c10d backend derives from: c10d::Backend in LibTorch 2.x, c10d::ProcessGroup in 1.13.
  using Collectives = std::conditional_t<std::is_base_of_v<c10d::Backend, c10d::ProcessGroupGloo>, c10d::Backend,
                                         c10d::ProcessGroup>;

 public:
  /// An all-reduce started and not yet waited for (`ProcessGroup::all_reduce_sum_async`).
  class Pending {
   public:
    Pending() = default;
    /// Waits for the all-reduce; the tensor then holds the sum over the ranks.
    /// \throws DistributedError when a rank died or did not take part within the timeout.
    void wait() {
      if (!work_) return;
      Work work = std::move(work_);
      work_ = Work();
      group_->wait(work, what_);
      if (staged_.defined()) target_.copy_(staged_);
      staged_ = target_ = at::Tensor();
    }

   private:
    friend class ProcessGroup;
    Pending(const ProcessGroup* group, Work work, std::string what, at::Tensor target, at::Tensor staged)
        : group_(group), work_(std::move(work)), what_(std::move(what)), target_(std::move(target)),
          staged_(std::move(staged)) {}
    const ProcessGroup* group_ = nullptr;
    Work work_;
    std::string what_;
    at::Tensor target_;  // the caller's tensor, when the collective ran on a staged copy
    at::Tensor staged_;  // its copy on the backend's device (NCCL), copied back by wait()
  };

  /// Joins the run `options` describe: rank 0 opens the rendezvous store at `master_addr:master_port`, every rank
  /// connects to it, and the Gloo group forms once all `world_size` ranks have arrived (within the timeout).
  /// Gloo binds the loopback interface when `master_addr` is a loopback address, the interface named by
  /// `GLOO_SOCKET_IFNAME` when set, and otherwise the address this host's name resolves to.
  /// \throws DistributedError naming the rank and the address when the ranks cannot meet.
  static std::shared_ptr<ProcessGroup> create(const DistributedOptions& options) {
    options.validate();
    auto group = std::shared_ptr<ProcessGroup>(new ProcessGroup(options));
    const std::string where = options.master_addr + ":" + std::to_string(options.master_port);
    try {
      c10d::TCPStoreOptions store_options;
      store_options.port = static_cast<std::uint16_t>(options.master_port);
      store_options.isServer = options.rank == 0;
      store_options.numWorkers = static_cast<std::size_t>(options.world_size);
      store_options.waitWorkers = true;
      store_options.timeout = options.timeout;
      group->store_ = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
    } catch (const std::exception& error) {
      throw DistributedError("composer: rank " + std::to_string(options.rank) + " of " +
                             std::to_string(options.world_size) + " could not " +
                             (options.rank == 0 ? "open" : "reach") + " the rendezvous store at " + where +
                             " within " + std::to_string(options.timeout.count()) + " ms: " + detail::first_line(error));
    }
    const bool nccl = options.resolved_backend() == Backend::nccl;
    try {
      if (nccl) {
#if defined(COMPOSER_WITH_NCCL)
        auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
        nccl_options->timeout = options.timeout;
        group->collectives_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(group->store_, options.rank,
                                                                           options.world_size, nccl_options);
        group->device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options.local_rank));
#endif
      } else {
        auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
        gloo_options->devices.push_back(gloo_device(options.master_addr));
        group->collectives_ = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store_, options.rank,
                                                                           options.world_size, gloo_options);
      }
    } catch (const std::exception& error) {
      throw DistributedError("composer: rank " + std::to_string(options.rank) + " of " +
                             std::to_string(options.world_size) + " could not form the " + (nccl ? "NCCL" : "Gloo") +
                             " group through " + where + ": " + detail::first_line(error));
    }
    return group;
  }

  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  /// This process's rank. Composer counterpart: `dist.get_global_rank()`.
  int rank() const noexcept { return options_.rank; }
  /// Number of processes. Composer counterpart: `dist.get_world_size()`.
  int world_size() const noexcept { return options_.world_size; }
  /// This process's rank on its node. Composer counterpart: `dist.get_local_rank()`.
  int local_rank() const noexcept { return options_.local_rank; }
  /// The options the group was made with.
  const DistributedOptions& options() const noexcept { return options_; }
  /// The backend the group talks through.
  Backend backend() const noexcept { return options_.resolved_backend(); }

  /// Starts summing `tensor` (contiguous, the same shape and dtype on every rank) in place over the ranks;
  /// `what` names it in errors. Composer counterpart: `dist.all_reduce(tensor, async_op=True)`.
  Pending all_reduce_sum_async(at::Tensor tensor, std::string what) const {
    at::Tensor staged = staged_copy(tensor);
    std::vector<at::Tensor> tensors{staged.defined() ? staged : tensor};
    c10d::AllreduceOptions reduce;
    reduce.reduceOp = c10d::ReduceOp::SUM;
    Work work = start(what, [&] { return collectives_->allreduce(tensors, reduce); });
    return Pending(this, std::move(work), std::move(what), staged.defined() ? tensor : at::Tensor(), staged);
  }

  /// Sums `tensor` in place over the ranks. Composer counterpart: `dist.all_reduce(tensor)`.
  void all_reduce_sum(const at::Tensor& tensor, const std::string& what) const {
    all_reduce_sum_async(tensor, what).wait();
  }

  /// Copies rank `root`'s `tensor` into every rank's. Composer counterpart: `dist.broadcast(tensor, src)`.
  void broadcast(const at::Tensor& tensor, int root, const std::string& what) const {
    const at::Tensor staged = staged_copy(tensor);
    std::vector<at::Tensor> tensors{staged.defined() ? staged : tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    Work work = start(what, [&] { return collectives_->broadcast(tensors, options); });
    wait(work, what);
    if (staged.defined()) tensor.copy_(staged);
  }

  /// Every rank's `tensor` (the same shape and dtype on every rank), by rank. Composer counterpart:
  /// `dist.all_gather(tensor)`.
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor, const std::string& what) const {
    const at::Tensor staged = staged_copy(tensor);
    std::vector<at::Tensor> inputs{staged.defined() ? staged : tensor.contiguous()};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world_size(); ++r) outputs[0].push_back(at::empty_like(inputs[0]));
    Work work = start(what, [&] { return collectives_->allgather(outputs, inputs); });
    wait(work, what);
    if (staged.defined())
      for (auto& output : outputs[0]) output = output.to(tensor.device());
    return outputs[0];
  }

  /// Waits until every rank has reached the same barrier. Composer counterpart: `dist.barrier()`.
  void barrier(const std::string& what) const {
    Work work = start(what, [&] { return collectives_->barrier(); });
    wait(work, what);
  }

 private:
  explicit ProcessGroup(DistributedOptions options) : options_(std::move(options)) {}

  // The Gloo transport device for a run meeting at `master_addr`.
  static std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
    if (const auto interface = detail::environment_variable("GLOO_SOCKET_IFNAME"); interface && !interface->empty())
      return c10d::ProcessGroupGloo::createDeviceForInterface(*interface);
    if (master_addr == "localhost" || master_addr.rfind("127.", 0) == 0 || master_addr == "::1")
      return c10d::ProcessGroupGloo::createDeviceForHostname(master_addr == "localhost" ? "127.0.0.1" : master_addr);
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }

  // A contiguous copy of `tensor` on the backend's device when the backend cannot take it where it is (NCCL and a
  // tensor off its CUDA device); otherwise no tensor, and the collective runs on `tensor` itself.
  at::Tensor staged_copy(const at::Tensor& tensor) const {
    if (backend() != Backend::nccl || tensor.device() == device_) return at::Tensor();
    return tensor.to(device_).contiguous();
  }

  template <class Start>
  Work start(const std::string& what, Start&& start_collective) const {
    try {
      return start_collective();
    } catch (const std::exception& error) {
      throw failure(what, error);
    }
  }

  void wait(Work& work, const std::string& what) const {
    try {
      work->wait();
    } catch (const std::exception& error) {
      throw failure(what, error);
    }
  }

  DistributedError failure(const std::string& what, const std::exception& error) const {
    return DistributedError("composer: rank " + std::to_string(rank()) + " of " + std::to_string(world_size()) +
                            ": the " + what + " failed: " + detail::first_line(error) +
                            " (another rank stopped, or did not reach the same point within " +
                            std::to_string(options_.timeout.count()) + " ms)");
  }

  DistributedOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Collectives> collectives_;
  c10::Device device_ = c10::Device(c10::kCPU);  // where NCCL's tensors must be
};

namespace detail {
inline std::mutex& default_group_mutex() {
  static std::mutex mutex;
  return mutex;
}
inline std::shared_ptr<ProcessGroup>& default_group_slot() {
  static std::shared_ptr<ProcessGroup> group;
  return group;
}
}  // namespace detail

/// Makes `options`' group this process's default one (what Trainers without `TrainerOptions::process_group` use),
/// or returns the default group already made with the same rank and world size. A world of one makes no group.
/// Composer counterpart: `dist.initialize_dist`.
/// \throws DistributedError when a default group of another rank or size exists, or the ranks cannot meet.
inline std::shared_ptr<ProcessGroup> initialize(const DistributedOptions& options) {
  std::lock_guard<std::mutex> lock(detail::default_group_mutex());
  auto& group = detail::default_group_slot();
  if (group) {
    if (group->rank() != options.rank || group->world_size() != options.world_size)
      throw DistributedError("composer: this process already joined a data-parallel run as rank " +
                             std::to_string(group->rank()) + " of " + std::to_string(group->world_size()) +
                             "; it cannot join another as rank " + std::to_string(options.rank) + " of " +
                             std::to_string(options.world_size));
    return group;
  }
  options.validate();
  if (options.world_size == 1) return nullptr;
  group = ProcessGroup::create(options);
  return group;
}

/// The default group: made from the launcher's variables the first time it is asked for (none when `WORLD_SIZE`
/// is unset or 1: a single process). Composer counterpart: the Trainer initializing `torch.distributed` from the
/// environment.
/// \throws DistributedError for wrong or missing variables, or ranks that cannot meet.
/// `device` is the device the run trains on: with `Backend::automatic`, a CUDA device talks through NCCL when
/// compiled in.
inline std::shared_ptr<ProcessGroup> default_group(c10::Device device = c10::Device(c10::kCPU)) {
  {
    std::lock_guard<std::mutex> lock(detail::default_group_mutex());
    if (detail::default_group_slot()) return detail::default_group_slot();
  }
  const auto options = options_from_environment(DistributedOptions{}.timeout, device);
  return options ? initialize(*options) : nullptr;
}

}  // namespace composer::dist
