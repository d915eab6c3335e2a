// composer_launch — starts N local ranks of a training program, the C++ counterpart of Composer's
// `composer -n N script.py` launcher (and of `torchrun --nproc-per-node N`).
//
//   composer_launch -n N [--nnodes M] [--node-rank K] [--master-addr ADDR] [--master-port PORT]
//                   [--grace-seconds S] [--no-prefix] [--] program [args...]
//
// Each rank i in [0, N) runs `program args...` (searched on PATH) with the launcher's environment plus the
// variables torchrun sets, which composer's distributed setup reads:
//
//   WORLD_SIZE=N*M  RANK=K*N+i  LOCAL_RANK=i  LOCAL_WORLD_SIZE=N  NODE_RANK=K  MASTER_ADDR  MASTER_PORT
//
// `--master-port 0` picks a free TCP port on the master address (single node only). Every line a rank writes to
// stdout or stderr comes out on the launcher's stdout as `[rank R] line` (R the global rank), unless --no-prefix.
// Ranks read stdin from /dev/null.
//
// When a rank exits non-zero or is killed by a signal, the launcher reports it on stderr, sends SIGTERM to the
// other ranks, SIGKILLs whatever is left after --grace-seconds, and exits 1. Each rank runs in its own process
// group, and signals go to the whole group, so the processes a rank started stop with it. SIGINT, SIGTERM and
// SIGHUP sent to the launcher are forwarded to every rank (a second one kills them at once); the launcher then
// exits with 128 + the signal's number. When every rank exits 0, the launcher exits 0.
//
// On a cluster, each node runs one launcher with one process per GPU, all pointing at node 0:
//
//   composer_launch -n GPUS_PER_NODE --nnodes NODES --node-rank THIS_NODE
//                   --master-addr HOST_OF_NODE_0 --master-port P -- ./train [args...]
//
// or the scheduler (e.g. Slurm with one task per GPU) sets those variables itself and runs ./train directly.

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kProgramName = "composer_launch";

constexpr std::string_view kUsage =
    "Usage: composer_launch -n N [--nnodes M] [--node-rank K] [--master-addr ADDR] [--master-port PORT]\n"
    "                       [--grace-seconds S] [--no-prefix] [--] program [args...]\n"
    "\n"
    "Starts N processes of `program args...` on this node, as `composer -n N` / torchrun do, each with\n"
    "WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR and MASTER_PORT set.\n"
    "\n"
    "Options:\n"
    "  -n, --nproc N        processes on this node (required, positive)\n"
    "  --nnodes M           nodes in the job (default 1)\n"
    "  --node-rank K        this node's rank in [0, M) (default 0)\n"
    "  --master-addr ADDR   address of rank 0's node (default 127.0.0.1)\n"
    "  --master-port PORT   port of the rendezvous on ADDR, in [0, 65535] (default 29500);\n"
    "                       0 picks a free port (only with --nnodes 1)\n"
    "  --grace-seconds S    after a failure, how long the other ranks get to stop after SIGTERM\n"
    "                       before SIGKILL (default 5)\n"
    "  --no-prefix          write the ranks' lines without the `[rank R] ` prefix\n"
    "  -h, --help           print this help and exit\n"
    "\n"
    "Exits 0 when every rank exits 0, 1 when one fails, 128+SIG when stopped by signal SIG, 2 on bad arguments.\n";

// Where an over-long line without a newline is cut and written anyway.
constexpr std::size_t kMaxPendingLine = 1 << 16;
// How long SIGKILLed ranks get to close their output before the launcher stops reading it.
constexpr auto kKillDrain = std::chrono::seconds(2);

struct Options {
  int nproc = 0;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double grace_seconds = 5.0;
  bool prefix = true;
  bool help = false;
  std::vector<std::string> command;
};

// A bad command line: the message is printed with the usage, and the launcher exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------------------------

// Parses a whole decimal integer in [min, max], or throws naming the option and the value.
int parse_int(std::string_view option, std::string_view text, int min, int max, std::string_view expected) {
  int value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || value < min || value > max) {
    throw UsageError("invalid value '" + std::string(text) + "' for " + std::string(option) + ": expected " +
                     std::string(expected));
  }
  return value;
}

// Parses a finite, non-negative number of seconds.
double parse_seconds(std::string_view option, std::string_view text) {
  const std::string copy(text);
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || errno != 0 || !std::isfinite(value) || value < 0) {
    throw UsageError("invalid value '" + copy + "' for " + std::string(option) +
                     ": expected a non-negative number of seconds");
  }
  return value;
}

// Splits `--name=value` into its name and value; other arguments come back whole with no value.
std::pair<std::string_view, std::optional<std::string_view>> split_inline_value(std::string_view arg) {
  if (arg.starts_with("--")) {
    if (const auto eq = arg.find('='); eq != std::string_view::npos) return {arg.substr(0, eq), arg.substr(eq + 1)};
  }
  return {arg, std::nullopt};
}

// Checks the options against each other once they are all read.
void validate(const Options& options) {
  if (options.help) return;
  if (options.nproc == 0) throw UsageError("missing required option -n (processes on this node)");
  if (options.node_rank >= options.nnodes) {
    const std::string nnodes = std::to_string(options.nnodes);
    throw UsageError("invalid value '" + std::to_string(options.node_rank) +
                     "' for --node-rank: expected a rank in [0, " + nnodes + ") for --nnodes " + nnodes);
  }
  if (static_cast<long long>(options.nproc) * options.nnodes > INT_MAX) {
    throw UsageError("-n " + std::to_string(options.nproc) + " times --nnodes " + std::to_string(options.nnodes) +
                     " is too large a world");
  }
  if (options.master_port == 0 && options.nnodes > 1) {
    throw UsageError("--master-port 0 (pick a free port) needs --nnodes 1: every node must be given the same port");
  }
  if (options.master_addr.empty()) {
    throw UsageError("invalid value '' for --master-addr: expected a host name or address");
  }
  if (options.command.empty()) throw UsageError("missing program to run (put it after the options, or after --)");
}

Options parse_args(int argc, char** argv) {
  Options options;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.empty() || arg[0] != '-' || arg == "-") break;  // the program: everything from here is its own

    const auto [name, inline_value] = split_inline_value(arg);
    // Takes the option's value from `--name=value` or from the next argument.
    auto value = [&, name = name, inline_value = inline_value]() -> std::string_view {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw UsageError("option " + std::string(name) + " needs a value");
      return argv[++i];
    };
    auto no_value = [&, name = name, inline_value = inline_value] {
      if (inline_value) throw UsageError("option " + std::string(name) + " takes no value");
    };

    if (name == "-n" || name == "--nproc") {
      options.nproc = parse_int(name, value(), 1, INT_MAX, "a positive integer");
    } else if (name == "--nnodes") {
      options.nnodes = parse_int(name, value(), 1, INT_MAX, "a positive integer");
    } else if (name == "--node-rank") {
      options.node_rank = parse_int(name, value(), 0, INT_MAX, "a non-negative integer");
    } else if (name == "--master-addr") {
      options.master_addr = std::string(value());
    } else if (name == "--master-port") {
      options.master_port = parse_int(name, value(), 0, 65535, "a port number in [0, 65535]");
    } else if (name == "--grace-seconds") {
      options.grace_seconds = parse_seconds(name, value());
    } else if (name == "--no-prefix") {
      no_value();
      options.prefix = false;
    } else if (name == "-h" || name == "--help") {
      no_value();
      options.help = true;
    } else {
      throw UsageError("unknown option '" + std::string(arg) + "'");
    }
  }
  options.command.assign(argv + i, argv + argc);
  validate(options);
  return options;
}

// ---------------------------------------------------------------------------------------------------------------
// Small POSIX helpers
// ---------------------------------------------------------------------------------------------------------------

std::string errno_text(int error) { return std::strerror(error); }

// Writes all of `data`, retrying short writes; gives up quietly if the reader has gone.
void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// The launcher's own messages, one line each on stderr.
void report(std::string_view message) {
  write_all(STDERR_FILENO, std::string(kProgramName) + ": " + std::string(message) + "\n");
}

// "SIGSEGV (11)" for the usual signals, the bare number for others.
std::string describe_signal(int sig) {
  static constexpr std::pair<int, std::string_view> kNames[] = {
      {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"},
      {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
      {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"}, {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
      {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"}};
  for (const auto& [number, name] : kNames) {
    if (number == sig) return std::string(name) + " (" + std::to_string(sig) + ")";
  }
  return std::to_string(sig);
}

// Finds a free TCP port on `address`: binds port 0 there and asks the kernel which port it chose. The port is
// free again once the socket closes, so a rank can bind it (another program could, too, in between).
int pick_free_port(const std::string& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(address.c_str(), "0", &hints, &found); rc != 0) {
    throw std::runtime_error("cannot resolve --master-addr '" + address + "': " + ::gai_strerror(rc));
  }
  int last_error = 0;
  int port = 0;
  for (const addrinfo* ai = found; ai != nullptr && port == 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
      port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port)
                                         : ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    } else {
      last_error = errno;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (port == 0) throw std::runtime_error("cannot pick a free port on '" + address + "': " + errno_text(last_error));
  return port;
}

// ---------------------------------------------------------------------------------------------------------------
// Signals: the handler only writes the signal's number into a pipe that the poll() loop watches.
// ---------------------------------------------------------------------------------------------------------------

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int sig) {
  const int saved_errno = errno;
  const auto byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t ignored = ::write(g_signal_pipe[1], &byte, 1);
  errno = saved_errno;
}

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP};

void install_signal_handlers() {
  if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw std::runtime_error("cannot create a pipe: " + errno_text(errno));
  }
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  ::sigaction(SIGCHLD, &action, nullptr);
  for (const int sig : kForwardedSignals) ::sigaction(sig, &action, nullptr);
  // A closed stdout shows up as a failed write(), which write_all() ignores; the ranks keep running.
  ::signal(SIGPIPE, SIG_IGN);
}

// In a forked rank, before exec: back to the default dispositions the program expects.
void restore_default_signals() {
  ::signal(SIGCHLD, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  for (const int sig : kForwardedSignals) ::signal(sig, SIG_DFL);
}

// ---------------------------------------------------------------------------------------------------------------
// The launcher
// ---------------------------------------------------------------------------------------------------------------

struct Rank {
  int rank = 0;        // global rank
  int local_rank = 0;  // index on this node
  pid_t pid = -1;      // also the id of its process group
  int out_fd = -1;     // read end of its stdout+stderr pipe, -1 once closed
  bool running = false;
  std::string pending;  // the start of a line not yet ended by '\n'
};

class Launcher {
 public:
  Launcher(Options options, int master_port) : options_(std::move(options)), master_port_(master_port) {}

  // Starts every rank, relays their output until all are gone, and returns the launcher's exit status.
  int run() {
    spawn_all();
    while (any_running() || any_output_open()) step();
    return exit_status();
  }

 private:
  // Running: the ranks work. Draining: all ranks exited; waiting for what they started to close their output.
  // Terminating: SIGTERM (or a forwarded signal) sent, waiting out the grace period. Killed: SIGKILL sent.
  enum class Phase { Running, Draining, Terminating, Killed };

  Options options_;
  int master_port_;
  std::vector<Rank> ranks_;
  Phase phase_ = Phase::Running;
  std::optional<Clock::time_point> deadline_;
  bool failed_ = false;   // a rank failed (or could not be started)
  int stop_signal_ = 0;   // the signal the launcher was stopped with, if any

  void spawn_all() {
    const int world_size = options_.nproc * options_.nnodes;
    for (int local = 0; local < options_.nproc; ++local) {
      Rank rank;
      rank.rank = options_.node_rank * options_.nproc + local;
      rank.local_rank = local;
      if (!spawn(rank, world_size)) {
        failed_ = true;
        stop(SIGTERM);
        return;
      }
      ranks_.push_back(std::move(rank));
    }
  }

  // Forks one rank with its pipe, process group and environment; false (reported) if that fails.
  bool spawn(Rank& rank, int world_size) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      report("cannot create a pipe for rank " + std::to_string(rank.rank) + ": " + errno_text(errno));
      return false;
    }
    // Built before fork, so the child only has to exec.
    std::vector<char*> argv;
    for (auto& arg : options_.command) argv.push_back(arg.data());
    argv.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) {
      report("cannot start rank " + std::to_string(rank.rank) + ": fork: " + errno_text(errno));
      ::close(pipe_fds[0]);
      ::close(pipe_fds[1]);
      return false;
    }
    if (pid == 0) exec_rank(rank, world_size, pipe_fds[1], argv);

    ::setpgid(pid, pid);  // also done by the child: whichever runs first, the group exists before any kill()
    ::close(pipe_fds[1]);
    rank.pid = pid;
    rank.out_fd = pipe_fds[0];
    rank.running = true;
    return true;
  }

  // In the forked child: its own process group, output into the pipe, torchrun's variables, then exec.
  [[noreturn]] void exec_rank(const Rank& rank, int world_size, int out_fd, std::vector<char*>& argv) const {
    restore_default_signals();
    ::setpgid(0, 0);
    if (const int null_fd = ::open("/dev/null", O_RDONLY); null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(out_fd, STDERR_FILENO);

    const auto set = [](const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); };
    set("WORLD_SIZE", std::to_string(world_size));
    set("RANK", std::to_string(rank.rank));
    set("LOCAL_RANK", std::to_string(rank.local_rank));
    set("LOCAL_WORLD_SIZE", std::to_string(options_.nproc));
    set("NODE_RANK", std::to_string(options_.node_rank));
    set("MASTER_ADDR", options_.master_addr);
    set("MASTER_PORT", std::to_string(master_port_));

    ::execvp(argv[0], argv.data());
    write_all(STDERR_FILENO,
              std::string(kProgramName) + ": cannot run '" + argv[0] + "': " + errno_text(errno) + "\n");
    ::_exit(127);
  }

  // One turn of the loop: wait for output, a signal, a rank's exit or the deadline, and handle what came.
  void step() {
    std::vector<pollfd> fds{{g_signal_pipe[0], POLLIN, 0}};
    std::vector<Rank*> owners{nullptr};
    for (auto& rank : ranks_) {
      if (rank.out_fd < 0) continue;
      fds.push_back({rank.out_fd, POLLIN, 0});
      owners.push_back(&rank);
    }
    const int ready = ::poll(fds.data(), fds.size(), poll_timeout_ms());
    if (ready < 0 && errno != EINTR) throw std::runtime_error("poll: " + errno_text(errno));

    for (std::size_t i = 1; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents != 0) read_output(*owners[i]);
    }
    if (ready > 0 && fds[0].revents != 0) handle_signals();
    reap();
    if (phase_ == Phase::Running && !any_running() && any_output_open()) {
      // Every rank exited; something they started still holds their output open.
      phase_ = Phase::Draining;
      deadline_ = after(options_.grace_seconds);
    }
    if (deadline_ && Clock::now() >= *deadline_) on_deadline();
  }

  int poll_timeout_ms() const {
    if (!deadline_) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline_ - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
  }

  static Clock::time_point after(double seconds) {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  // Reads what a rank wrote and relays its complete lines; at end of file, its last partial line too.
  void read_output(Rank& rank) {
    char buffer[1 << 16];
    const ssize_t n = ::read(rank.out_fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
      close_output(rank);
      return;
    }
    rank.pending.append(buffer, static_cast<std::size_t>(n));
    std::string out;
    std::size_t start = 0;
    for (std::size_t newline; (newline = rank.pending.find('\n', start)) != std::string::npos; start = newline + 1) {
      append_line(out, rank, std::string_view(rank.pending).substr(start, newline - start));
    }
    rank.pending.erase(0, start);
    if (rank.pending.size() >= kMaxPendingLine) {
      append_line(out, rank, rank.pending);
      rank.pending.clear();
    }
    write_all(STDOUT_FILENO, out);
  }

  void append_line(std::string& out, const Rank& rank, std::string_view line) const {
    if (options_.prefix) out += "[rank " + std::to_string(rank.rank) + "] ";
    out += line;
    out += '\n';
  }

  // Flushes a rank's partial last line and stops reading its output.
  void close_output(Rank& rank) {
    if (!rank.pending.empty()) {
      std::string out;
      append_line(out, rank, rank.pending);
      rank.pending.clear();
      write_all(STDOUT_FILENO, out);
    }
    ::close(rank.out_fd);
    rank.out_fd = -1;
  }

  // Takes the signals' numbers out of the self-pipe and forwards SIGINT/SIGTERM/SIGHUP to the ranks.
  void handle_signals() {
    unsigned char signals[64];
    ssize_t n;
    while ((n = ::read(g_signal_pipe[0], signals, sizeof signals)) > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        if (signals[i] != SIGCHLD) on_stop_signal(signals[i]);
      }
    }
  }

  void on_stop_signal(int sig) {
    if (phase_ == Phase::Terminating || phase_ == Phase::Killed) {
      report("received " + describe_signal(sig) + " again, killing every rank");
      kill_all();
      return;
    }
    if (!failed_ && stop_signal_ == 0) stop_signal_ = sig;
    report("received " + describe_signal(sig) + ", forwarding it to the ranks");
    stop(sig);
  }

  // Collects every rank that has exited, and starts the shutdown at the first failure.
  void reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid < 0 && errno == EINTR) continue;
      if (pid <= 0) return;
      for (auto& rank : ranks_) {
        if (rank.pid != pid) continue;
        rank.running = false;
        on_exit(rank, status);
      }
    }
  }

  void on_exit(const Rank& rank, int status) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    // Only the first failure is the cause; exits after that are the shutdown's doing.
    if (phase_ != Phase::Running || failed_ || stop_signal_ != 0) return;
    failed_ = true;
    const std::string who = "rank " + std::to_string(rank.rank) + " (pid " + std::to_string(rank.pid) + ")";
    if (WIFSIGNALED(status)) {
      report(who + " was killed by signal " + describe_signal(WTERMSIG(status)));
    } else {
      report(who + " exited with status " + std::to_string(WEXITSTATUS(status)));
    }
    if (const int others = running_count(); others > 0) {
      report("stopping the other " + std::to_string(others) + " running rank(s)");
    }
    stop(SIGTERM);
  }

  // Sends `sig` to every rank's group and gives them the grace period before SIGKILL.
  void stop(int sig) {
    signal_groups(sig);
    phase_ = Phase::Terminating;
    deadline_ = after(options_.grace_seconds);
  }

  void kill_all() {
    signal_groups(SIGKILL);
    phase_ = Phase::Killed;
    deadline_ = Clock::now() + kKillDrain;
  }

  void on_deadline() {
    switch (phase_) {
      case Phase::Running:
        deadline_.reset();
        break;
      case Phase::Draining:
        stop(SIGTERM);
        break;
      case Phase::Terminating:
        if (const int left = running_count(); left > 0) {
          report("killing the " + std::to_string(left) + " rank(s) still running after the grace period");
        }
        kill_all();
        break;
      case Phase::Killed:
        // Whatever still holds an output pipe has left the rank's process group: stop waiting for it.
        for (auto& rank : ranks_) {
          if (rank.out_fd >= 0) close_output(rank);
        }
        deadline_.reset();
        break;
    }
  }

  // Signals the process group of every rank that may still have processes: running, or its output still open.
  void signal_groups(int sig) const {
    for (const auto& rank : ranks_) {
      if (!rank.running && rank.out_fd < 0) continue;
      if (::kill(-rank.pid, sig) != 0 && rank.running) ::kill(rank.pid, sig);
    }
  }

  int running_count() const {
    int count = 0;
    for (const auto& rank : ranks_) count += rank.running ? 1 : 0;
    return count;
  }
  bool any_running() const { return running_count() > 0; }
  bool any_output_open() const {
    for (const auto& rank : ranks_) {
      if (rank.out_fd >= 0) return true;
    }
    return false;
  }

  int exit_status() const {
    if (stop_signal_ != 0) return 128 + stop_signal_;
    return failed_ ? 1 : 0;
  }
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse_args(argc, argv);
  } catch (const UsageError& error) {
    std::cerr << kProgramName << ": " << error.what() << "\n\n" << kUsage;
    return 2;
  }
  if (options.help) {
    std::cout << kUsage;
    return 0;
  }
  try {
    const int port = options.master_port == 0 ? pick_free_port(options.master_addr) : options.master_port;
    install_signal_handlers();
    return Launcher(std::move(options), port).run();
  } catch (const std::exception& error) {
    report(error.what());
    return 1;
  }
}
