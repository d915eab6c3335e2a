#pragma once
/// \file
/// composer::TimeUnit and composer::Time — amounts and points of training time with Composer's parsing and
/// arithmetic rules.

#include <cctype>
#include <charconv>
#include <cmath>
#include <concepts>
#include <type_traits>
#include <cstdint>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace composer {

/// The unit a `Time` is counted in. Composer counterpart: `composer.core.TimeUnit` (values `iter`, `ep`, `ba`,
/// `sp`, `tok`, `dur`, `sec`).
enum class TimeUnit : std::uint8_t {
  ITERATION,  ///< `iter`: iterations (groups of epochs)
  EPOCH,      ///< `ep`: passes over the training data
  BATCH,      ///< `ba`: optimizer steps
  SAMPLE,     ///< `sp`: training samples
  TOKEN,      ///< `tok`: training tokens
  DURATION,   ///< `dur`: fraction of the maximum duration, a real number
  SECOND,     ///< `sec`: wall-clock seconds
};

/// Thrown when two `Time`s of different units are combined or compared. Composer raises `RuntimeError` there.
struct TimeUnitMismatch : std::logic_error {
  using std::logic_error::logic_error;
};

/// Thrown for a malformed time string or unit name. Composer raises `ValueError`/`TypeError` there.
struct TimeParseError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

namespace detail {
struct TimeUnitNames {
  TimeUnit unit;
  std::string_view value;
  std::string_view name;
};
inline constexpr TimeUnitNames time_unit_names[] = {
    {TimeUnit::ITERATION, "iter", "iteration"}, {TimeUnit::EPOCH, "ep", "epoch"},
    {TimeUnit::BATCH, "ba", "batch"},           {TimeUnit::SAMPLE, "sp", "sample"},
    {TimeUnit::TOKEN, "tok", "token"},          {TimeUnit::DURATION, "dur", "duration"},
    {TimeUnit::SECOND, "sec", "second"},
};

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// Python's float() grammar: optional surrounding white space, a sign, then digits with single underscores
// between digits, an optional fraction and exponent; or inf/infinity/nan. Returns false if `text` is not one.
inline bool parse_python_float(std::string_view text, double& out) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  std::string cleaned;
  std::size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) cleaned += text[i++];
  std::string_view rest = text.substr(i);
  for (std::string_view special : {"inf", "infinity", "nan"}) {
    if (iequals(rest, special)) {
      const bool negative = !cleaned.empty() && cleaned[0] == '-';
      out = special == "nan" ? std::numeric_limits<double>::quiet_NaN()
                             : (negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity());
      return true;
    }
  }
  auto digits = [&](bool required) {
    std::size_t count = 0;
    while (i < text.size()) {
      const char c = text[i];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        cleaned += c;
        ++count;
        ++i;
      } else if (c == '_' && count > 0 && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1]))) {
        ++i;  // an underscore between two digits
      } else {
        break;
      }
    }
    return count > 0 || !required;
  };
  const std::size_t integer_start = cleaned.size();
  digits(false);
  const bool has_integer = cleaned.size() > integer_start;
  bool has_fraction = false;
  if (i < text.size() && text[i] == '.') {
    cleaned += text[i++];
    const std::size_t fraction_start = cleaned.size();
    digits(false);
    has_fraction = cleaned.size() > fraction_start;
  }
  if (!has_integer && !has_fraction) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    cleaned += text[i++];
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) cleaned += text[i++];
    if (!digits(true)) return false;
  }
  if (i != text.size()) return false;
  const char* first = cleaned.data();
  if (*first == '+') ++first;
  const auto result = std::from_chars(first, cleaned.data() + cleaned.size(), out);
  if (result.ec == std::errc::result_out_of_range) {
    out = cleaned[0] == '-' ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    return true;
  }
  return result.ec == std::errc{} && result.ptr == cleaned.data() + cleaned.size();
}

// Shortest representation that reads back to the same double, with ".0" added to integral values as Python's
// repr does ("1.0dur", "0.25dur").
inline std::string python_float_repr(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, result.ptr);
  if (text.find_first_of(".en") == std::string::npos) text += ".0";
  return text;
}

// Composer's wall-clock form (`verify_wct`, then `datetime.strptime(s, "%Hh%Mm%Ss")`): fills in missing "h", "m",
// "s" parts ("0h" in front, "h" → "h0m", "0s" at the end), then requires `(\d+h)(\d+m)(\d+s)` with one or two
// digits per field, hours 0–23, minutes 0–59 and seconds 0–59. strptime's pattern reads 60 and 61 seconds, but
// the datetime it builds rejects them, so "60s" and "61s" are not wall-clock times. Lower-case letters only.
// Returns false when the form does not apply.
inline bool parse_wall_clock(std::string_view text, std::int64_t& seconds) {
  std::string s(text);
  if (s.find('h') == std::string::npos) s = "0h" + s;
  if (s.find('m') == std::string::npos) {
    std::string replaced;
    for (char c : s) replaced += (c == 'h') ? std::string("h0m") : std::string(1, c);
    s = replaced;
  }
  if (s.find('s') == std::string::npos) s += "0s";
  const char suffixes[] = {'h', 'm', 's'};
  const int limits[] = {24, 60, 60};
  std::int64_t parts[3] = {0, 0, 0};
  std::size_t pos = 0;
  for (int k = 0; k < 3; ++k) {
    const std::size_t start = pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
    if (pos == start || pos >= s.size() || s[pos] != suffixes[k]) return false;
    if (pos - start > 2) return false;  // strptime reads at most two digits per field
    parts[k] = std::stoll(s.substr(start, pos - start));
    if (parts[k] >= limits[k]) return false;
    ++pos;
  }
  if (pos != s.size()) return false;
  seconds = parts[0] * 3600 + parts[1] * 60 + parts[2];
  return true;
}
}  // namespace detail

/// The short value of a unit, e.g. `"ep"`. Composer counterpart: `TimeUnit.value`.
constexpr std::string_view to_string(TimeUnit unit) noexcept {
  for (const auto& names : detail::time_unit_names)
    if (names.unit == unit) return names.value;
  return "?";
}

/// Parses a unit from its value (`"ep"`) or its name (`"epoch"`, `"EPOCH"`), in any case; throws
/// `TimeParseError` naming the string otherwise. Composer counterpart: `TimeUnit(x)`.
inline TimeUnit parse_time_unit(std::string_view text) {
  for (const auto& names : detail::time_unit_names)
    if (detail::iequals(text, names.value) || detail::iequals(text, names.name)) return names.unit;
  throw TimeParseError("composer: unknown time unit '" + std::string(text) +
                       "' (expected one of iter, ep, ba, sp, tok, dur, sec or their names such as 'epoch')");
}

/// An amount or point of training time: an integer count of iterations, epochs, batches, samples, tokens or
/// seconds, or a real fraction (`dur`) of the maximum duration. Arithmetic and comparison need equal units
/// (else `TimeUnitMismatch`), except multiplication by a `dur` time. Composer counterpart: `composer.core.Time`.
class Time {
 public:
  /// An integral amount in a unit other than `dur`, or a fraction when `unit` is `DURATION`.
  template <std::integral I>
  constexpr Time(I value, TimeUnit unit) noexcept : unit_(unit) {
    if (unit == TimeUnit::DURATION)
      fraction_ = static_cast<double>(value);
    else
      count_ = static_cast<std::int64_t>(value);
  }
  /// A real value: allowed for `dur`; for other units the value must be integral (else `TimeParseError`, as
  /// Composer's `TypeError`).
  template <std::floating_point F>
  Time(F value, TimeUnit unit) : unit_(unit) {
    if (unit == TimeUnit::DURATION)
      fraction_ = static_cast<double>(value);
    else
      count_ = to_count(static_cast<double>(value), unit);
  }
  /// A value in a unit given by name or value, e.g. `Time(10, "epoch")`, `Time(0.25, "dur")`.
  template <class Number>
    requires std::is_arithmetic_v<Number>
  Time(Number value, std::string_view unit) : Time(value, parse_time_unit(unit)) {}
  /// Parses a time string such as `"10ep"` (see `from_timestring`).
  explicit Time(std::string_view timestring) : Time(from_timestring(timestring)) {}
  /// Parses a time string such as `"10ep"` (see `from_timestring`).
  explicit Time(const char* timestring) : Time(std::string_view(timestring)) {}

  /// `Time(n, ITERATION)`. Composer counterpart: `Time.from_iteration`.
  static constexpr Time from_iteration(std::int64_t n) noexcept { return Time(n, TimeUnit::ITERATION); }
  /// `Time(n, EPOCH)`. Composer counterpart: `Time.from_epoch`.
  static constexpr Time from_epoch(std::int64_t n) noexcept { return Time(n, TimeUnit::EPOCH); }
  /// `Time(n, BATCH)`. Composer counterpart: `Time.from_batch`.
  static constexpr Time from_batch(std::int64_t n) noexcept { return Time(n, TimeUnit::BATCH); }
  /// `Time(n, SAMPLE)`. Composer counterpart: `Time.from_sample`.
  static constexpr Time from_sample(std::int64_t n) noexcept { return Time(n, TimeUnit::SAMPLE); }
  /// `Time(n, TOKEN)`. Composer counterpart: `Time.from_token`.
  static constexpr Time from_token(std::int64_t n) noexcept { return Time(n, TimeUnit::TOKEN); }
  /// `Time(n, SECOND)`. Composer counterpart: `Time.from_timedelta` for whole seconds.
  static constexpr Time from_second(std::int64_t n) noexcept { return Time(n, TimeUnit::SECOND); }
  /// `Time(fraction, DURATION)`. Composer counterpart: `Time.from_duration`.
  static Time from_duration(double fraction) { return Time(fraction, TimeUnit::DURATION); }

  /// Parses a time string with Composer's rules (`Time.from_timestring`): first the wall-clock form
  /// `[H h][M m][S s]` with one or two digits per field, H 0–23, M 0–59 and S 0–59 (e.g. `"1h20m40s"` = 4840 sec;
  /// `"60s"`, `"90m"` and `"24h"` are errors, as in Composer), then a number followed by a unit value in any case
  /// (`"10ep"`, `"500ba"`, `"3e4tok"`, `"4_000sp"`, `"0.25dur"`, `"30sec"`, `"2iter"`). The number follows
  /// Python's float syntax; units other than `dur` need an integral value. Throws `TimeParseError` naming the
  /// string otherwise.
  static Time from_timestring(std::string_view text) {
    if (text.find_first_not_of(" \t\n\r\f\v") == std::string_view::npos)
      throw TimeParseError("composer: invalid time string '" + std::string(text) + "': it is empty");
    std::int64_t seconds = 0;
    if (detail::parse_wall_clock(text, seconds)) return Time(seconds, TimeUnit::SECOND);
    for (const auto& names : detail::time_unit_names) {
      const std::string_view suffix = names.value;
      if (text.size() <= suffix.size()) continue;
      if (!detail::iequals(text.substr(text.size() - suffix.size()), suffix)) continue;
      const std::string_view number = text.substr(0, text.size() - suffix.size());
      double value = 0;
      if (!detail::parse_python_float(number, value))
        throw TimeParseError("composer: invalid time string '" + std::string(text) + "': '" + std::string(number) +
                             "' is not a number");
      if (!std::isfinite(value))
        throw TimeParseError("composer: invalid time string '" + std::string(text) + "': the value is not finite");
      return Time(value, names.unit);
    }
    throw TimeParseError("composer: invalid time string '" + std::string(text) +
                         "' (expected a number followed by a unit: iter, ep, ba, sp, tok, dur or sec, e.g. '10ep', "
                         "'0.25dur', or a wall-clock time like '1h20m40s')");
  }

  /// The unit.
  constexpr TimeUnit unit() const noexcept { return unit_; }
  /// Whether the unit is `dur` (the value is a real fraction).
  constexpr bool is_duration() const noexcept { return unit_ == TimeUnit::DURATION; }
  /// The value as a real number (the count, or the fraction for `dur`). Composer counterpart: `float(time)`.
  constexpr double value() const noexcept { return is_duration() ? fraction_ : static_cast<double>(count_); }
  /// The integral count; for `dur` the fraction truncated toward zero. Composer counterpart: `int(time)`.
  constexpr std::int64_t count() const noexcept { return is_duration() ? static_cast<std::int64_t>(fraction_) : count_; }

  /// `"<value><unit>"`, e.g. `"10ep"`, `"0.25dur"`, `"1.0dur"`. Composer counterpart: `str(time)`.
  std::string to_string() const {
    return (is_duration() ? detail::python_float_repr(fraction_) : std::to_string(count_)) +
           std::string(composer::to_string(unit_));
  }

  /// Same-unit sum. Composer counterpart: `Time.__add__`.
  friend Time operator+(const Time& a, const Time& b) {
    check_same_unit(a, b, "add");
    return a.is_duration() ? Time(a.fraction_ + b.fraction_, TimeUnit::DURATION) : Time(a.count_ + b.count_, a.unit_);
  }
  /// Same-unit difference. Composer counterpart: `Time.__sub__`.
  friend Time operator-(const Time& a, const Time& b) {
    check_same_unit(a, b, "subtract");
    return a.is_duration() ? Time(a.fraction_ - b.fraction_, TimeUnit::DURATION) : Time(a.count_ - b.count_, a.unit_);
  }
  /// Negation. Composer counterpart: `Time.__neg__`.
  friend Time operator-(const Time& a) {
    return a.is_duration() ? Time(-a.fraction_, TimeUnit::DURATION) : Time(-a.count_, a.unit_);
  }
  /// Same-unit remainder (Python's sign rule: the result has the divisor's sign). Composer counterpart:
  /// `Time.__mod__`.
  friend Time operator%(const Time& a, const Time& b) {
    check_same_unit(a, b, "take the remainder of");
    if (a.is_duration()) {
      if (b.fraction_ == 0) throw std::domain_error("composer: remainder of " + a.to_string() + " by zero");
      double r = std::fmod(a.fraction_, b.fraction_);
      if (r != 0 && ((r < 0) != (b.fraction_ < 0))) r += b.fraction_;
      return Time(r, TimeUnit::DURATION);
    }
    if (b.count_ == 0) throw std::domain_error("composer: remainder of " + a.to_string() + " by zero");
    std::int64_t r = a.count_ % b.count_;
    if (r != 0 && ((r < 0) != (b.count_ < 0))) r += b.count_;
    return Time(r, a.unit_);
  }
  /// Scales by a number, keeping the unit; integral units truncate toward zero (`Time(2,"ep") * 0.5 == 1ep`).
  /// Composer counterpart: `Time.__mul__` with a number.
  friend Time operator*(const Time& a, double factor) {
    return a.is_duration() ? Time(a.fraction_ * factor, TimeUnit::DURATION)
                           : Time(truncate(static_cast<double>(a.count_) * factor, a.unit_), a.unit_);
  }
  /// Scales by a number. Composer counterpart: `Time.__rmul__`.
  friend Time operator*(double factor, const Time& a) { return a * factor; }
  /// Product of two times, allowed only when one is in `dur`; the result takes the other unit
  /// (`0.5dur * 2ep == 1ep`). Composer counterpart: `Time.__mul__` with a `Time`.
  friend Time operator*(const Time& a, const Time& b) {
    if (!a.is_duration() && !b.is_duration())
      throw TimeUnitMismatch("composer: cannot multiply " + a.to_string() + " by " + b.to_string() +
                             ": multiplication needs one of the units to be dur");
    if (a.is_duration() && b.is_duration()) return Time(a.fraction_ * b.fraction_, TimeUnit::DURATION);
    const Time& whole = a.is_duration() ? b : a;
    const double fraction = a.is_duration() ? a.fraction_ : b.fraction_;
    return Time(truncate(static_cast<double>(whole.count_) * fraction, whole.unit_), whole.unit_);
  }
  /// Divides by a number, keeping the unit; integral units truncate toward zero. Composer counterpart:
  /// `Time.__truediv__` with a number.
  friend Time operator/(const Time& a, double divisor) {
    if (divisor == 0) throw std::domain_error("composer: division of " + a.to_string() + " by zero");
    return a.is_duration() ? Time(a.fraction_ / divisor, TimeUnit::DURATION)
                           : Time(truncate(static_cast<double>(a.count_) / divisor, a.unit_), a.unit_);
  }
  /// Ratio of two same-unit times as a `dur` fraction (`1ep / 2ep == 0.5dur`). Composer counterpart:
  /// `Time.__truediv__` with a `Time`.
  friend Time operator/(const Time& a, const Time& b) {
    check_same_unit(a, b, "divide");
    if (b.value() == 0) throw std::domain_error("composer: division of " + a.to_string() + " by " + b.to_string());
    return Time(a.value() / b.value(), TimeUnit::DURATION);
  }
  /// Adds a same-unit time in place.
  Time& operator+=(const Time& other) { return *this = *this + other; }
  /// Subtracts a same-unit time in place.
  Time& operator-=(const Time& other) { return *this = *this - other; }

  /// Same-unit equality (`TimeUnitMismatch` across units, as Composer's comparison raises).
  friend bool operator==(const Time& a, const Time& b) { return compare(a, b) == 0; }
  /// Same-unit ordering (`TimeUnitMismatch` across units).
  friend bool operator<(const Time& a, const Time& b) { return compare(a, b) < 0; }
  /// Same-unit ordering (`TimeUnitMismatch` across units).
  friend bool operator<=(const Time& a, const Time& b) { return compare(a, b) <= 0; }
  /// Same-unit ordering (`TimeUnitMismatch` across units).
  friend bool operator>(const Time& a, const Time& b) { return compare(a, b) > 0; }
  /// Same-unit ordering (`TimeUnitMismatch` across units).
  friend bool operator>=(const Time& a, const Time& b) { return compare(a, b) >= 0; }
  /// Writes `to_string()`.
  friend std::ostream& operator<<(std::ostream& os, const Time& t) { return os << t.to_string(); }

 private:
  static std::int64_t to_count(double value, TimeUnit unit) {
    if (!std::isfinite(value) || value != std::trunc(value))
      throw TimeParseError("composer: value " + detail::python_float_repr(value) + " is not an integer; unit '" +
                           std::string(composer::to_string(unit)) + "' requires integer values");
    return checked(value, unit);
  }
  static std::int64_t truncate(double value, TimeUnit unit) { return checked(std::trunc(value), unit); }
  static std::int64_t checked(double value, TimeUnit unit) {
    if (!(value >= -9.2e18 && value <= 9.2e18))
      throw TimeParseError("composer: value " + detail::python_float_repr(value) + " in unit '" +
                           std::string(composer::to_string(unit)) + "' does not fit a 64-bit count");
    return static_cast<std::int64_t>(value);
  }
  static void check_same_unit(const Time& a, const Time& b, const char* verb) {
    if (a.unit_ != b.unit_)
      throw TimeUnitMismatch(std::string("composer: cannot ") + verb + " " + a.to_string() + " and " + b.to_string() +
                             " since they have different units");
  }
  static int compare(const Time& a, const Time& b) {
    if (a.unit_ != b.unit_)
      throw TimeUnitMismatch("composer: cannot compare " + a.to_string() + " to " + b.to_string() +
                             " since they have different units");
    if (a.is_duration()) return a.fraction_ < b.fraction_ ? -1 : (a.fraction_ > b.fraction_ ? 1 : 0);
    return a.count_ < b.count_ ? -1 : (a.count_ > b.count_ ? 1 : 0);
  }

  std::int64_t count_ = 0;
  double fraction_ = 0.0;
  TimeUnit unit_ = TimeUnit::EPOCH;
};

/// User-defined literals for times: `10_ep`, `500_ba`, `0.25_dur`.
namespace time_literals {
/// Epochs.
constexpr Time operator""_ep(unsigned long long n) { return Time::from_epoch(static_cast<std::int64_t>(n)); }
/// Batches.
constexpr Time operator""_ba(unsigned long long n) { return Time::from_batch(static_cast<std::int64_t>(n)); }
/// Samples.
constexpr Time operator""_sp(unsigned long long n) { return Time::from_sample(static_cast<std::int64_t>(n)); }
/// Tokens.
constexpr Time operator""_tok(unsigned long long n) { return Time::from_token(static_cast<std::int64_t>(n)); }
/// Iterations.
constexpr Time operator""_iter(unsigned long long n) { return Time::from_iteration(static_cast<std::int64_t>(n)); }
/// Fractions of the maximum duration.
inline Time operator""_dur(long double f) { return Time::from_duration(static_cast<double>(f)); }
}  // namespace time_literals

}  // namespace composer
