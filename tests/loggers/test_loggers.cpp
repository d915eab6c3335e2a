// Logger destinations driven through a real Engine: the progress bar's terminal and plain output, the metrics
// file's CSV and JSON Lines rows, appending, errors, and the plot script over a generated CSV.
#include <torch/torch.h>

#include <composer/core/engine.hpp>
#include <composer/core/state.hpp>
#include <composer/io/files.hpp>
#include <composer/loggers.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
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

// An evaluation of `seconds` that ends with `accuracy`, with the eval loader active as in the Trainer.
template <class Engine>
void evaluate(Engine& engine, double accuracy, double seconds = 0) {
  auto& state = engine.state();
  const auto len = state.dataloader_len;
  state.dataloader_label = "eval";
  state.dataloader_len = 3;
  engine.template run<Event::EVAL_START>();
  fake_now += seconds;
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

// A metrics file appending to `path` with the run name `run`.
MetricsFile named_file(const std::string& path, const std::string& run) {
  MetricsFile::Options options;
  options.path = path;
  options.run_name = run;
  return MetricsFile(options);
}

// The line a terminal shows last: the text after the last '\r', without the blanks that erase a longer line.
std::string last_drawn(const std::string& text) {
  std::string line = text.substr(text.rfind('\r') + 1);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\n')) line.pop_back();
  return line;
}

// The height in pixels of a PNG image (its IHDR chunk), or 0 when `image` is not one.
std::uint32_t png_height(const std::string& image) {
  if (image.size() < 24 || !image.starts_with(std::string("\x89PNG\r\n\x1a\n", 8))) return 0;
  std::uint32_t height = 0;
  for (int i = 20; i < 24; ++i) height = height << 8 | static_cast<unsigned char>(image[static_cast<std::size_t>(i)]);
  return height;
}

// Runs the script with `args` under bash; returns its exit status and fills `output` with stdout, and with
// stderr too unless `errors` is given, which then gets stderr alone.
int run_script(const std::string& args, std::string& output, std::string* errors = nullptr) {
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
  const std::string error_log = scratch.path() + "/errors.txt";
  const std::string command =
      "'" + script + "' " + args + " >'" + log + "' " + (errors ? "2>'" + error_log + "'" : std::string("2>&1"));
  const int status = std::system(command.c_str());
  output = read_file(log);
  if (errors) *errors = read_file(error_log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace loggers_test

using namespace loggers_test;

TEST_SUITE("loggers") {

TEST_CASE("logger policies are Engine logger destinations with the documented events") {
  static_assert(composer::role_of<ProgressBar> == composer::Role::logger);
  static_assert(composer::role_of<MetricsFile> == composer::Role::logger);
  static_assert(ProgressBar::events == composer::EventSet{Event::FIT_START, Event::EPOCH_START, Event::BATCH_END,
                                                           Event::EPOCH_END, Event::EVAL_START, Event::EVAL_END,
                                                           Event::FIT_END});
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
    engine.run<Event::FIT_END>();  // the run's last 2 batches are this epoch's whole
    CHECK(out.text().ends_with("\rEpoch 2/2 [########] 2/2 | 2.00 ba/s | ETA 00:00 | loss 0.2500\n"));
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
  SUBCASE("a pseudo-terminal is one, and its width fits the line") {
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
    // The line fits in 29 columns without its bar and rate; the terminal turns the closing "\n" into "\r\n".
    CHECK(seen == "\rEpoch 1/1 0/4 ba | ETA --:--\r\n");
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

TEST_CASE("ProgressBar fits a long line to its width, dropping the least important parts first") {
  // What a bar `width` columns wide draws up to two of four batches, with a loss, the main eval metric and two
  // others; with `evaluate_after`, an evaluation follows (outside an epoch in plain style).
  auto draw_at = [](int width, ProgressBar::Style style = ProgressBar::Style::tty) {
    Capture out;
    fake_now = 0;
    auto state = make_state(Time::from_epoch(2), 4);
    auto options = bar_options(out.file(), style);
    options.width = width;
    options.print_every = 2;
    BarEngine engine(state, ProgressBar(options));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    engine.logger().log_metrics(
        {{"metrics/eval/accuracy", 0.75}, {"metrics/eval/cross_entropy", 0.5}, {"metrics/a/first", 1.0}});
    train_batch(engine, 1.0);
    train_batch(engine, 0.5);  // t = 1 s, a quarter of the run: ETA 3 s
    return out.text();
  };
  // Every piece of text between two '\r' or '\n' takes at most `width - 1` columns, blanks included.
  auto widest = [](const std::string& text) {
    std::size_t most = 0, run = 0;
    for (char c : text) {
      run = (c == '\r' || c == '\n') ? 0 : run + 1;
      most = std::max(most, run);
    }
    return most;
  };
  const std::string head = "Epoch 1/2", count = " 2/4 ba", rate = " | 2.00 ba/s";
  const std::string kept = " | ETA 00:03 | loss 0.5000 | eval/accuracy 0.7500";  // the main metric first
  const std::string first_other = " | a/first 1.0000", second_other = " | eval/cross_entropy 0.5000";
  auto bar = [](std::size_t filled, std::size_t empty) {
    return " [" + std::string(filled, '#') + std::string(empty, '.') + "] 2/4";
  };
  auto columns = [](const std::string& line) { return static_cast<int>(line.size()); };
  const std::string full = head + bar(4, 4) + rate + kept + first_other + second_other;
  struct Case {
    int width;
    std::string line;
  };
  const std::vector<Case> cases{
      {0, full},  // not a terminal: no limit
      {columns(full) + 1, full},
      {columns(full), head + bar(4, 4) + rate + kept + first_other},  // the last other metric goes first
      {columns(head + bar(4, 4) + rate + kept) + 1, head + bar(4, 4) + rate + kept},
      {columns(head + bar(4, 4) + rate + kept), head + bar(3, 4) + rate + kept},  // then bar cells, one by one
      {columns(head + bar(0, 1) + rate + kept) + 1, head + bar(0, 1) + rate + kept},
      {columns(head + bar(0, 1) + rate + kept), head + count + rate + kept},  // then the bar
      {columns(head + count + rate + kept), head + count + kept},              // then the rate
      {columns(head + count + kept) + 1, head + count + kept},
      {21, (head + count + kept).substr(0, 20)},  // a cut only when the kept parts alone do not fit
  };
  for (const auto& [width, line] : cases) {
    CAPTURE(width);
    const std::string text = draw_at(width);
    CHECK(last_drawn(text) == line);
    if (width > 0) CHECK(widest(text) <= static_cast<std::size_t>(width - 1));
  }

  // Plain lines fit the same way (without a bar); so does an evaluation's own line.
  CHECK(draw_at(columns(head + " batch 2/4" + rate + kept) + 1, ProgressBar::Style::plain) ==
        head + " batch 2/4" + rate + kept + "\n");
  Capture out;
  auto options = bar_options(out.file(), ProgressBar::Style::plain);
  const std::string eval_line = "Eval at batch 0 | eval/accuracy 0.7500 | a/first 1.0000";
  options.width = columns(eval_line) + 1;
  composer::State state;
  BarEngine engine(state, ProgressBar(options));
  engine.logger().log_metrics(
      {{"metrics/eval/accuracy", 0.75}, {"metrics/eval/cross_entropy", 0.5}, {"metrics/a/first", 1.0}});
  engine.run<Event::EVAL_END>();
  CHECK(out.text() == eval_line + "\n");
}

TEST_CASE("ProgressBar leaves evaluation time out of the rate, not out of the ETA") {
  Capture out;
  fake_now = 0;
  SUBCASE("terminal") {
    auto state = make_state(Time::from_epoch(2), 4);
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    train_batch(engine, 1.0);
    train_batch(engine, 0.5);
    CHECK(last_drawn(out.text()) == "Epoch 1/2 [####....] 2/4 | 2.00 ba/s | ETA 00:03 | loss 0.5000");
    // A 100 s evaluation within the epoch: the rate stays 2 batches per training second; the ETA counts it
    // (101 s for a quarter of the run: 303 s left).
    evaluate(engine, 0.75, 100.0);
    CHECK(last_drawn(out.text()) ==
          "Epoch 1/2 [####....] 2/4 | 2.00 ba/s | ETA 05:03 | loss 0.5000 | eval/accuracy 0.7500");
    train_batch(engine, 0.25);
    train_batch(engine, 0.125);  // 102 s for half the run
    state.timestamp = state.timestamp.to_next_epoch();
    engine.run<Event::EPOCH_END>();
    CHECK(out.text().ends_with(
        "\rEpoch 1/2 [########] 4/4 | 2.00 ba/s | ETA 01:42 | loss 0.1250 | eval/accuracy 0.7500\n"));
    // An evaluation between epochs leaves the next epoch's rate alone too.
    evaluate(engine, 0.875, 50.0);
    engine.run<Event::EPOCH_START>();
    train_batch(engine, 0.1, 0.25);  // 152.25 s for 5/8 of the run: 91.35 s left
    CHECK(last_drawn(out.text()) ==
          "Epoch 2/2 [##......] 1/4 | 4.00 ba/s | ETA 01:31 | loss 0.1000 | eval/accuracy 0.8750");
  }
  SUBCASE("plain: the epoch's time is its training time") {
    auto state = make_state(Time::from_epoch(1), 4);
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::plain)));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    train_batch(engine, 1.0);
    evaluate(engine, 0.5, 30.0);
    evaluate(engine, 0.5, 30.0);  // two evaluations
    train_batch(engine, 1.0);
    train_batch(engine, 1.0);
    train_batch(engine, 1.0);
    state.timestamp = state.timestamp.to_next_epoch();
    engine.run<Event::EPOCH_END>();
    CHECK(split_lines(out.text()).back() ==
          "Epoch 1/1 done: 4 batches in 00:02 | 2.00 ba/s | ETA 00:00 | loss 1.0000 | eval/accuracy 0.5000");
  }
}

TEST_CASE("ProgressBar counts an epoch to where the run ends within it") {
  Capture out;
  fake_now = 0;
  SUBCASE("max_duration in batches ends within the first epoch: 6 of 10 batches") {
    auto state = make_state(Time::from_batch(6), 10);
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    CHECK(last_drawn(out.text()) == "Epoch 1/1 [........] 0/6 | -- ba/s | ETA --:--");
    for (int i = 0; i < 3; ++i) train_batch(engine, 0.5);
    CHECK(last_drawn(out.text()) == "Epoch 1/1 [####....] 3/6 | 2.00 ba/s | ETA 00:02 | loss 0.5000");
    for (int i = 0; i < 3; ++i) train_batch(engine, 0.5);
    engine.run<Event::FIT_END>();  // the Trainer stops without EPOCH_END
    CHECK(out.text().ends_with("\rEpoch 1/1 [########] 6/6 | 2.00 ba/s | ETA 00:00 | loss 0.5000\n"));
  }
  SUBCASE("in batches, within the second epoch, plain") {
    auto state = make_state(Time::from_batch(15), 10);
    auto options = bar_options(out.file(), ProgressBar::Style::plain);
    options.print_every = 4;
    BarEngine engine(state, ProgressBar(options));
    engine.run<Event::FIT_START>();
    train_epoch(engine, 10);
    engine.run<Event::EPOCH_START>();
    for (int i = 0; i < 5; ++i) train_batch(engine, 0.5);
    engine.run<Event::FIT_END>();
    const auto lines = split_lines(out.text());
    REQUIRE(lines.size() == 5);  // batches 4, 8, the epoch's end; batch 4 of the second; its end at FIT_END
    CHECK(lines[1].starts_with("Epoch 1/2 batch 8/10 | "));
    CHECK(lines[3].starts_with("Epoch 2/2 batch 4/5 | "));
    CHECK(lines[4].starts_with("Epoch 2/2 batch 5/5 | "));
  }
  SUBCASE("in batches, resumed within the epoch") {
    auto state = make_state(Time::from_batch(15), 10);
    for (int i = 0; i < 10; ++i) state.timestamp = state.timestamp.to_next_batch(batch_size);
    state.timestamp = state.timestamp.to_next_epoch();
    for (int i = 0; i < 2; ++i) state.timestamp = state.timestamp.to_next_batch(batch_size);  // batch 12, 2 in epoch
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
    engine.run<Event::FIT_START>();
    train_batch(engine, 0.5);  // no EPOCH_START: the epoch opens here, 3 of 5 batches done
    CHECK(last_drawn(out.text()).starts_with("Epoch 2/2 [####....] 3/5 | "));
    train_batch(engine, 0.5);
    train_batch(engine, 0.5);
    engine.run<Event::FIT_END>();
    CHECK(out.text().ends_with("\rEpoch 2/2 [########] 5/5 | 2.00 ba/s | ETA 00:00 | loss 0.5000\n"));
  }
  SUBCASE("max_duration in samples, once the batch size is known") {
    auto state = make_state(Time::from_sample(150), 10);  // 32 a batch: 5 batches, the last one cut short
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    CHECK(last_drawn(out.text()) == "Epoch 1 [........] 0/10 | -- ba/s | ETA --:--");  // the batch size is unknown
    state.train_batch_size = batch_size;  // as the Trainer sets it at its first batch
    train_batch(engine, 0.5);
    CHECK(last_drawn(out.text()).starts_with("Epoch 1 [#.......] 1/5 | "));
    for (int i = 0; i < 4; ++i) train_batch(engine, 0.5);
    engine.run<Event::FIT_END>();
    CHECK(out.text().ends_with("\rEpoch 1 [########] 5/5 | 2.00 ba/s | ETA 00:00 | loss 0.5000\n"));
  }
  SUBCASE("a run longer than the epoch keeps the epoch's length") {
    auto state = make_state(Time::from_batch(25), 10);
    state.train_batch_size = batch_size;
    BarEngine engine(state, ProgressBar(bar_options(out.file(), ProgressBar::Style::tty)));
    engine.run<Event::FIT_START>();
    engine.run<Event::EPOCH_START>();
    CHECK(last_drawn(out.text()) == "Epoch 1/3 [........] 0/10 | -- ba/s | ETA --:--");
  }
}

TEST_CASE("MetricsFile writes a long-format CSV, creating missing folders, flushed at every call") {
  TempDir dir;
  const std::string path = dir.path() + "/runs/a/metrics.csv";
  Capture quiet;
  fake_now = 0;
  auto state = make_state(Time::from_epoch(2), 2);
  BothEngine engine(state, ProgressBar(bar_options(quiet.file(), ProgressBar::Style::plain)), named_file(path, "r1"));
  CHECK(engine.get<MetricsFile>().format() == MetricsFile::Format::csv);
  CHECK(engine.get<MetricsFile>().run_name() == "r1");
  CHECK(engine.get<MetricsFile>().rows_name_run());
  CHECK(read_file(path) == "run,epoch,batch,sample,key,value\n");  // opened at construction

  engine.run<Event::FIT_START>();
  engine.run<Event::EPOCH_START>();
  train_batch(engine, 2.25);
  CHECK(read_file(path) == "run,epoch,batch,sample,key,value\nr1,0,1,32,loss/train/total,2.25\n");  // already on disk
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
        "run,epoch,batch,sample,key,value\n"
        "r1,0,1,32,loss/train/total,2.25\n"
        "r1,0,2,64,loss/train/total,0.1\n"
        "r1,0,2,64,lr/group0,1e-05\n"
        "r1,1,2,64,metrics/eval/accuracy,0.75\n"
        "r1,1,2,64,big,1e+300\n"
        "r1,1,2,64,down,-inf\n"
        "r1,1,2,64,\"odd,\"\"key\"\"\",nan\n"
        "r1,1,2,64,up,inf\n");

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
  composer::BasicEngine<composer::State, MetricsFile> engine(state, named_file(path, "j \u00e9"));
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
        "{\"run\":\"j \xc3\xa9\",\"epoch\":0,\"batch\":1,\"sample\":16,"
        "\"metrics\":{\"loss/train/total\":0.5,\"lr/group0\":0.25}}\n"
        "{\"run\":\"j \xc3\xa9\",\"epoch\":1,\"batch\":2,\"sample\":32,\"metrics\":{\"metrics/eval/accuracy\":1}}\n"
        "{\"run\":\"j \xc3\xa9\",\"epoch\":1,\"batch\":2,\"sample\":32,"
        "\"metrics\":{\"caf\xc3\xa9\":3,\"nan\":\"NaN\",\"ninf\":\"-Infinity\","
        "\"pinf\":\"Infinity\",\"q\\\"b\\\\n\\nt\\t\\u0001\":-2.5}}\n");
}

TEST_CASE("MetricsFile appends to an existing file: a resumed run keeps its earlier log, the header once") {
  TempDir dir;
  SUBCASE("csv: each run's rows carry its name") {
    const std::string path = dir.path() + "/metrics.csv";
    composer::State state;
    for (const std::string run : {"first", "second"}) {
      composer::BasicEngine<composer::State, MetricsFile> engine(state, named_file(path, run));
      state.timestamp = state.timestamp.to_next_batch(8);
      engine.logger().log_metrics({{"loss/train/total", run == "first" ? 1.5 : 0.5}});
    }
    CHECK(read_file(path) ==
          "run,epoch,batch,sample,key,value\nfirst,0,1,8,loss/train/total,1.5\nsecond,0,2,16,loss/train/total,0.5\n");
  }
  SUBCASE("jsonl") {
    const std::string path = dir.path() + "/metrics.jsonl";
    composer::State state;
    for (const std::string run : {"first", "second"}) {
      MetricsFile file = named_file(path, run);
      file.log_metrics({{"a", run == "first" ? 0.0 : 1.0}}, state);
    }
    CHECK(read_file(path) == "{\"run\":\"first\",\"epoch\":0,\"batch\":0,\"sample\":0,\"metrics\":{\"a\":0}}\n"
                             "{\"run\":\"second\",\"epoch\":0,\"batch\":0,\"sample\":0,\"metrics\":{\"a\":1}}\n");
  }
  SUBCASE("an empty file gets the header; a row cut short by a crash is ended first") {
    const std::string path = dir.path() + "/metrics.csv";
    write_file(path, "");
    composer::State state;
    {
      MetricsFile file(path);
    }
    CHECK(read_file(path) == "run,epoch,batch,sample,key,value\n");
    write_file(path, "run,epoch,batch,sample,key,value\nold,0,1,8,loss/tra");
    MetricsFile file = named_file(path, "new");
    file.log_metrics({{"x", 2.0}}, state);
    CHECK(read_file(path) == "run,epoch,batch,sample,key,value\nold,0,1,8,loss/tra\nnew,0,0,0,x,2\n");
  }
  SUBCASE("a file begun with the older header, without runs, is appended to in its layout") {
    const std::string path = dir.path() + "/metrics.csv";
    write_file(path, "epoch,batch,sample,key,value\r\n0,1,8,loss/train/total,1.5\r\n0,2,16,loss/tra");
    composer::State state;
    MetricsFile file = named_file(path, "new");
    CHECK_FALSE(file.rows_name_run());
    file.log_metrics({{"x", 2.0}}, state);
    CHECK(read_file(path) ==
          "epoch,batch,sample,key,value\r\n0,1,8,loss/train/total,1.5\r\n0,2,16,loss/tra\n0,0,0,x,2\n");
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
    CHECK(read_file(options.path) == "run,epoch,batch,sample,key,value\n");
  }
}

TEST_CASE("MetricsFile names its run: YYYYmmdd-HHMMSS-<pid> by default, or the user's name if it can be written") {
  TempDir dir;
  const std::string path = dir.path() + "/metrics.csv";
  composer::State state;
  std::string generated[2];
  for (auto& name : generated) {
    const auto before = std::chrono::system_clock::now();
    MetricsFile file(path);
    name = file.run_name();
    CAPTURE(name);
    // The local date and time of the construction, to the second, then the process id, then for all but the
    // process's first name a sequence number.
    REQUIRE(name.size() > 16);
    for (std::size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14})
      CHECK(std::isdigit(static_cast<unsigned char>(name[i])));
    CHECK(name[8] == '-');
    CHECK(name[15] == '-');
    const std::string pid = std::to_string(::getpid());
    CHECK(name.substr(16, pid.size()) == pid);
    const std::time_t at = std::chrono::system_clock::to_time_t(before);
    std::tm local{};
    ::localtime_r(&at, &local);
    char day[16];
    std::strftime(day, sizeof day, "%Y%m%d", &local);
    CHECK(name.substr(0, 8) == day);  // fails only if the run straddles midnight
    file.log_metrics({{"a", 1.0}}, state);
  }
  CHECK(generated[0] != generated[1]);  // two files opened within the same second still differ
  CHECK(read_file(path) == "run,epoch,batch,sample,key,value\n" + generated[0] + ",0,0,0,a,1\n" + generated[1] +
                               ",0,0,0,a,1\n");

  for (const std::string bad : {"a,b", "say \"hi\"", "tab\there", " lead", "trail "}) {
    CAPTURE(bad);
    const std::string other = dir.path() + "/bad.csv";
    try {
      named_file(other, bad);
      FAIL("no error for a run name that cannot be written");
    } catch (const std::invalid_argument& error) {
      const std::string message = error.what();
      CHECK(message.find("run name '" + bad + "'") != std::string::npos);
      CHECK(message.find(other) != std::string::npos);
    }
    CHECK_FALSE(io::exists(other));  // refused before the file is created
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
  std::string run;
  {
    Capture quiet;
    fake_now = 0;
    auto state = make_state(Time::from_epoch(3), 10);
    BothEngine engine(state, ProgressBar(bar_options(quiet.file(), ProgressBar::Style::plain)), MetricsFile(csv));
    run = engine.get<MetricsFile>().run_name();
    engine.run<Event::FIT_START>();
    for (int epoch = 0; epoch < 3; ++epoch) {
      train_epoch(engine, 10);
      evaluate(engine, 0.5 + 0.1 * epoch);
    }
    engine.run<Event::FIT_END>();
  }
  std::string output, errors;
  const std::string png = dir.path() + "/plots/metrics.png";
  CHECK(run_script("'" + csv + "' '" + png + "'", output, &errors) == 0);
  INFO(output, errors);
  CHECK(errors.empty());
  CHECK(output == "plot_metrics.sh: plotted run '" + run + "'\nplot_metrics.sh: wrote " + png + "\n");
  REQUIRE(io::exists(png));
  const std::string image = read_file(png);
  CHECK(image.size() > 1000);
  CHECK(png_height(image) == 760);  // two panels: no learning rate was logged

  // Missing file, neither key, not a metrics CSV, wrong arguments.
  CHECK(run_script("'" + (dir.path() + "/absent.csv") + "' '" + png + "'", output) != 0);
  CHECK(output.find("absent.csv' not found") != std::string::npos);
  const std::string other = dir.path() + "/other.csv";
  write_file(other, "epoch,batch,sample,key,value\n0,1,8,lr/group0,0.1\n0,2,16,loss/train/total,nan\n");
  CHECK(run_script("'" + other + "' '" + png + "'", output) != 0);
  CHECK(output.find("no finite value of 'loss/train/total' nor of 'metrics/eval/accuracy' for the whole file") !=
        std::string::npos);
  write_file(other, "name,score\n");
  CHECK(run_script("'" + other + "' '" + png + "'", output) != 0);
  CHECK(output.find("does not start with the header") != std::string::npos);
  CHECK(run_script("'" + csv + "'", output) != 0);
  CHECK(output.find("usage:") != std::string::npos);

  // One key is enough: the other panel says it has no value.
  write_file(other, "epoch,batch,sample,key,value\n0,1,8,loss/train/total,2\n0,2,16,loss/train/total,1\n");
  io::remove(png);
  CHECK(run_script("'" + other + "' '" + png + "'", output, &errors) == 0);
  CHECK(errors.empty());
  CHECK(io::exists(png));
  CHECK(output.find("plotted the whole file (it has no run column)") != std::string::npos);
}

TEST_CASE("plot_metrics.sh plots the last run of a file by default, one run by name, or all of them") {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    MESSAGE("gnuplot is not installed: plot script not run");
    return;
  }
  TempDir dir;
  const std::string csv = dir.path() + "/metrics.csv";
  composer::State state;
  {
    // The first run logs the learning rate; the second, appended to the same file, does not.
    MetricsFile first = named_file(csv, "first");
    for (int batch = 1; batch <= 3; ++batch) {
      state.timestamp = state.timestamp.to_next_batch(batch_size);
      first.log_metrics({{"loss/train/total", 1.0 / batch}, {"lr/group0", 0.1 * batch}}, state);
    }
    state.timestamp = composer::Timestamp{};  // a new run starts from batch 0
    MetricsFile second = named_file(csv, "second");
    for (int batch = 1; batch <= 3; ++batch) {
      state.timestamp = state.timestamp.to_next_batch(batch_size);
      second.log_metrics({{"loss/train/total", 2.0 / batch}, {"metrics/eval/accuracy", 0.25 * batch}}, state);
    }
  }
  const std::string png = dir.path() + "/curves.png";
  std::string output, errors;
  auto plot = [&](const std::string& options) {
    if (io::exists(png)) io::remove(png);
    const int status = run_script(options + " '" + csv + "' '" + png + "'", output, &errors);
    INFO(options, output, errors);
    CHECK(errors.empty());
    return status == 0 && io::exists(png) ? png_height(read_file(png)) : 0u;
  };
  // A third panel, and a taller image, only for a run with a learning rate.
  CHECK(plot("") == 760);
  CHECK(output.starts_with("plot_metrics.sh: plotted run 'second' (2 runs in the file; --run NAME or --all-runs"));
  CHECK(plot("--run first") == 1100);
  CHECK(output.starts_with("plot_metrics.sh: plotted run 'first' (2 runs in the file"));
  CHECK(plot("--run=second") == 760);
  CHECK(plot("--all-runs") == 1100);
  CHECK(output.starts_with("plot_metrics.sh: plotted all 2 runs\n"));

  CHECK(run_script("--run third '" + csv + "' '" + png + "'", output) != 0);
  CHECK(output.find("has no run 'third'; its runs: first second") != std::string::npos);
  CHECK(run_script("--run first --all-runs '" + csv + "' '" + png + "'", output) != 0);
  CHECK(output.find("cannot be used together") != std::string::npos);
  CHECK(run_script("--color '" + csv + "' '" + png + "'", output) != 0);
  CHECK(output.find("unknown option '--color'") != std::string::npos);

  // The last run alone is judged: one with neither key is an error even though earlier runs have them.
  {
    MetricsFile third = named_file(csv, "third");
    third.log_metrics({{"lr/group0", 0.1}, {"loss/train/total", std::numeric_limits<double>::quiet_NaN()}}, state);
  }
  CHECK(run_script("'" + csv + "' '" + png + "'", output) != 0);
  CHECK(output.find("no finite value of 'loss/train/total' nor of 'metrics/eval/accuracy' for run 'third'") !=
        std::string::npos);
  CHECK(plot("--all-runs") == 1100);
  CHECK(output.starts_with("plot_metrics.sh: plotted all 3 runs\n"));

  // A file written before rows named their run is one run; --run cannot pick in it.
  const std::string old = dir.path() + "/old.csv";
  write_file(old, "epoch,batch,sample,key,value\n0,1,8,loss/train/total,2\n0,1,8,lr/group0,0.1\n"
                  "0,2,16,loss/train/total,1\n0,2,16,lr/group0,0.05\n");
  CHECK(run_script("'" + old + "' '" + png + "'", output, &errors) == 0);
  CHECK(errors.empty());
  CHECK(png_height(read_file(png)) == 1100);
  CHECK(output.starts_with("plot_metrics.sh: plotted the whole file (it has no run column)\n"));
  CHECK(run_script("--run first '" + old + "' '" + png + "'", output) != 0);
  CHECK(output.find("has no run column") != std::string::npos);
}

TEST_CASE("plot_metrics.sh plots a run of one batch and one evaluation without a gnuplot warning") {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    MESSAGE("gnuplot is not installed: plot script not run");
    return;
  }
  TempDir dir;
  const std::string png = dir.path() + "/short.png";
  std::string output, errors;
  // One point per panel (each axis over a single value, a learning rate of 0 included), or a flat series.
  const std::vector<std::string> files{
      "run,epoch,batch,sample,key,value\nshort,0,1,32,loss/train/total,2.5\nshort,0,1,32,lr/group0,0\n"
      "short,0,1,32,metrics/eval/accuracy,0.5\n",
      "run,epoch,batch,sample,key,value\nflat,0,1,32,loss/train/total,1\nflat,0,2,64,loss/train/total,1\n"
      "flat,0,1,32,lr/group0,0.1\nflat,0,2,64,lr/group0,0.1\nflat,1,2,64,metrics/eval/accuracy,-0.5\n",
      "epoch,batch,sample,key,value\n0,0,0,metrics/eval/accuracy,0.25\n",
  };
  for (const auto& text : files) {
    CAPTURE(text);
    const std::string csv = dir.path() + "/short.csv";
    write_file(csv, text);
    if (io::exists(png)) io::remove(png);
    CHECK(run_script("'" + csv + "' '" + png + "'", output, &errors) == 0);
    CHECK(errors == "");
    CHECK(png_height(read_file(png)) == (text.find("lr/group0") != std::string::npos ? 1100u : 760u));
  }
}

}  // TEST_SUITE
