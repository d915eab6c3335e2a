#pragma once
/// \file
/// composer::Event — the training lifecycle as a compile-time enumeration, in Composer's order.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace composer {

/// A stage of the training, evaluation or prediction lifecycle at which algorithms and callbacks run.
/// Composer counterpart: `composer.core.Event`; the enumerators and their order are Composer's.
enum class Event : std::uint8_t {
  INIT,
  BEFORE_LOAD,
  AFTER_LOAD,
  FIT_START,
  ITERATION_START,
  EPOCH_START,
  BEFORE_DATALOADER,
  AFTER_DATALOADER,
  BATCH_START,
  BEFORE_TRAIN_BATCH,
  BEFORE_FORWARD,
  AFTER_FORWARD,
  BEFORE_LOSS,
  AFTER_LOSS,
  BEFORE_BACKWARD,
  AFTER_BACKWARD,
  AFTER_TRAIN_BATCH,
  BATCH_END,
  BATCH_CHECKPOINT,
  EPOCH_END,
  EPOCH_CHECKPOINT,
  ITERATION_END,
  ITERATION_CHECKPOINT,
  FIT_END,
  EVAL_BEFORE_ALL,
  EVAL_START,
  EVAL_BATCH_START,
  EVAL_BEFORE_FORWARD,
  EVAL_AFTER_FORWARD,
  EVAL_BATCH_END,
  EVAL_END,
  EVAL_AFTER_ALL,
  EVAL_STANDALONE_START,
  EVAL_STANDALONE_END,
  PREDICT_START,
  PREDICT_BATCH_START,
  PREDICT_BEFORE_FORWARD,
  PREDICT_AFTER_FORWARD,
  PREDICT_BATCH_END,
  PREDICT_END,
};

/// Number of events in `Event`.
inline constexpr std::size_t event_count = static_cast<std::size_t>(Event::PREDICT_END) + 1;

/// Every event, in declaration order; `all_events[i]` has the underlying value `i`.
inline constexpr std::array<Event, event_count> all_events = [] {
  std::array<Event, event_count> events{};
  for (std::size_t i = 0; i < event_count; ++i) events[i] = static_cast<Event>(i);
  return events;
}();

namespace detail {
// Lower-case string values, indexed by the event's underlying value (Composer's `Event.value`).
inline constexpr std::array<std::string_view, event_count> event_values = {
    "init",
    "before_load",
    "after_load",
    "fit_start",
    "iteration_start",
    "epoch_start",
    "before_dataloader",
    "after_dataloader",
    "batch_start",
    "before_train_batch",
    "before_forward",
    "after_forward",
    "before_loss",
    "after_loss",
    "before_backward",
    "after_backward",
    "after_train_batch",
    "batch_end",
    "batch_checkpoint",
    "epoch_end",
    "epoch_checkpoint",
    "iteration_end",
    "iteration_checkpoint",
    "fit_end",
    "eval_before_all",
    "eval_start",
    "eval_batch_start",
    "eval_before_forward",
    "eval_after_forward",
    "eval_batch_end",
    "eval_end",
    "eval_after_all",
    "eval_standalone_start",
    "eval_standalone_end",
    "predict_start",
    "predict_batch_start",
    "predict_before_forward",
    "predict_after_forward",
    "predict_batch_end",
    "predict_end",
};

constexpr bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.substr(0, prefix.size()) == prefix;
}
constexpr bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
constexpr char to_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace detail

/// The event's string value, e.g. `"after_dataloader"`. Composer counterpart: `Event.value`.
constexpr std::string_view to_string(Event event) noexcept {
  return detail::event_values[static_cast<std::size_t>(event)];
}

/// Parses an event from its value (`"after_dataloader"`) or its name in any case (`"AFTER_DATALOADER"`);
/// returns `std::nullopt` for an unknown name. Composer counterpart: `Event(name)`.
constexpr std::optional<Event> try_parse_event(std::string_view name) noexcept {
  for (std::size_t i = 0; i < event_count; ++i) {
    const std::string_view value = detail::event_values[i];
    if (value.size() != name.size()) continue;
    bool equal = true;
    for (std::size_t k = 0; k < value.size() && equal; ++k) equal = detail::to_lower(name[k]) == value[k];
    if (equal) return static_cast<Event>(i);
  }
  return std::nullopt;
}

/// Parses an event like `try_parse_event`, throwing `std::invalid_argument` naming the bad string otherwise.
inline Event parse_event(std::string_view name) {
  if (auto event = try_parse_event(name)) return *event;
  throw std::invalid_argument("composer: unknown event name '" + std::string(name) +
                              "' (expected a value such as 'after_dataloader' or a name such as 'AFTER_DATALOADER')");
}

/// True for the 18 events Composer lists as "before" events (`Event.is_before_event`).
constexpr bool is_before_event(Event event) noexcept {
  switch (event) {
    case Event::BEFORE_LOAD:
    case Event::FIT_START:
    case Event::ITERATION_START:
    case Event::EPOCH_START:
    case Event::BEFORE_DATALOADER:
    case Event::BATCH_START:
    case Event::BEFORE_TRAIN_BATCH:
    case Event::BEFORE_FORWARD:
    case Event::BEFORE_LOSS:
    case Event::BEFORE_BACKWARD:
    case Event::EVAL_BEFORE_ALL:
    case Event::EVAL_START:
    case Event::EVAL_BATCH_START:
    case Event::EVAL_BEFORE_FORWARD:
    case Event::EVAL_STANDALONE_START:
    case Event::PREDICT_START:
    case Event::PREDICT_BATCH_START:
    case Event::PREDICT_BEFORE_FORWARD:
      return true;
    default:
      return false;
  }
}

/// True for the 18 events Composer lists as "after" events (`Event.is_after_event`). `INIT` and the three
/// `*_CHECKPOINT` events are neither before nor after events.
constexpr bool is_after_event(Event event) noexcept {
  switch (event) {
    case Event::AFTER_LOAD:
    case Event::AFTER_DATALOADER:
    case Event::AFTER_FORWARD:
    case Event::AFTER_LOSS:
    case Event::AFTER_BACKWARD:
    case Event::AFTER_TRAIN_BATCH:
    case Event::BATCH_END:
    case Event::EPOCH_END:
    case Event::ITERATION_END:
    case Event::FIT_END:
    case Event::EVAL_AFTER_FORWARD:
    case Event::EVAL_BATCH_END:
    case Event::EVAL_END:
    case Event::EVAL_AFTER_ALL:
    case Event::EVAL_STANDALONE_END:
    case Event::PREDICT_AFTER_FORWARD:
    case Event::PREDICT_BATCH_END:
    case Event::PREDICT_END:
      return true;
    default:
      return false;
  }
}

/// True for exactly the six events whose name starts with `AFTER_`: on these the Engine runs algorithms in
/// reverse declared order so that "undo" steps nest (first in, last out). `*_END` events are not reversed.
/// Composer counterpart: the `set_filo_order` pass in `composer/core/passes.py`.
constexpr bool reverses_algorithm_order(Event event) noexcept {
  return detail::starts_with(to_string(event), "after_");
}

/// True for the evaluation events (value starts with `eval`). Composer counterpart: `Event.is_eval`.
constexpr bool is_eval_event(Event event) noexcept { return detail::starts_with(to_string(event), "eval"); }

/// True for the prediction events (value starts with `predict`). Composer counterpart: `Event.is_predict`.
constexpr bool is_predict_event(Event event) noexcept { return detail::starts_with(to_string(event), "predict"); }

/// The value with `before_`, `after_`, `_start` and `_end` removed (in that order), so paired events share it:
/// `epoch_start`/`epoch_end` → `epoch`. Composer counterpart: `Event.canonical_name`.
inline std::string canonical_name(Event event) {
  std::string name(to_string(event));
  for (std::string_view part : {std::string_view("before_"), std::string_view("after_"), std::string_view("_start"),
                                std::string_view("_end")}) {
    for (auto pos = name.find(part); pos != std::string::npos; pos = name.find(part)) name.erase(pos, part.size());
  }
  return name;
}

/// A compile-time event: an empty type that converts to its `Event`. Algorithms receive one in `apply`, so
/// `if constexpr (event == Event::AFTER_LOSS)` works on an `auto event` parameter, and a plain `Event event`
/// parameter works too.
template <Event E>
struct EventTag {
  /// The event this tag stands for.
  static constexpr Event value = E;
  /// Converts to the runtime `Event`.
  constexpr operator Event() const noexcept { return E; }
};

/// The tag object of event `E`.
template <Event E>
inline constexpr EventTag<E> event_c{};

/// A set of events known at compile time: what a policy declares in its `events` member.
/// `static constexpr composer::EventSet events{Event::AFTER_DATALOADER, Event::AFTER_LOSS};`
/// Composer counterpart: the event list an `Algorithm.match` tests against.
class EventSet {
 public:
  /// The empty set.
  constexpr EventSet() noexcept = default;
  /// The set of the given events.
  constexpr EventSet(std::initializer_list<Event> events) noexcept {
    for (Event e : events) bits_ |= bit(e);
  }
  /// Whether `event` is in the set.
  constexpr bool contains(Event event) const noexcept { return (bits_ & bit(event)) != 0; }
  /// Number of events in the set.
  constexpr std::size_t size() const noexcept {
    std::size_t n = 0;
    for (std::uint64_t b = bits_; b != 0; b &= b - 1) ++n;
    return n;
  }
  /// Whether the set has no event.
  constexpr bool empty() const noexcept { return bits_ == 0; }
  /// The union of two sets.
  friend constexpr EventSet operator|(EventSet a, EventSet b) noexcept { return EventSet(a.bits_ | b.bits_); }
  /// Set equality.
  friend constexpr bool operator==(EventSet a, EventSet b) noexcept = default;
  /// Every event.
  static constexpr EventSet all() noexcept { return EventSet((std::uint64_t{1} << event_count) - 1); }

 private:
  constexpr explicit EventSet(std::uint64_t bits) noexcept : bits_(bits) {}
  static constexpr std::uint64_t bit(Event e) noexcept { return std::uint64_t{1} << static_cast<unsigned>(e); }
  std::uint64_t bits_ = 0;
};

static_assert(event_count == 40, "Composer defines 40 events");
static_assert(event_count <= 64, "EventSet stores one bit per event in 64 bits");

}  // namespace composer
