#pragma once
/// \file
/// composer::loggers::ProgressBar — training progress on the console: one line per epoch redrawn in place on a
/// terminal, plain lines at intervals elsewhere (CI logs, files, pipes).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/ioctl.h>
#include <unistd.h>
#define COMPOSER_LOGGERS_POSIX 1
#endif

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/time.hpp>
#include <composer/core/timestamp.hpp>

namespace composer::loggers {

/// Runtime options of a `ProgressBar`.
struct ProgressBarOptions {
  /// How progress is drawn.
  enum class Style {
    automatic,  ///< `tty` when the stream is a terminal (`isatty(fileno(stream))`), `plain` otherwise
    tty,        ///< one line per epoch, redrawn in place with '\r' and ended with a newline at `EPOCH_END`
    plain,      ///< whole lines only: every `print_every` batches, at each epoch end and at each eval end
  };

  /// When false the policy stays in the Engine but does nothing (each event costs one branch).
  bool enabled = true;
  /// Where to write; null means `stderr` (Composer's default stream). The stream is not owned or closed.
  std::FILE* stream = nullptr;
  /// Terminal or plain output; `automatic` asks the stream once, at construction.
  Style style = Style::automatic;
  /// Plain style: a line every this many batches of an epoch (counted with `batch_in_epoch`). 0 means about
  /// every 10% of an epoch (`dataloader_len / 10`, at least 1), or every 100 batches when the epoch length is
  /// unknown. No interval line is printed for an epoch's last batch: the epoch-end line follows it.
  std::int64_t print_every = 0;
  /// Terminal style: the shortest time in seconds between two redraws within an epoch (the line is always
  /// redrawn at `EPOCH_START`, `EPOCH_END`, `EVAL_END` and `FIT_END`). 0 redraws at every batch.
  double redraw_seconds = 0.1;
  /// Terminal style: the width of the bar in characters (no bar when the epoch length is unknown). A line too
  /// long for `width` shrinks its bar, down to none.
  int bar_width = 25;
  /// The columns a line may take (the last one is left free, so that a terminal does not wrap): 0 means the
  /// terminal's width when the stream is a terminal, and no limit otherwise. A line that does not fit drops its
  /// least important parts first: the metrics after the main evaluation metric (the last ones first), then bar
  /// cells (down to no bar), then the rate; the epoch, the batch count, the ETA, the loss and the main evaluation
  /// metric stay, and the line is cut at the width only when they alone do not fit. Set it to fix the width
  /// (tests, a terminal that reports a wrong size).
  int width = 0;
  /// The wall clock, in seconds from any origin, monotonic; null means `std::chrono::steady_clock`. Meant for
  /// tests, which need a clock they control.
  double (*clock)() = nullptr;
};

namespace detail {

// A value as the progress bar shows it: 4 decimals in a usual range, scientific notation otherwise.
inline std::string progress_value(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[48];
  const double magnitude = std::fabs(value);
  if (magnitude == 0.0 || (magnitude >= 1e-3 && magnitude < 1e5))
    std::snprintf(buffer, sizeof buffer, "%.4f", value);
  else
    std::snprintf(buffer, sizeof buffer, "%.3e", value);
  return buffer;
}

// A duration in seconds as MM:SS, or H:MM:SS from one hour on.
inline std::string progress_clock(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  if (seconds > 1e8) seconds = 1e8;
  const auto total = static_cast<std::int64_t>(std::llround(seconds));
  const std::int64_t hours = total / 3600, minutes = (total / 60) % 60, secs = total % 60;
  char buffer[48];
  if (hours > 0)
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", static_cast<long long>(hours),
                  static_cast<long long>(minutes), static_cast<long long>(secs));
  else
    std::snprintf(buffer, sizeof buffer, "%02lld:%02lld", static_cast<long long>(minutes), static_cast<long long>(secs));
  return buffer;
}

// The columns a UTF-8 text takes on a terminal, counted as one per code point.
inline std::size_t progress_columns(std::string_view text) {
  std::size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// The first `columns` code points of a UTF-8 text.
inline std::string progress_cut(std::string_view text, std::size_t columns) {
  std::size_t n = 0, end = 0;
  for (; end < text.size(); ++end) {
    if ((static_cast<unsigned char>(text[end]) & 0xC0) != 0x80 && n++ == columns) break;
  }
  return std::string(text.substr(0, end));
}

inline double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace detail

/// A logger policy that shows training progress on a console stream. Composer counterpart:
/// `composer.loggers.ProgressBarLogger` (which draws with tqdm).
///
/// Each line shows the epoch (`Epoch 2/10`; the total is known when `max_duration` is in epochs, or in batches
/// with a known `dataloader_len`), the batches done in this epoch out of the batches the run will do in it (with a
/// bar on a terminal), batches per second in this epoch, the ETA of the whole run, the latest training loss (the
/// `loss/train/total` metric) and the latest value of every `metrics/...` metric (shown without the `metrics/`
/// prefix): the main evaluation metric first (the first key, in order, that starts with `eval/`, such as
/// `eval/accuracy 0.9812`; the first metric when none does), then the others in key order.
///
/// The epoch's total is `dataloader_len`, or fewer when the run ends within the epoch: with `max_duration` in
/// batches (`"50ba"` with 100 batches per epoch shows `50/50`), and in samples once the training batch size is
/// known (`train_batch_size`, which the Trainer sets at its first batch; until then the total is
/// `dataloader_len`); in other units it stays `dataloader_len`.
///
/// The rate counts training time only: the time between `EVAL_START` and `EVAL_END` within an epoch is left
/// out, so an evaluation does not lower it. The ETA extrapolates the wall time elapsed since `FIT_START`,
/// evaluations included (they are time the user waits for), over the progress made since then towards
/// `max_duration`, in its unit (`ep`, with the fraction of the current epoch when `dataloader_len` is known;
/// `ba`, `sp`, `tok`, `iter`); so a resumed run estimates from its own speed. It reads `--:--` until there is
/// progress, and is absent without a `max_duration`.
///
/// Terminal style: the epoch's line is drawn at `EPOCH_START`, redrawn in place ('\r') as batches end (at most
/// every `redraw_seconds`) and at `EVAL_END`, and ended with a newline at `EPOCH_END` (or at `FIT_END` when
/// training stops within an epoch, or at `close`). A line fits in `width` (see `ProgressBarOptions::width`).
/// An evaluation outside an epoch prints its own line: `Eval at batch 40 | eval/accuracy 0.9812`.
/// Plain style: whole lines only, every `print_every` batches, at `EPOCH_END` (`Epoch 2/10 done: 20 batches in
/// 00:10`, the epoch's training time, evaluations left out), at every `EVAL_END`, and at `FIT_END` for an
/// unfinished epoch.
///
/// Events: `FIT_START`, `EPOCH_START`, `BATCH_END`, `EPOCH_END`, `EVAL_START`, `EVAL_END`, `FIT_END`; metrics
/// arrive through `log_metrics`. Only rank 0 prints (when the state has a `rank`). The state type needs
/// `timestamp` (a `composer::Timestamp`), `max_duration()` (an optional `composer::Time`) and `dataloader_len`
/// (an optional count), as `composer::State` has, and may have `train_batch_size` (an optional count); the epoch
/// length is taken at `FIT_START` and `EPOCH_START`, while the training data loader is active.
class ProgressBar {
 public:
  /// See `ProgressBarOptions`.
  using Options = ProgressBarOptions;
  /// See `ProgressBarOptions::Style`.
  using Style = ProgressBarOptions::Style;

  /// A logger destination.
  static constexpr Role role = Role::logger;
  /// The events it draws on (and `EVAL_START`, where an evaluation's time starts to be left out of the rate).
  static constexpr EventSet events{Event::FIT_START, Event::EPOCH_START, Event::BATCH_END, Event::EPOCH_END,
                                   Event::EVAL_START, Event::EVAL_END,   Event::FIT_END};

  /// A progress bar on `stderr`, terminal or plain as the stream is.
  ProgressBar() : ProgressBar(Options{}) {}
  /// A progress bar with the given options.
  explicit ProgressBar(Options options) : options_(options) {
    stream_ = options_.stream != nullptr ? options_.stream : stderr;
    real_tty_ = stream_is_terminal(stream_);
    tty_ = options_.style == Style::tty || (options_.style == Style::automatic && real_tty_);
  }

  /// Handles its events (see the class comment).
  template <Event E, class StateT>
  void apply(EventTag<E>, const StateT& state) {
    if (!options_.enabled) return;
    if constexpr (requires { state.rank != 0; })
      if (state.rank != 0) return;
    std::optional<std::int64_t> batch_size;
    if constexpr (requires { state.train_batch_size; }) batch_size = state.train_batch_size;
    const View view{state.timestamp, state.max_duration(), state.dataloader_len, batch_size};
    if constexpr (E == Event::FIT_START)
      fit_start(view);
    else if constexpr (E == Event::EPOCH_START)
      epoch_start(view);
    else if constexpr (E == Event::BATCH_END)
      batch_end(view);
    else if constexpr (E == Event::EPOCH_END)
      epoch_end(view);
    else if constexpr (E == Event::EVAL_START)
      eval_start();
    else if constexpr (E == Event::EVAL_END)
      eval_end(view);
    else if constexpr (E == Event::FIT_END)
      fit_end(view);
  }

  /// Keeps the latest `loss/train/total` and `metrics/...` values for the next line.
  template <class StateT>
  void log_metrics(const Metrics& metrics, const StateT&) {
    if (!options_.enabled) return;
    for (const auto& [key, value] : metrics) {
      if (key == "loss/train/total")
        loss_ = value;
      else if (key.starts_with("metrics/"))
        metrics_[key.substr(8)] = value;
    }
  }

  /// Ends a line left open on a terminal.
  template <class StateT>
  void close(const StateT&) {
    if (!options_.enabled) return;
    if (line_open_) {
      write("\n");
      line_open_ = false;
    }
  }

  /// Whether the policy draws anything.
  bool enabled() const noexcept { return options_.enabled; }
  /// Whether it draws in terminal style (resolved at construction).
  bool tty() const noexcept { return tty_; }
  /// The stream it writes to.
  std::FILE* stream() const noexcept { return stream_; }
  /// The latest training loss received, if any.
  std::optional<double> loss() const noexcept { return loss_; }
  /// The latest `metrics/...` values received, by key without the `metrics/` prefix.
  const std::map<std::string, double>& metrics() const noexcept { return metrics_; }

 private:
  // What the progress bar reads of a state.
  struct View {
    const Timestamp& timestamp;
    const std::optional<Time>& max_duration;
    std::optional<std::int64_t> dataloader_len;
    std::optional<std::int64_t> batch_size;
  };

  // A line in parts, from which `fit` builds the longest line that fits the width.
  struct LineParts {
    std::string head;                    // kept: "Epoch 2/10", "Eval at batch 40"
    std::optional<double> bar;           // the filled fraction of a bar, when one may be drawn
    std::string after_bar;               // kept, after a bar: "5/10"
    std::string without_bar;             // kept, in place of the bar and `after_bar`: "5/10 ba", "batch 5/10"
    std::string rate;                    // dropped after the bar: "2.00 ba/s"
    std::vector<std::string> kept;       // "ETA 00:10", "loss 0.5000", the main evaluation metric
    std::vector<std::string> droppable;  // the other metrics, dropped from the last
  };

  static bool stream_is_terminal([[maybe_unused]] std::FILE* stream) {
#ifdef COMPOSER_LOGGERS_POSIX
    const int fd = ::fileno(stream);
    return fd >= 0 && ::isatty(fd) != 0;
#else
    return false;
#endif
  }

  // The terminal's width in columns, or 0 when unknown (not a terminal, or the query fails).
  int terminal_width() const {
#ifdef COMPOSER_LOGGERS_POSIX
    if (!real_tty_) return 0;
    winsize size{};
    if (::ioctl(::fileno(stream_), TIOCGWINSZ, &size) == 0) return size.ws_col;
#endif
    return 0;
  }

  // The columns a line may take (the width less its last column), or 0 for no limit.
  std::size_t line_limit() const {
    const int width = options_.width > 0 ? options_.width : terminal_width();
    if (width <= 0) return 0;
    return static_cast<std::size_t>(std::max(1, width - 1));
  }

  double now() const { return options_.clock != nullptr ? options_.clock() : detail::steady_seconds(); }

  void write(std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stream_);
    std::fflush(stream_);
  }

  // Fraction of max_duration done, in [0, 1], or none without a max_duration.
  std::optional<double> progress(const View& v) const {
    if (!v.max_duration) return std::nullopt;
    const Time& max = *v.max_duration;
    if (max.unit() == TimeUnit::DURATION || max.unit() == TimeUnit::SECOND) return std::nullopt;
    const double total = max.value();
    if (total <= 0) return 1.0;
    double done = 0;
    if (max.unit() == TimeUnit::EPOCH) {
      done = static_cast<double>(v.timestamp.epoch().count());
      if (train_len_ && *train_len_ > 0)
        done += std::min(1.0, static_cast<double>(v.timestamp.batch_in_epoch().count()) /
                                  static_cast<double>(*train_len_));
    } else {
      done = static_cast<double>(v.timestamp.get(max.unit()).count());
    }
    return std::clamp(done / total, 0.0, 1.0);
  }

  // Number of epochs of the run, when it can be known.
  std::optional<std::int64_t> total_epochs(const View& v) const {
    if (!v.max_duration) return std::nullopt;
    const Time& max = *v.max_duration;
    if (max.unit() == TimeUnit::EPOCH) return max.count();
    if (max.unit() == TimeUnit::BATCH && train_len_ && *train_len_ > 0)
      return (max.count() + *train_len_ - 1) / *train_len_;
    return std::nullopt;
  }

  // The batches the run does in the current epoch (read while the timestamp is within it): the epoch length, or
  // fewer when max_duration, in batches or in samples of a known batch size, ends within the epoch.
  std::optional<std::int64_t> epoch_total(const View& v) const {
    if (!train_len_) return std::nullopt;
    std::int64_t total = *train_len_;
    if (!v.max_duration) return total;
    const Time& max = *v.max_duration;
    const std::int64_t done = v.timestamp.batch_in_epoch().count();
    if (max.unit() == TimeUnit::BATCH) {
      total = std::min(total, done + std::max<std::int64_t>(0, max.count() - v.timestamp.batch().count()));
    } else if (max.unit() == TimeUnit::SAMPLE && v.batch_size && *v.batch_size > 0) {
      const std::int64_t samples_left = std::max<std::int64_t>(0, max.count() - v.timestamp.sample().count());
      total = std::min(total, done + (samples_left + *v.batch_size - 1) / *v.batch_size);
    }
    return total;
  }

  std::int64_t plain_interval() const {
    if (options_.print_every > 0) return options_.print_every;
    if (train_len_ && *train_len_ > 0) return std::max<std::int64_t>(1, *train_len_ / 10);
    return 100;
  }

  // Seconds of training in the open epoch: the time since it opened, less its evaluations.
  double epoch_training_seconds() const {
    const double t = now();
    double seconds = t - epoch_start_time_ - epoch_eval_seconds_;
    if (eval_start_time_) seconds -= t - *eval_start_time_;
    return seconds;
  }

  void fit_start(const View& v) {
    fit_start_time_ = now();
    if (v.dataloader_len) train_len_ = v.dataloader_len;
    fit_start_progress_ = progress(v);
    fitting_ = true;
  }

  void open_epoch(const View& v, std::int64_t batches_before) {
    epoch_open_ = true;
    epoch_number_ = v.timestamp.epoch().count() + 1;
    epoch_start_time_ = now();
    epoch_eval_seconds_ = 0;
    eval_start_time_.reset();
    epoch_start_batches_ = batches_before;
    batches_in_epoch_ = v.timestamp.batch_in_epoch().count();
    epoch_total_ = epoch_total(v);
  }

  void epoch_start(const View& v) {
    if (line_open_) end_line();
    if (v.dataloader_len) train_len_ = v.dataloader_len;
    open_epoch(v, v.timestamp.batch_in_epoch().count());
    if (tty_) draw(v, /*finished=*/false);
  }

  void batch_end(const View& v) {
    // A run resumed within an epoch has no EPOCH_START: the epoch opens at its first batch, whose duration is
    // unknown, so that the rate counts the batches after it.
    if (!epoch_open_) open_epoch(v, v.timestamp.batch_in_epoch().count());
    batches_in_epoch_ = v.timestamp.batch_in_epoch().count();
    epoch_total_ = epoch_total(v);  // the batch size may have become known
    const bool last = epoch_total_ && batches_in_epoch_ >= *epoch_total_;
    if (tty_) {
      if (last || now() - last_draw_time_ >= options_.redraw_seconds) draw(v, false);
    } else {
      if (!last && batches_in_epoch_ % plain_interval() == 0) print_line(fit(status_line(v, false)));
    }
  }

  void epoch_end(const View& v) {
    if (!epoch_open_) return;
    if (tty_) {
      draw(v, true);
      end_line();
    } else {
      print_line(fit(status_line(v, true)));
    }
    epoch_open_ = false;
  }

  // An evaluation within an epoch: its time is left out of the epoch's rate.
  void eval_start() {
    if (epoch_open_ && !eval_start_time_) eval_start_time_ = now();
  }

  void eval_end(const View& v) {
    if (eval_start_time_) {
      epoch_eval_seconds_ += now() - *eval_start_time_;
      eval_start_time_.reset();
    }
    if (tty_ && line_open_) {
      draw(v, false);
      return;
    }
    LineParts parts;
    parts.head = "Eval at batch " + std::to_string(v.timestamp.batch().count());
    if (metrics_.empty()) parts.kept.push_back("no metrics");
    add_metrics(parts);
    print_line(fit(parts));
  }

  void fit_end(const View& v) {
    if (epoch_open_) {
      if (tty_) {
        draw(v, false);
        end_line();
      } else if (batches_in_epoch_ > epoch_start_batches_) {
        print_line(fit(status_line(v, false)));
      }
      epoch_open_ = false;
    }
    fitting_ = false;
  }

  // The main evaluation metric (kept) and the other metrics (droppable), in that order.
  void add_metrics(LineParts& parts) const {
    auto main = std::find_if(metrics_.begin(), metrics_.end(),
                             [](const auto& metric) { return metric.first.starts_with("eval/"); });
    if (main == metrics_.end()) main = metrics_.begin();
    for (auto it = metrics_.begin(); it != metrics_.end(); ++it) {
      std::string text = it->first + " " + detail::progress_value(it->second);
      (it == main ? parts.kept : parts.droppable).push_back(std::move(text));
    }
  }

  // The epoch's line in parts. `finished`: the epoch ended (the timestamp has already moved to the next epoch).
  LineParts status_line(const View& v, bool finished) const {
    LineParts parts;
    parts.head = "Epoch " + std::to_string(epoch_number_);
    if (const auto epochs = total_epochs(v)) parts.head += "/" + std::to_string(*epochs);
    const std::string done = std::to_string(batches_in_epoch_);
    const std::string of = epoch_total_ ? "/" + std::to_string(*epoch_total_) : std::string();
    const double elapsed = epoch_training_seconds();
    if (tty_) {
      if (epoch_total_ && *epoch_total_ > 0 && options_.bar_width > 0)
        parts.bar = std::clamp(static_cast<double>(batches_in_epoch_) / static_cast<double>(*epoch_total_), 0.0, 1.0);
      parts.after_bar = done + of;
      parts.without_bar = done + of + " ba";
    } else if (finished) {
      parts.without_bar = "done: " + done + " batches in " + detail::progress_clock(elapsed);
    } else {
      parts.without_bar = "batch " + done + of;
    }
    const auto batches = batches_in_epoch_ - epoch_start_batches_;
    if (batches > 0 && elapsed > 0) {
      const double rate = static_cast<double>(batches) / elapsed;
      char buffer[48];
      std::snprintf(buffer, sizeof buffer, rate < 10 ? "%.2f" : "%.1f", rate);
      parts.rate = std::string(buffer) + " ba/s";
    } else {
      parts.rate = "-- ba/s";
    }
    if (const auto p = progress(v)) parts.kept.push_back("ETA " + eta(*p));
    if (loss_) parts.kept.push_back("loss " + detail::progress_value(*loss_));
    add_metrics(parts);
    return parts;
  }

  // The line with a bar of `cells` cells (none when 0), the rate or not, and the first `extra` droppable parts.
  static std::string assemble(const LineParts& parts, int cells, bool rate, std::size_t extra) {
    std::string line = parts.head;
    if (parts.bar && cells > 0) {
      const auto width = static_cast<std::size_t>(cells);
      const auto filled = static_cast<std::size_t>(*parts.bar * static_cast<double>(width));
      line += " [" + std::string(filled, '#') + std::string(width - filled, '.') + "] " + parts.after_bar;
    } else if (!parts.without_bar.empty()) {
      line += " " + parts.without_bar;
    }
    if (rate && !parts.rate.empty()) line += " | " + parts.rate;
    for (const auto& part : parts.kept) line += " | " + part;
    for (std::size_t i = 0; i < extra && i < parts.droppable.size(); ++i) line += " | " + parts.droppable[i];
    return line;
  }

  // The longest line that fits the width: the other metrics go first (the last ones first), then bar cells, then
  // the rate; a line that still does not fit is cut.
  std::string fit(const LineParts& parts) const {
    const int cells = options_.bar_width;
    const std::size_t limit = line_limit();
    const auto fits = [limit](const std::string& line) {
      return limit == 0 || detail::progress_columns(line) <= limit;
    };
    for (std::size_t extra = parts.droppable.size();; --extra) {
      std::string line = assemble(parts, cells, true, extra);
      if (fits(line)) return line;
      if (extra == 0) break;
    }
    if (parts.bar)
      for (int c = cells - 1; c >= 0; --c)
        if (std::string line = assemble(parts, c, true, 0); fits(line)) return line;
    std::string line = assemble(parts, 0, false, 0);
    return fits(line) ? line : detail::progress_cut(line, limit);
  }

  std::string eta(double progress_now) const {
    if (progress_now >= 1.0) return detail::progress_clock(0);
    if (!fitting_ || !fit_start_progress_) return detail::progress_clock(-1);
    const double gained = progress_now - *fit_start_progress_;
    const double elapsed = now() - fit_start_time_;
    if (gained <= 0 || elapsed <= 0) return detail::progress_clock(-1);
    return detail::progress_clock(elapsed * (1.0 - progress_now) / gained);
  }

  // Terminal style: redraws the open line in place, blanking what is left of a longer previous line.
  void draw(const View& v, bool finished) {
    std::string line = fit(status_line(v, finished));
    const std::size_t columns = detail::progress_columns(line);
    std::size_t blank_to = last_line_columns_;
    if (const std::size_t limit = line_limit(); limit > 0) blank_to = std::min(blank_to, limit);
    if (columns < blank_to) line.append(blank_to - columns, ' ');
    write("\r" + line);
    last_line_columns_ = columns;
    last_draw_time_ = now();
    line_open_ = true;
  }

  void end_line() {
    write("\n");
    line_open_ = false;
    last_line_columns_ = 0;
  }

  // A whole line, after ending an open terminal line.
  void print_line(const std::string& line) {
    if (line_open_) end_line();
    write(line + "\n");
  }

  Options options_;
  std::FILE* stream_ = nullptr;
  bool real_tty_ = false;
  bool tty_ = false;

  bool fitting_ = false;
  double fit_start_time_ = 0;
  std::optional<double> fit_start_progress_;
  std::optional<std::int64_t> train_len_;

  bool epoch_open_ = false;
  std::int64_t epoch_number_ = 0;
  double epoch_start_time_ = 0;
  double epoch_eval_seconds_ = 0;
  std::optional<double> eval_start_time_;
  std::int64_t epoch_start_batches_ = 0;
  std::int64_t batches_in_epoch_ = 0;
  std::optional<std::int64_t> epoch_total_;

  bool line_open_ = false;
  std::size_t last_line_columns_ = 0;
  double last_draw_time_ = -1e300;

  std::optional<double> loss_;
  std::map<std::string, double> metrics_;
};

}  // namespace composer::loggers

#undef COMPOSER_LOGGERS_POSIX
