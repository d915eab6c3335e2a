// Logger destinations driven through a real Engine: the progress bar's terminal and plain output, the metrics
// file's CSV and JSON Lines rows, appending, errors, and the plot script over a generated CSV.
#include <torch/torch.h>

#include <composer/core/engine.hpp>
#include <composer/core/state.hpp>
#include <composer/io/files.hpp>
#include <composer/loggers/loggers.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using composer::Event;
using composer::Time;
using composer::loggers::MetricsFile;
using composer::loggers::ProgressBar;
namespace io = composer::io;

namespace loggers_test {

// The clock the progress bars read: the tests move it.
double fake_now = 0;
double fake_clock() { return fake_now; }

// A FILE* the progress bar writes to, read back as a string.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) { REQUIRE(file_ != nullptr); }
  ~Capture() { std::fclose(file_); }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  std::FILE* file() const { return file_; }
  std::string text() const {
    std::fflush(file_);
    std::rewind(file_);
    std::string out;
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file_)) > 0) out.append(buffer, n);
    std::fseek(file_, 0, SEEK_END);
    return out;
  }

 private:
  std::FILE* file_;
};

std::size_t count(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A fresh folder under the system's temporary folder, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = io::join(io::temp_directory(),
                     "composer-loggers-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    io::remove_all(path_);
    io::create_directories(path_);
  }
  ~TempDir() {
    try {
      io::remove_all(path_);
    } catch (const io::FileError&) {
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A training state of `len` batches per epoch, at the start of training.
composer::State make_state(Time max_duration, std::int64_t len) {
  composer::State state;
  state.set_max_duration(max_duration);
  state.dataloader_len = len;
  state.dataloader_label = "train";
  return state;
}

constexpr std::int64_t batch_size = 32;

// One training batch as the Trainer runs it: time passes, the timestamp advances, the loss is logged, BATCH_END.
template <class Engine>
void train_batch(Engine& engine, double loss, double seconds = 0.5) {
  auto& state = engine.state();
  fake_now += seconds;
  state.timestamp = state.timestamp.to_next_batch(batch_size, 0, std::chrono::duration<double>(seconds));
  engine.logger().log_metrics({{"loss/train/total", loss}});
  engine.template run<Event::BATCH_END>();
}

// One epoch of `batches` batches with losses 1/1, 1/2, 1/3, ...
template <class Engine>
void train_epoch(Engine& engine, std::int64_t batches) {
  engine.template run<Event::EPOCH_START>();
  for (std::int64_t i = 1; i <= batches; ++i) train_batch(engine, 1.0 / static_cast<double>(i));
  auto& state = engine.state();
  state.timestamp = state.timestamp.to_next_epoch();
  engine.template run<Event::EPOCH_END>();
}

// An evaluation that ends with `accuracy`, with the eval loader active as in the Trainer.
template <class Engine>
void evaluate(Engine& engine, double accuracy) {
  auto& state = engine.state();
  const auto len = state.dataloader_len;
  state.dataloader_label = "eval";
  state.dataloader_len = 3;
  engine.logger().log_metrics({{"metrics/eval/accuracy", accuracy}});
  engine.template run<Event::EVAL_END>();
  state.dataloader_label = "train";
  state.dataloader_len = len;
}

ProgressBar::Options bar_options(std::FILE* stream, ProgressBar::Style style) {
  ProgressBar::Options options;
  options.stream = stream;
  options.style = style;
  options.redraw_seconds = 0;
  options.bar_width = 8;
  options.clock = &fake_clock;
  return options;
}

using BarEngine = composer::BasicEngine<composer::State, ProgressBar>;
using BothEngine = composer::BasicEngine<composer::State, ProgressBar, MetricsFile>;

// Runs the script with `args` under bash; returns its exit status and fills `output` with stdout and stderr.
int run_script(const std::string& args, std::string& output) {
  const std::string script = [] {
#ifdef COMPOSER_SOURCE_DIR
    return std::string(COMPOSER_SOURCE_DIR) + "/scripts/plot_metrics.sh";
#else
    return io::parent_path(io::parent_path(io::parent_path(__FILE__))) + "/scripts/plot_metrics.sh";
#endif
  }();
  REQUIRE_MESSAGE(io::exists(script), "plot script not found at ", script);
  CHECK((io::permissions(script) & S_IXUSR) != 0);
  TempDir scratch;
  const std::string log = scratch.path() + "/output.txt";
  const std::string command = "'" + script + "' " + args + " >'" + log + "' 2>&1";
  const int status = std::system(command.c_str());
  output = read_file(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace loggers_test

using namespace loggers_test;

TEST_SUITE("loggers") {

TEST_CASE("logger policies are Engine logger destinations with the documented events") {
  static_assert(composer::role_of<ProgressBar> == composer::Role::logger);
  static_assert(composer::role_of<MetricsFile> == composer::Role::logger);
  static_assert(ProgressBar::events == composer::EventSet{Event::FIT_START, Event::EPOCH_START, Event::BATCH_END,
                                                           Event::EPOCH_END, Event::EVAL_END, Event::FIT_END});
  static_assert(MetricsFile::events.empty());
  static_assert(composer::policy_check<ProgressBar, composer::State>::value);
  static_assert(composer::policy_check<MetricsFile, composer::State>::value);
  static_assert(BothEngine::handles<Event::BATCH_END>() && !BothEngine::handles<Event::AFTER_LOSS>());
  static_assert(std::is_default_constructible_v<ProgressBar> && std::is_default_constructible_v<MetricsFile>);
  static_assert(std::is_nothrow_move_constructible_v<MetricsFile> && !std::is_copy_constructible_v<MetricsFile>);

  composer::State state;
  BothEngine engine(state);  // default: progress bar on stderr, metrics file disabled
  CHECK(engine.get<ProgressBar>().stream() == stderr);
  CHECK_FALSE(engine.get<MetricsFile>().enabled());
  CHECK_FALSE(engine.get<MetricsFile>().is_open());
  CHECK(engine.logger().has_metrics_destination());
}

TEST_CASE("ProgressBar in terminal style redraws one line per epoch and ends it at EPOCH_END") {
  Capture out;
  fake_now = 100;
  auto state = make_state(Time::from_epoch(2), 4);
  BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
  CHECK(engine.get<ProgressBar>().tty());

  engine.run<Event::FIT_START>();
  engine.run<Event::EPOCH_START>();
  CHECK(out.text() == "\rEpoch 1/2 [........] 0/4 | -- ba/s | ETA --:--");

  train_batch(engine, 10.0);  // t = 0.5 s, 1/8 of the run: ETA 3.5 s, rounded to 4
  CHECK(out.text().ends_with("\rEpoch 1/2 [##......] 1/4 | 2.00 ba/s | ETA 00:04 | loss 10.0000"));
  train_batch(engine, 2.5);  // a shorter line: the rest of the longer one is blanked
  CHECK(out.text().ends_with("\rEpoch 1/2 [####....] 2/4 | 2.00 ba/s | ETA 00:03 | loss 2.5000 "));
  train_batch(engine, 2.0);
  train_batch(engine, 1.0);  // t = 2 s, half the run: ETA 2 s
  CHECK(out.text().find('\n') == std::string::npos);
  state.timestamp = state.timestamp.to_next_epoch();
  engine.run<Event::EPOCH_END>();
  const std::string first_epoch = out.text();
  CHECK(first_epoch.ends_with("\rEpoch 1/2 [########] 4/4 | 2.00 ba/s | ETA 00:02 | loss 1.0000\n"));
  CHECK(count(first_epoch, "\r") == 6);  // EPOCH_START, four batches, EPOCH_END
  CHECK(count(first_epoch, "\n") == 1);

  // An evaluation between epochs gets its own line.
  evaluate(engine, 0.75);
  CHECK(out.text() == first_epoch + "Eval at batch 4 | eval/accuracy 0.7500\n");

  // The next epoch shows the latest loss and eval metrics; an evaluation within it redraws the line.
  engine.run<Event::EPOCH_START>();
  CHECK(out.text().ends_with("\rEpoch 2/2 [........] 0/4 | -- ba/s | ETA 00:02 | loss 1.0000 | eval/accuracy 0.7500"));
  train_batch(engine, 0.5);
  train_batch(engine, 0.25);
  evaluate(engine, 0.875);
  CHECK(out.text().ends_with("\rEpoch 2/2 [####....] 2/4 | 2.00 ba/s | ETA 00:01 | loss 0.2500 | eval/accuracy 0.8750"));
  CHECK(count(out.text(), "\n") == 2);
  train_batch(engine, 0.125);
  train_batch(engine, 0.0625);
  state.timestamp = state.timestamp.to_next_epoch();
  engine.run<Event::EPOCH_END>();
  CHECK(out.text().ends_with("\rEpoch 2/2 [########] 4/4 | 2.00 ba/s | ETA 00:00 | loss 0.0625 | eval/accuracy 0.8750\n"));
  engine.run<Event::FIT_END>();
  engine.close();
  CHECK(count(out.text(), "\n") == 3);  // two epochs and one separate eval line, nothing left open

  CHECK(engine.get<ProgressBar>().loss() == doctest::Approx(0.0625));
  CHECK(engine.get<ProgressBar>().metrics().at("eval/accuracy") == doctest::Approx(0.875));
}

TEST_CASE("ProgressBar in terminal style throttles redraws to redraw_seconds") {
  Capture out;
  fake_now = 0;
  auto state = make_state(Time::from_epoch(1), 4);
  auto options = bar_options(out.file(), ProgressBar::Style::tty);
  options.redraw_seconds = 1.0;
  BarEngine engine(state, ProgressBar(options));
  engine.run<Event::FIT_START>();
  train_epoch(engine, 4);  // batches at 0.5, 1.0, 1.5, 2.0 s: drawn at the start, at 1.0 s, at the last batch
  CHECK(count(out.text(), "\r") == 4);  // start, 1.0 s, last batch, epoch end
  CHECK(out.text().ends_with("[########] 4/4 | 2.00 ba/s | ETA 00:00 | loss 0.2500\n"));
}

TEST_CASE("ProgressBar in terminal style ends a line left open by FIT_END or close") {
  Capture out;
  fake_now = 0;
  auto state = make_state(Time::from_batch(6), 4);  // stops within the second epoch
  {
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
    engine.run<Event::FIT_START>();
    train_epoch(engine, 4);
    CHECK(out.text().ends_with("\rEpoch 1/2 [########] 4/4 | 2.00 ba/s | ETA 00:01 | loss 0.2500\n"));
    engine.run<Event::EPOCH_START>();
    train_batch(engine, 0.5);
    train_batch(engine, 0.25);
    CHECK_FALSE(out.text().ends_with("\n"));
    engine.run<Event::FIT_END>();
    CHECK(out.text().ends_with("\rEpoch 2/2 [####....] 2/4 | 2.00 ba/s | ETA 00:00 | loss 0.2500\n"));
    CHECK(count(out.text(), "\n") == 2);

    // A line still open when the engine closes (training interrupted) is ended there.
    engine.run<Event::EPOCH_START>();
    CHECK_FALSE(out.text().ends_with("\n"));
  }
  CHECK(out.text().ends_with("\n"));
  CHECK(count(out.text(), "\n") == 3);
}

TEST_CASE("ProgressBar in plain style prints whole lines at its interval, epoch ends and eval ends") {
  Capture out;
  fake_now = 0;
  auto state = make_state(Time::from_epoch(2), 20);
  BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::plain)));
  CHECK_FALSE(engine.get<ProgressBar>().tty());
  engine.run<Event::FIT_START>();
  train_epoch(engine, 20);
  evaluate(engine, 0.5);
  train_epoch(engine, 20);
  evaluate(engine, 0.625);
  engine.run<Event::FIT_END>();
  engine.close();

  const std::string text = out.text();
  CHECK(text.find('\r') == std::string::npos);
  CHECK(text.ends_with("\n"));
  const auto lines = split_lines(text);
  // Default interval: 10% of 20 batches = every 2 batches, 9 lines before the epoch-end line, plus the eval line.
  REQUIRE(lines.size() == 2 * (9 + 1 + 1));
  CHECK(lines[0] == "Epoch 1/2 batch 2/20 | 2.00 ba/s | ETA 00:19 | loss 0.5000");
  CHECK(lines[8] == "Epoch 1/2 batch 18/20 | 2.00 ba/s | ETA 00:11 | loss 0.0556");
  CHECK(lines[9] == "Epoch 1/2 done: 20 batches in 00:10 | 2.00 ba/s | ETA 00:10 | loss 0.0500");
  CHECK(lines[10] == "Eval at batch 20 | eval/accuracy 0.5000");
  CHECK(lines[11] == "Epoch 2/2 batch 2/20 | 2.00 ba/s | ETA 00:09 | loss 0.5000 | eval/accuracy 0.5000");
  CHECK(lines[20] == "Epoch 2/2 done: 20 batches in 00:10 | 2.00 ba/s | ETA 00:00 | loss 0.0500 | eval/accuracy 0.5000");
  CHECK(lines[21] == "Eval at batch 40 | eval/accuracy 0.6250");
  CHECK(count(text, "ETA ") == 20);
}

TEST_CASE("ProgressBar plain interval: print_every, unknown epoch length, unfinished epoch at FIT_END") {
  Capture out;
  fake_now = 0;
  SUBCASE("print_every") {
    auto state = make_state(Time::from_epoch(1), 20);
    auto options = bar_options(out.file(), ProgressBar::Style::plain);
    options.print_every = 5;
    BarEngine engine(state, ProgressBar(options));
    engine.run<Event::FIT_START>();
    train_epoch(engine, 20);
    const auto lines = split_lines(out.text());
    REQUIRE(lines.size() == 4);  // batches 5, 10, 15, then the epoch end
    CHECK(lines[2].starts_with("Epoch 1/1 batch 15/20 | "));
    CHECK(lines[3].starts_with("Epoch 1/1 done: 20 batches"));
  }
  SUBCASE("unknown epoch length: every 100 batches, no total") {
    composer::State state;
    state.set_max_duration(Time::from_batch(250));
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::plain)));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    for (int i = 0; i < 250; ++i) train_batch(engine, 1.0, 0.2);
    engine.run<Event::FIT_END>();
    const auto lines = split_lines(out.text());
    REQUIRE(lines.size() == 3);  // batches 100, 200, and the unfinished epoch at FIT_END
    CHECK(lines[0] == "Epoch 1 batch 100 | 5.00 ba/s | ETA 00:30 | loss 1.0000");
    CHECK(lines[2] == "Epoch 1 batch 250 | 5.00 ba/s | ETA 00:00 | loss 1.0000");
  }
}

TEST_CASE("ProgressBar ETA follows max_duration in batches and samples, and a resumed run's own speed") {
  Capture out;
  fake_now = 0;
  SUBCASE("batches: the epoch total is known from dataloader_len") {
    auto state = make_state(Time::from_batch(30), 10);
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    for (int i = 0; i < 5; ++i) train_batch(engine, 0.5, 0.4);  // 2 s for 1/6 of the run: 10 s left
    CHECK(out.text().ends_with("\rEpoch 1/3 [####....] 5/10 | 2.50 ba/s | ETA 00:10 | loss 0.5000"));
  }
  SUBCASE("samples") {
    auto state = make_state(Time::from_sample(960), 10);
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    for (int i = 0; i < 5; ++i) train_batch(engine, 0.5, 0.4);  // 160 of 960 samples; no epoch total
    CHECK(out.text().ends_with("\rEpoch 1 [####....] 5/10 | 2.50 ba/s | ETA 00:10 | loss 0.5000"));
  }
  SUBCASE("hours") {
    auto state = make_state(Time::from_batch(10000), 100);
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::plain)));
    engine.run<Event::FIT_START>();
    for (int i = 0; i < 10; ++i) train_batch(engine, 0.5, 2.0);  // 20 s per 10 batches: 9990 left, 19980 s
    CHECK(out.text() == "Epoch 1/100 batch 10/100 | 0.50 ba/s | ETA 5:33:00 | loss 0.5000\n");
  }
  SUBCASE("resumed within an epoch, without EPOCH_START") {
    auto state = make_state(Time::from_batch(20), 20);
    for (int i = 0; i < 10; ++i) state.timestamp = state.timestamp.to_next_batch(batch_size);
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::plain)));
    engine.run<Event::FIT_START>();
    train_batch(engine, 0.5, 1.0);
    train_batch(engine, 0.5, 1.0);  // 2 s for 10% of the run: 8 s for the remaining 40%
    CHECK(out.text() == "Epoch 1/1 batch 12/20 | 1.00 ba/s | ETA 00:08 | loss 0.5000\n");
  }
}

TEST_CASE("ProgressBar chooses its style from the stream, and stays silent when disabled or off rank 0") {
  Capture out;
  fake_now = 0;
  SUBCASE("a file is not a terminal") {
    auto options = bar_options(out.file(), ProgressBar::Style::automatic);
    CHECK_FALSE(ProgressBar(options).tty());
  }
  SUBCASE("a pseudo-terminal is one, and its width cuts the line") {
    const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
      MESSAGE("no pseudo-terminal available: skipped");
      if (master >= 0) ::close(master);
      return;
    }
    const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    REQUIRE(slave >= 0);
    winsize size{};
    size.ws_col = 30;
    size.ws_row = 10;
    REQUIRE(::ioctl(slave, TIOCSWINSZ, &size) == 0);
    std::FILE* terminal = ::fdopen(slave, "w");
    REQUIRE(terminal != nullptr);
    {
      auto state = make_state(Time::from_epoch(1), 4);
      BarEngine engine(state, ProgressBar(bar_options(terminal, ProgressBar::Style::automatic)));
      CHECK(engine.get<ProgressBar>().tty());
      engine.run<Event::FIT_START>();
      engine.run<Event::EPOCH_START>();
    }
    // A read of the pseudo-terminal may return part of the output: read until the line's end (or 5 s pass).
    std::string seen;
    for (int waited = 0; seen.find('\n') == std::string::npos && waited < 50; ++waited) {
      pollfd ready{master, POLLIN, 0};
      if (::poll(&ready, 1, 100) <= 0) continue;
      char chunk[256];
      const auto n = ::read(master, chunk, sizeof chunk);
      if (n > 0) seen.append(chunk, static_cast<std::size_t>(n));
    }
    REQUIRE_FALSE(seen.empty());
    // The line is cut to 29 columns; the terminal turns the closing "\n" into "\r\n".
    CHECK(seen == "\rEpoch 1/1 [........] 0/4 | --\r\n");
    std::fclose(terminal);
    ::close(master);
  }
  SUBCASE("disabled") {
    auto options = bar_options(out.file(), ProgressBar::Style::plain);
    options.enabled = false;
    auto state = make_state(Time::from_epoch(1), 2);
    BarEngine engine(state, ProgressBar(options));
    engine.run<Event::FIT_START>();
    train_epoch(engine, 2);
    evaluate(engine, 0.5);
    engine.run<Event::FIT_END>();
    engine.close();
    CHECK(out.text().empty());
    CHECK_FALSE(engine.get<ProgressBar>().loss().has_value());
  }
  SUBCASE("rank 1") {
    auto state = make_state(Time::from_epoch(1), 2);
    state.rank = 1;
    state.world_size = 2;
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::plain)));
    engine.run<Event::FIT_START>();
    train_epoch(engine, 2);
    evaluate(engine, 0.5);
    engine.run<Event::FIT_END>();
    CHECK(out.text().empty());
  }
}

TEST_CASE("MetricsFile writes a long-format CSV, creating missing folders, flushed at every call") {
  TempDir dir;
  const std::string path = dir.path() + "/runs/a/metrics.csv";
  Capture quiet;
  fake_now = 0;
  auto state = make_state(Time::from_epoch(2), 2);
  BothEngine engine(state, ProgressBar(bar_options(quiet.file(), ProgressBar::Style::plain)), MetricsFile(path));
  CHECK(engine.get<MetricsFile>().format() == MetricsFile::Format::csv);
  CHECK(read_file(path) == "epoch,batch,sample,key,value\n");  // opened at construction

  engine.run<Event::FIT_START>();
  engine.run<Event::EPOCH_START>();
  train_batch(engine, 2.25);
  CHECK(read_file(path) == "epoch,batch,sample,key,value\n0,1,32,loss/train/total,2.25\n");  // already on disk
  state.timestamp = state.timestamp.to_next_batch(batch_size);
  engine.logger().log_metrics({{"loss/train/total", 0.1}, {"lr/group0", 1e-05}});
  state.timestamp = state.timestamp.to_next_epoch();
  engine.run<Event::EPOCH_END>();
  evaluate(engine, 0.75);
  engine.logger().log_metrics({});  // nothing to write
  engine.logger().log_metrics({{"odd,\"key\"", std::numeric_limits<double>::quiet_NaN()},
                               {"up", std::numeric_limits<double>::infinity()},
                               {"down", -std::numeric_limits<double>::infinity()},
                               {"big", 1e300}});
  CHECK(read_file(path) ==
        "epoch,batch,sample,key,value\n"
        "0,1,32,loss/train/total,2.25\n"
        "0,2,64,loss/train/total,0.1\n"
        "0,2,64,lr/group0,1e-05\n"
        "1,2,64,metrics/eval/accuracy,0.75\n"
        "1,2,64,big,1e+300\n"
        "1,2,64,down,-inf\n"
        "1,2,64,\"odd,\"\"key\"\"\",nan\n"
        "1,2,64,up,inf\n");

  engine.close();
  CHECK_FALSE(engine.get<MetricsFile>().is_open());
  const std::string closed = read_file(path);
  engine.logger().log_metrics({{"loss/train/total", 9.0}});  // after close: ignored
  CHECK(read_file(path) == closed);
}

TEST_CASE("MetricsFile writes one JSON object per call, escaping keys, non-finite values as strings") {
  TempDir dir;
  const std::string path = dir.path() + "/metrics.JSONL";
  composer::State state;
  composer::BasicEngine<composer::State, MetricsFile> engine(state, MetricsFile(path));
  CHECK(engine.get<MetricsFile>().format() == MetricsFile::Format::jsonl);
  CHECK(read_file(path).empty());  // no header

  state.timestamp = state.timestamp.to_next_batch(16);
  engine.logger().log_metrics({{"loss/train/total", 0.5}, {"lr/group0", 0.25}});
  state.timestamp = state.timestamp.to_next_batch(16).to_next_epoch();
  engine.logger().log_metrics({{"metrics/eval/accuracy", 1.0}});
  engine.logger().log_metrics({});  // no line for an empty call
  engine.logger().log_metrics({{"q\"b\\n\nt\t\x01", -2.5},
                               {"nan", std::numeric_limits<double>::quiet_NaN()},
                               {"pinf", std::numeric_limits<double>::infinity()},
                               {"ninf", -std::numeric_limits<double>::infinity()},
                               {"caf\xc3\xa9", 3.0}});
  engine.close();
  CHECK(read_file(path) ==
        "{\"epoch\":0,\"batch\":1,\"sample\":16,\"metrics\":{\"loss/train/total\":0.5,\"lr/group0\":0.25}}\n"
        "{\"epoch\":1,\"batch\":2,\"sample\":32,\"metrics\":{\"metrics/eval/accuracy\":1}}\n"
        "{\"epoch\":1,\"batch\":2,\"sample\":32,\"metrics\":{\"caf\xc3\xa9\":3,\"nan\":\"NaN\",\"ninf\":\"-Infinity\","
        "\"pinf\":\"Infinity\",\"q\\\"b\\\\n\\nt\\t\\u0001\":-2.5}}\n");
}

TEST_CASE("MetricsFile appends to an existing file: a resumed run keeps its earlier log, the header once") {
  TempDir dir;
  SUBCASE("csv") {
    const std::string path = dir.path() + "/metrics.csv";
    composer::State state;
    for (int run = 0; run < 2; ++run) {
      composer::BasicEngine<composer::State, MetricsFile> engine(state, MetricsFile(path));
      state.timestamp = state.timestamp.to_next_batch(8);
      engine.logger().log_metrics({{"loss/train/total", run == 0 ? 1.5 : 0.5}});
    }
    CHECK(read_file(path) == "epoch,batch,sample,key,value\n0,1,8,loss/train/total,1.5\n0,2,16,loss/train/total,0.5\n");
  }
  SUBCASE("jsonl") {
    const std::string path = dir.path() + "/metrics.jsonl";
    composer::State state;
    for (int run = 0; run < 2; ++run) {
      MetricsFile file(path);
      file.log_metrics({{"a", static_cast<double>(run)}}, state);
    }
    CHECK(read_file(path) == "{\"epoch\":0,\"batch\":0,\"sample\":0,\"metrics\":{\"a\":0}}\n"
                             "{\"epoch\":0,\"batch\":0,\"sample\":0,\"metrics\":{\"a\":1}}\n");
  }
  SUBCASE("an empty file gets the header; a row cut short by a crash is ended first") {
    const std::string path = dir.path() + "/metrics.csv";
    write_file(path, "");
    composer::State state;
    {
      MetricsFile file(path);
    }
    CHECK(read_file(path) == "epoch,batch,sample,key,value\n");
    write_file(path, "epoch,batch,sample,key,value\n0,1,8,loss/tra");
    MetricsFile file(path);
    file.log_metrics({{"x", 2.0}}, state);
    CHECK(read_file(path) == "epoch,batch,sample,key,value\n0,1,8,loss/tra\n0,0,0,x,2\n");
  }
  SUBCASE("a file that is not a metrics CSV is left alone") {
    const std::string path = dir.path() + "/notes.csv";
    write_file(path, "name,score\nann,3\n");
    try {
      MetricsFile file(path);
      FAIL("no error for a foreign CSV");
    } catch (const std::runtime_error& error) {
      const std::string message = error.what();
      CHECK(message.find(path) != std::string::npos);
      CHECK(message.find("epoch,batch,sample,key,value") != std::string::npos);
    }
    CHECK(read_file(path) == "name,score\nann,3\n");
  }
}

TEST_CASE("MetricsFile reports a path it cannot write, at construction, naming it") {
  TempDir dir;
  write_file(dir.path() + "/plain-file", "x");
  auto message_of = [](const std::string& path) -> std::string {
    try {
      MetricsFile file(path);
    } catch (const std::runtime_error& error) {
      return error.what();
    }
    return "";
  };
  SUBCASE("a parent that is a file") {
    const std::string path = dir.path() + "/plain-file/sub/metrics.csv";
    const std::string message = message_of(path);
    CHECK(message.starts_with("composer: cannot create the folder"));
    CHECK(message.find("'" + path + "'") != std::string::npos);
  }
  SUBCASE("a folder") {
    const std::string path = dir.path() + "/folder.csv";
    io::create_directories(path);
    const std::string message = message_of(path);
    CHECK(message.starts_with("composer: cannot open metrics file '" + path + "' for appending: "));
  }
  SUBCASE("an extension of no known format") {
    CHECK_THROWS_AS(MetricsFile(dir.path() + "/metrics.txt"), std::invalid_argument);
    CHECK_FALSE(io::exists(dir.path() + "/metrics.txt"));
    MetricsFile::Options options;
    options.path = dir.path() + "/metrics.txt";
    options.format = MetricsFile::Format::csv;
    MetricsFile forced(options);
    CHECK(read_file(options.path) == "epoch,batch,sample,key,value\n");
  }
}

TEST_CASE("MetricsFile disabled creates and writes nothing") {
  TempDir dir;
  const std::string path = dir.path() + "/sub/metrics.csv";
  composer::State state;
  {
    composer::BasicEngine<composer::State, MetricsFile> engine(state, MetricsFile(path, /*enabled=*/false));
    CHECK_FALSE(engine.get<MetricsFile>().is_open());
    engine.logger().log_metrics({{"loss/train/total", 1.0}});
  }
  CHECK_FALSE(io::exists(path));
  CHECK_FALSE(io::exists(io::parent_path(path)));
}

TEST_CASE("plot_metrics.sh draws a PNG from a MetricsFile CSV, and fails clearly on a bad input") {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    MESSAGE("gnuplot is not installed: plot script not run");
    return;
  }
  TempDir dir;
  const std::string csv = dir.path() + "/metrics.csv";
  {
    Capture quiet;
    fake_now = 0;
    auto state = make_state(Time::from_epoch(3), 10);
    BothEngine engine(state, ProgressBar(bar_options(quiet.file(), ProgressBar::Style::plain)), MetricsFile(csv));
    engine.run<Event::FIT_START>();
    for (int epoch = 0; epoch < 3; ++epoch) {
      train_epoch(engine, 10);
      evaluate(engine, 0.5 + 0.1 * epoch);
    }
    engine.run<Event::FIT_END>();
  }
  std::string output;
  const std::string png = dir.path() + "/plots/metrics.png";
  CHECK(run_script("'" + csv + "' '" + png + "'", output) == 0);
  INFO(output);
  REQUIRE(io::exists(png));
  const std::string image = read_file(png);
  CHECK(image.size() > 1000);
  CHECK(image.starts_with(std::string("\x89PNG\r\n\x1a\n", 8)));

  // Missing file, neither key, not a metrics CSV, wrong arguments.
  CHECK(run_script("'" + (dir.path() + "/absent.csv") + "' '" + png + "'", output) != 0);
  CHECK(output.find("absent.csv' not found") != std::string::npos);
  const std::string other = dir.path() + "/other.csv";
  write_file(other, "epoch,batch,sample,key,value\n0,1,8,lr/group0,0.1\n0,2,16,loss/train/total,nan\n");
  CHECK(run_script("'" + other + "' '" + png + "'", output) != 0);
  CHECK(output.find("no finite value of 'loss/train/total' nor of 'metrics/eval/accuracy'") != std::string::npos);
  write_file(other, "name,score\n");
  CHECK(run_script("'" + other + "' '" + png + "'", output) != 0);
  CHECK(output.find("does not start with the header") != std::string::npos);
  CHECK(run_script("'" + csv + "'", output) != 0);
  CHECK(output.find("usage:") != std::string::npos);

  // One key is enough: the other panel says it has no value.
  write_file(other, "epoch,batch,sample,key,value\n0,1,8,loss/train/total,2\n0,2,16,loss/train/total,1\n");
  io::remove(png);
  CHECK(run_script("'" + other + "' '" + png + "'", output) == 0);
  CHECK(io::exists(png));
}

}  // TEST_SUITE
