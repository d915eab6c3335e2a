// Events: names both ways, Composer's order, and the before/after/FILO classification.
#include <doctest/doctest.h>

#include <composer/core/event.hpp>

#include <algorithm>
#include <string>
#include <vector>

using composer::Event;

namespace {
// The lifecycle as written in Composer's event.py, typed out independently of the library's table.
const std::vector<std::string> composer_order = {
    "init", "before_load", "after_load", "fit_start", "iteration_start", "epoch_start", "before_dataloader",
    "after_dataloader", "batch_start", "before_train_batch", "before_forward", "after_forward", "before_loss",
    "after_loss", "before_backward", "after_backward", "after_train_batch", "batch_end", "batch_checkpoint",
    "epoch_end", "epoch_checkpoint", "iteration_end", "iteration_checkpoint", "fit_end", "eval_before_all",
    "eval_start", "eval_batch_start", "eval_before_forward", "eval_after_forward", "eval_batch_end", "eval_end",
    "eval_after_all", "eval_standalone_start", "eval_standalone_end", "predict_start", "predict_batch_start",
    "predict_before_forward", "predict_after_forward", "predict_batch_end", "predict_end"};

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}
}  // namespace

TEST_CASE("events are declared in Composer's order with Composer's values") {
  REQUIRE(composer::event_count == composer_order.size());
  for (std::size_t i = 0; i < composer_order.size(); ++i) {
    CAPTURE(i);
    CHECK(composer::to_string(composer::all_events[i]) == composer_order[i]);
  }
}

TEST_CASE("every event's name round-trips through value and upper-case name") {
  for (Event e : composer::all_events) {
    const std::string value(composer::to_string(e));
    CAPTURE(value);
    CHECK(composer::parse_event(value) == e);
    CHECK(composer::parse_event(upper(value)) == e);
    CHECK(composer::try_parse_event(value) == e);
  }
  CHECK(composer::parse_event("After_DataLoader") == Event::AFTER_DATALOADER);
}

TEST_CASE("an unknown event name is a clear error") {
  CHECK_THROWS_WITH_AS(composer::parse_event("after_dataloaders"),
                       doctest::Contains("unknown event name 'after_dataloaders'"), std::invalid_argument);
  CHECK_THROWS_AS(composer::parse_event(""), std::invalid_argument);
  CHECK_FALSE(composer::try_parse_event("before").has_value());
}

TEST_CASE("before/after classification matches Composer's tuples") {
  int before = 0, after = 0, neither = 0;
  for (Event e : composer::all_events) {
    CHECK_FALSE((composer::is_before_event(e) && composer::is_after_event(e)));
    before += composer::is_before_event(e);
    after += composer::is_after_event(e);
    neither += !composer::is_before_event(e) && !composer::is_after_event(e);
  }
  CHECK(before == 18);
  CHECK(after == 18);
  CHECK(neither == 4);
  CHECK_FALSE(composer::is_before_event(Event::INIT));
  CHECK_FALSE(composer::is_after_event(Event::BATCH_CHECKPOINT));
  CHECK(composer::is_before_event(Event::FIT_START));
  CHECK(composer::is_after_event(Event::FIT_END));
  CHECK(composer::is_after_event(Event::EVAL_AFTER_FORWARD));
}

TEST_CASE("exactly the six AFTER_* events reverse algorithm order") {
  std::vector<Event> reversed;
  for (Event e : composer::all_events)
    if (composer::reverses_algorithm_order(e)) reversed.push_back(e);
  const std::vector<Event> expected = {Event::AFTER_LOAD,    Event::AFTER_DATALOADER, Event::AFTER_FORWARD,
                                       Event::AFTER_LOSS,    Event::AFTER_BACKWARD,   Event::AFTER_TRAIN_BATCH};
  CHECK(reversed == expected);
  static_assert(!composer::reverses_algorithm_order(Event::BATCH_END));
  static_assert(!composer::reverses_algorithm_order(Event::EVAL_AFTER_FORWARD));
  static_assert(composer::reverses_algorithm_order(Event::AFTER_LOSS));
}

TEST_CASE("canonical names pair start/end and before/after events") {
  CHECK(composer::canonical_name(Event::EPOCH_START) == "epoch");
  CHECK(composer::canonical_name(Event::EPOCH_END) == "epoch");
  CHECK(composer::canonical_name(Event::BEFORE_TRAIN_BATCH) == "train_batch");
  CHECK(composer::canonical_name(Event::AFTER_TRAIN_BATCH) == "train_batch");
  CHECK(composer::canonical_name(Event::EVAL_BEFORE_ALL) == "eval_all");
  CHECK(composer::canonical_name(Event::EVAL_AFTER_ALL) == "eval_all");
  CHECK(composer::canonical_name(Event::PREDICT_BEFORE_FORWARD) == "predict_forward");
  CHECK(composer::canonical_name(Event::BATCH_CHECKPOINT) == "batch_checkpoint");
  CHECK(composer::canonical_name(Event::FIT_START) == "fit");
}

TEST_CASE("eval and predict events are recognised by their prefix") {
  int eval = 0, predict = 0;
  for (Event e : composer::all_events) {
    eval += composer::is_eval_event(e);
    predict += composer::is_predict_event(e);
  }
  CHECK(eval == 10);
  CHECK(predict == 6);
}

TEST_CASE("EventSet and EventTag are usable at compile time") {
  constexpr composer::EventSet set{Event::AFTER_DATALOADER, Event::AFTER_LOSS};
  static_assert(set.contains(Event::AFTER_LOSS));
  static_assert(!set.contains(Event::BEFORE_LOSS));
  static_assert(set.size() == 2);
  static_assert(composer::EventSet::all().size() == composer::event_count);
  static_assert(composer::EventSet{}.empty());
  static_assert((set | composer::EventSet{Event::INIT}).size() == 3);
  constexpr auto tag = composer::event_c<Event::AFTER_LOSS>;
  static_assert(tag == Event::AFTER_LOSS);
  static_assert(decltype(tag)::value == Event::AFTER_LOSS);
  CHECK(set.contains(Event::AFTER_DATALOADER));
}
