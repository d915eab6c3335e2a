#pragma once
/// \file
/// composer::loggers::MetricsFile — every logged metric appended to a CSV or JSON Lines file, for plots and
/// later analysis.

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/timestamp.hpp>
#include <composer/io/files.hpp>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define COMPOSER_METRICS_FILE_POSIX 1
#endif

namespace composer::loggers {

/// Runtime options of a `MetricsFile`.
struct MetricsFileOptions {
  /// The layout of the file.
  enum class Format {
    automatic,  ///< from the extension of `path`: `.csv` or `.jsonl` (any case)
    csv,        ///< long format, header `run,epoch,batch,sample,key,value`, one row per metric
    jsonl,      ///< one JSON object per `log_metrics` call
  };

  /// The file to append to; missing parent folders are created.
  std::string path;
  /// When false the policy stays in the Engine but opens, creates and writes nothing.
  bool enabled = true;
  /// The layout; `automatic` chooses by the extension of `path`.
  Format format = Format::automatic;
  /// The run's name, written in every row so that the runs appended to one file can be told apart; empty means
  /// one generated at construction, `YYYYmmdd-HHMMSS-<pid>` (local time; `-<n>` added for the n-th metrics file
  /// a process opens, from the second on). Give a resumed run its first run's name to keep its rows together.
  /// It may not hold a comma, a double quote or a control character, nor start or end with a blank.
  /// Composer counterpart: `run_name`.
  std::string run_name;
};

namespace detail {

// The shortest text that reads back as the same double ("0.1", "1e-05", "nan", "inf", "-inf").
inline std::string metrics_number(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

// A CSV field (RFC 4180): quoted, with doubled quotes, when it holds a comma, a quote, a line break or
// leading or trailing blanks.
inline std::string csv_field(std::string_view text) {
  const bool quote = text.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!text.empty() && (std::isspace(static_cast<unsigned char>(text.front())) ||
                                        std::isspace(static_cast<unsigned char>(text.back()))));
  if (!quote) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// A JSON string literal: quotes, backslashes and control characters escaped; other bytes kept (UTF-8).
inline std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// A JSON value for a double: a number, or the strings "NaN", "Infinity", "-Infinity", which JSON lacks.
inline std::string json_number(double value) {
  if (std::isnan(value)) return "\"NaN\"";
  if (std::isinf(value)) return value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  return metrics_number(value);
}

// A run name made of the local time and the process id, `YYYYmmdd-HHMMSS-<pid>`, with `-<n>` added for the
// n-th name a process makes (from the second on), so that two files opened in the same second differ.
inline std::string generated_run_name() {
  static std::atomic<long> made{0};
  const long n = ++made;
  const std::time_t now = std::time(nullptr);
  std::tm local{};
#ifdef COMPOSER_METRICS_FILE_POSIX
  ::localtime_r(&now, &local);
  const long pid = static_cast<long>(::getpid());
#else
  local = *std::localtime(&now);
  const long pid = 0;
#endif
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  std::string name = std::string(stamp) + "-" + std::to_string(pid);
  if (n > 1) name += "-" + std::to_string(n);
  return name;
}

// Why `name` cannot be a run name, or empty when it can: a run name is written unquoted in CSV and read by
// scripts that split at commas.
inline std::string run_name_problem(std::string_view name) {
  if (name.empty()) return "it is empty";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ',') return "it holds a comma";
    if (c == '"') return "it holds a double quote";
    if (u < 0x20 || u == 0x7f) return "it holds a control character";
  }
  if (std::isspace(static_cast<unsigned char>(name.front())) || std::isspace(static_cast<unsigned char>(name.back())))
    return "it starts or ends with a blank";
  return {};
}

struct FileCloser {
  void operator()(std::FILE* file) const noexcept { std::fclose(file); }
};

}  // namespace detail

/// A logger policy that appends every `log_metrics` call to a file, flushed at once, so that a crash loses no
/// logged value and a plot script (`scripts/plot_metrics.sh`) can read it while training runs. Composer
/// counterpart: the metric lines of `composer.loggers.FileLogger`, in machine-readable formats.
///
/// Every row carries the run's name (`Options::run_name`, generated when not given, fixed for the life of the
/// object), so that runs appended to the same file stay apart: `scripts/plot_metrics.sh` plots the last one.
///
/// Formats (chosen by the extension of the path, or by `Options::format`):
/// - `.csv`: long format, the header `run,epoch,batch,sample,key,value` and one row per metric, e.g.
///   `20250301-101500-4242,1,20,640,loss/train/total,0.25`. `epoch`, `batch` and `sample` are the training
///   timestamp's totals
///   (completed epochs, batches, samples) when the metric was logged; evaluation metrics carry the training
///   time at which the evaluation ran. A key is quoted as RFC 4180 says when it holds a comma, a quote or a line
///   break. Values are written in the shortest form that reads back exactly; NaN and infinities as `nan`,
///   `inf`, `-inf`.
/// - `.jsonl`: one object per call,
///   `{"run":"20250301-101500-4242","epoch":1,"batch":20,"sample":640,"metrics":{"loss/train/total":0.25}}`,
///   keys escaped as JSON strings; NaN and infinities, which JSON numbers cannot hold, as the strings `"NaN"`,
///   `"Infinity"`, `"-Infinity"`.
/// A call with no metric writes nothing.
///
/// The file is never truncated: an existing file is appended to, so a resumed run keeps its earlier log, and
/// the CSV header is written only to a new or empty file. An existing non-empty CSV must start with that
/// header, or with the header of files written before rows named their run (`epoch,batch,sample,key,value`,
/// then appended to in that layout, without the run), and an existing JSON Lines file with '{', or the
/// constructor refuses to append to it; a last line left unfinished (by a crash) is ended before the first new
/// row.
///
/// The file is opened, and missing parent folders created, at construction: a path that cannot be written is a
/// `std::runtime_error` naming it, thrown by the constructor, before any training. An extension that names no
/// known format, or a run name that cannot be written unquoted, is a `std::invalid_argument`. A failed write
/// during training is a `std::runtime_error`.
/// The file is closed at `close(state)` (the Engine's `close()`), after which logging is ignored, or when the
/// policy is destroyed. With several processes, give each its own path.
///
/// It handles no event (it acts in `log_metrics` and `close`). The state type needs a `timestamp` (a
/// `composer::Timestamp`).
class MetricsFile {
 public:
  /// See `MetricsFileOptions`.
  using Options = MetricsFileOptions;
  /// See `MetricsFileOptions::Format`.
  using Format = MetricsFileOptions::Format;

  /// A logger destination.
  static constexpr Role role = Role::logger;
  /// No event: it writes when metrics are logged.
  static constexpr EventSet events{};

  /// The CSV header.
  static constexpr std::string_view csv_header = "run,epoch,batch,sample,key,value";
  /// The CSV header of files written before rows named their run; such a file is appended to without the run.
  static constexpr std::string_view csv_header_without_run = "epoch,batch,sample,key,value";

  /// A disabled metrics file (no path): it writes nothing.
  MetricsFile() : MetricsFile(Options{{}, false, Format::automatic, {}}) {}
  /// Appends to `path` (format by its extension) unless `enabled` is false.
  explicit MetricsFile(std::string path, bool enabled = true)
      : MetricsFile(Options{std::move(path), enabled, Format::automatic, {}}) {}
  /// Appends to `options.path` unless `options.enabled` is false. Throws `std::runtime_error` naming the path
  /// when it cannot be opened for appending, `std::invalid_argument` for a run name that cannot be written.
  explicit MetricsFile(Options options) : options_(std::move(options)) {
    if (!options_.enabled) return;
    if (options_.run_name.empty()) options_.run_name = detail::generated_run_name();
    if (const std::string problem = detail::run_name_problem(options_.run_name); !problem.empty())
      throw std::invalid_argument("composer: cannot use run name '" + options_.run_name + "' in metrics file '" +
                                  options_.path + "': " + problem);
    format_ = resolve_format(options_);
    open();
  }

  MetricsFile(MetricsFile&&) noexcept = default;
  MetricsFile& operator=(MetricsFile&&) noexcept = default;
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;
  ~MetricsFile() = default;

  /// Appends `metrics` with the state's training time, and flushes.
  template <class StateT>
  void log_metrics(const Metrics& metrics, const StateT& state) {
    if (!file_ || metrics.empty()) return;
    write(format_ == Format::csv ? csv_rows(metrics, state.timestamp, with_run_ ? options_.run_name : "")
                                 : json_line(metrics, state.timestamp, options_.run_name));
  }

  /// Closes the file (the Engine calls it from its `close()`); later metrics are ignored.
  template <class StateT>
  void close(const StateT&) {
    close();
  }

  /// Closes the file; throws `std::runtime_error` if the last flush fails.
  void close() {
    if (!file_) return;
    std::FILE* file = file_.release();
    errno = 0;
    if (std::fclose(file) != 0) fail("close");
  }

  /// Whether the policy writes anything.
  bool enabled() const noexcept { return options_.enabled; }
  /// Whether the file is open.
  bool is_open() const noexcept { return file_ != nullptr; }
  /// The file's path.
  const std::string& path() const noexcept { return options_.path; }
  /// The file's format (`automatic` when disabled).
  Format format() const noexcept { return format_; }
  /// The run's name written in every row (empty when disabled). Composer counterpart: `State.run_name`.
  const std::string& run_name() const noexcept { return options_.run_name; }
  /// Whether rows carry the run's name: false only for a CSV begun with `csv_header_without_run`.
  bool rows_name_run() const noexcept { return with_run_; }

  /// The rows a `.csv` file gets for one call, starting with `run` (none when empty: the layout of
  /// `csv_header_without_run`).
  static std::string csv_rows(const Metrics& metrics, const Timestamp& timestamp, std::string_view run) {
    const std::string counters = (run.empty() ? std::string() : std::string(run) + ",") +
                                 std::to_string(timestamp.epoch().count()) + "," +
                                 std::to_string(timestamp.batch().count()) + "," +
                                 std::to_string(timestamp.sample().count()) + ",";
    std::string rows;
    for (const auto& [key, value] : metrics)
      rows += counters + detail::csv_field(key) + "," + detail::metrics_number(value) + "\n";
    return rows;
  }

  /// The line a `.jsonl` file gets for one call.
  static std::string json_line(const Metrics& metrics, const Timestamp& timestamp, std::string_view run) {
    std::string line = "{\"run\":" + detail::json_string(run) +
                       ",\"epoch\":" + std::to_string(timestamp.epoch().count()) +
                       ",\"batch\":" + std::to_string(timestamp.batch().count()) +
                       ",\"sample\":" + std::to_string(timestamp.sample().count()) + ",\"metrics\":{";
    bool first = true;
    for (const auto& [key, value] : metrics) {
      if (!first) line += ',';
      first = false;
      line += detail::json_string(key) + ":" + detail::json_number(value);
    }
    line += "}}\n";
    return line;
  }

 private:
  static Format resolve_format(const Options& options) {
    if (options.format != Format::automatic) return options.format;
    std::string extension = io::extension(options.path);
    for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (extension == ".csv") return Format::csv;
    if (extension == ".jsonl") return Format::jsonl;
    throw std::invalid_argument("composer: cannot tell the format of metrics file '" + options.path +
                                "' from its extension: expected '.csv' or '.jsonl' (or set the format option)");
  }

  // Throws "composer: cannot <verb> metrics file '<path>'<tail>: <reason from errno>".
  [[noreturn]] void fail(const char* verb, const char* tail = "") const {
    const int error = errno;
    throw std::runtime_error("composer: cannot " + std::string(verb) + " metrics file '" + options_.path +
                             "'" + tail + (error != 0 ? ": " + std::string(std::strerror(error)) : std::string()));
  }

  void open() {
    const std::string& path = options_.path;
    if (path.empty()) throw std::invalid_argument("composer: MetricsFile needs a path when enabled");
    if (const std::string parent = io::parent_path(path); !parent.empty()) {
      try {
        io::create_directories(parent);
      } catch (const io::FileError& error) {
        throw std::runtime_error("composer: cannot create the folder '" + parent + "' of metrics file '" + path +
                                 "': " + error.reason());
      }
    }
    errno = 0;
    std::FILE* file = std::fopen(path.c_str(), "a+");
    if (file == nullptr) fail("open", " for appending");
    file_.reset(file);

    std::string prefix;
    if (std::fseek(file, 0, SEEK_END) != 0) fail("seek in");
    const long size = std::ftell(file);
    if (size < 0) fail("seek in");
    if (size == 0) {
      if (format_ == Format::csv) prefix = std::string(csv_header) + "\n";
    } else {
      std::rewind(file);
      std::string head(csv_header.size() + 2, '\0');
      const std::size_t got = std::fread(head.data(), 1, head.size(), file);
      head.resize(got);
      const auto starts_with_line = [&head](std::string_view header) {
        return head.starts_with(std::string(header) + "\n") || head.starts_with(std::string(header) + "\r\n") ||
               head == header;
      };
      bool fits = false;
      if (format_ == Format::jsonl) {
        fits = head.starts_with("{");
      } else if (starts_with_line(csv_header)) {
        fits = true;
      } else if (starts_with_line(csv_header_without_run)) {
        fits = true;
        with_run_ = false;
      }
      if (!fits) {
        file_.reset();
        const std::string expected = format_ == Format::csv ? "with the header '" + std::string(csv_header) +
                                                                  "' (nor the older '" +
                                                                  std::string(csv_header_without_run) + "')"
                                                            : std::string("with a JSON object");
        throw std::runtime_error("composer: metrics file '" + path + "' already exists and does not start " +
                                 expected + "; refusing to append to it");
      }
      if (std::fseek(file, -1, SEEK_END) != 0) fail("seek in");
      if (std::fgetc(file) != '\n') prefix = "\n";
    }
    if (std::fseek(file, 0, SEEK_END) != 0) fail("seek in");
    write(prefix);
  }

  void write(const std::string& text) {
    errno = 0;
    if (!text.empty() && std::fwrite(text.data(), 1, text.size(), file_.get()) != text.size()) fail("write to");
    if (std::fflush(file_.get()) != 0) fail("write to");
  }

  Options options_;
  Format format_ = Format::automatic;
  bool with_run_ = true;
  std::unique_ptr<std::FILE, detail::FileCloser> file_;
};

}  // namespace composer::loggers

#undef COMPOSER_METRICS_FILE_POSIX
