// Engine: which policies run on which event and in what order, over a whole simulated training step.
#include <doctest/doctest.h>

#include <composer/core/engine.hpp>

#include <boost/hana/equal.hpp>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using composer::Event;
using composer::EventSet;
using composer::Role;

namespace engine_test {

// A state of our own: the Engine is generic over it.
struct TraceState {
  std::vector<std::string> trace;
  bool allow_guarded = true;
  std::vector<composer::Metrics> logged;
};

void record(TraceState& s, const char* who, Event e) { s.trace.push_back(std::string(who) + ":" + std::string(composer::to_string(e))); }

struct Alpha {
  static constexpr EventSet events{Event::INIT, Event::AFTER_DATALOADER, Event::BEFORE_FORWARD, Event::AFTER_LOSS,
                                   Event::BATCH_END};
  int calls = 0;
  void apply(Event e, TraceState& s) {
    ++calls;
    record(s, "alpha", e);
  }
};

// A guarded algorithm: runs only while the state allows it.
struct Guarded {
  static constexpr EventSet events{Event::AFTER_DATALOADER, Event::BEFORE_LOSS, Event::AFTER_LOSS};
  bool match(Event, const TraceState& s) const { return s.allow_guarded; }
  void apply(Event e, TraceState& s, const composer::Logger&) { record(s, "guarded", e); }
};

// Its apply only compiles for the events it declares: the Engine must never instantiate it for others.
struct Gamma {
  static constexpr EventSet events{Event::BEFORE_FORWARD, Event::AFTER_FORWARD, Event::AFTER_LOSS};
  void apply(auto event, TraceState& s) {
    static_assert(event == Event::BEFORE_FORWARD || event == Event::AFTER_FORWARD || event == Event::AFTER_LOSS);
    if constexpr (event == Event::AFTER_LOSS)
      record(s, "gamma!", event);
    else
      record(s, "gamma", event);
  }
};

// Like SelectiveBackprop: placed first among the algorithms of every event it handles.
struct Front {
  static constexpr EventSet events{Event::AFTER_DATALOADER};
  static constexpr composer::Placement placement = composer::Placement::first;
  void apply(Event e, TraceState& s) { record(s, "front", e); }
};

struct Watcher {
  static constexpr Role role = Role::callback;
  static constexpr EventSet events{Event::INIT, Event::AFTER_LOSS, Event::BATCH_END};
  void apply(Event e, TraceState& s, const composer::Logger& logger) {
    record(s, "watcher", e);
    if (e == Event::AFTER_LOSS) logger.log_metrics({{"loss/train", 0.5}});
  }
};

struct Sink {
  static constexpr Role role = Role::logger;
  static constexpr EventSet events{Event::INIT, Event::BATCH_END};
  std::vector<composer::Hyperparameters> hparams;
  void apply(Event e, TraceState& s) { record(s, "sink", e); }
  void log_metrics(const composer::Metrics& m, const TraceState& s) {
    const_cast<TraceState&>(s).logged.push_back(m);
  }
  void log_hyperparameters(const composer::Hyperparameters& h, const TraceState&) { hparams.push_back(h); }
};

struct Never {
  static constexpr EventSet events{Event::PREDICT_END};
  void apply(Event e, TraceState& s) { record(s, "never", e); }
};

using StepEngine = composer::BasicEngine<TraceState, Alpha, Guarded, Watcher, Gamma, Sink, Front, Never>;

const std::vector<Event> step_events = {
    Event::INIT,           Event::FIT_START,      Event::EPOCH_START,       Event::BEFORE_DATALOADER,
    Event::AFTER_DATALOADER, Event::BATCH_START,  Event::BEFORE_TRAIN_BATCH, Event::BEFORE_FORWARD,
    Event::AFTER_FORWARD,  Event::BEFORE_LOSS,    Event::AFTER_LOSS,        Event::BEFORE_BACKWARD,
    Event::AFTER_BACKWARD, Event::AFTER_TRAIN_BATCH, Event::BATCH_END,      Event::BATCH_CHECKPOINT,
    Event::EPOCH_END,      Event::FIT_END};

}  // namespace engine_test

using namespace engine_test;

TEST_CASE("a whole step runs exactly the matching policies in Composer's order") {
  TraceState state;
  StepEngine engine(state);
  for (Event e : step_events) engine.run_event(e);
  const std::vector<std::string> expected = {
      // INIT: loggers, then callbacks, then algorithms
      "sink:init", "watcher:init", "alpha:init",
      // AFTER_DATALOADER reverses algorithms (guarded, alpha); Front is placed first
      "front:after_dataloader", "guarded:after_dataloader", "alpha:after_dataloader",
      // BEFORE_FORWARD: declared order
      "alpha:before_forward", "gamma:before_forward",
      "gamma:after_forward",
      "guarded:before_loss",
      // AFTER_LOSS: algorithms reversed (gamma, guarded, alpha), then the callback
      "gamma!:after_loss", "guarded:after_loss", "alpha:after_loss", "watcher:after_loss",
      // BATCH_END is not reversed: algorithms, callbacks, loggers
      "alpha:batch_end", "watcher:batch_end", "sink:batch_end"};
  CHECK(state.trace == expected);
  CHECK(engine.get<Alpha>().calls == 5);
  REQUIRE(state.logged.size() == 1);
  CHECK(state.logged[0].at("loss/train") == 0.5);
}

TEST_CASE("a runtime guard skips its policy and nothing else") {
  TraceState state;
  state.allow_guarded = false;
  StepEngine engine(state);
  engine.run<Event::AFTER_DATALOADER>();
  engine.run<Event::BEFORE_LOSS>();
  engine.run<Event::AFTER_LOSS>();
  const std::vector<std::string> expected = {"front:after_dataloader", "alpha:after_dataloader", "gamma!:after_loss",
                                             "alpha:after_loss", "watcher:after_loss"};
  CHECK(state.trace == expected);
}

TEST_CASE("run_except runs an event without the positions given, in the same order, any role") {
  TraceState state;
  StepEngine engine(state);
  // AFTER_LOSS runs gamma (3), guarded (1), alpha (0), then watcher (2): without guarded and the callback.
  engine.run_except<Event::AFTER_LOSS>(std::index_sequence<1, 2>{});
  CHECK(state.trace == std::vector<std::string>{"gamma!:after_loss", "alpha:after_loss"});
  state.trace.clear();
  // Positions that do not handle the event change nothing; an empty set is run<E>().
  engine.run_except<Event::AFTER_DATALOADER>(std::index_sequence<3, 6>{});
  engine.run_except<Event::BEFORE_FORWARD>();
  CHECK(state.trace == std::vector<std::string>{"front:after_dataloader", "guarded:after_dataloader",
                                                "alpha:after_dataloader", "alpha:before_forward",
                                                "gamma:before_forward"});
  state.trace.clear();
  // INIT keeps its own role order: loggers, callbacks, then algorithms.
  engine.run_except<Event::INIT>(std::index_sequence<2>{});
  CHECK(state.trace == std::vector<std::string>{"sink:init", "alpha:init"});
}

TEST_CASE("the dispatch plan is a compile-time constant") {
  namespace hana = boost::hana;
  static_assert(hana::equal(StepEngine::dispatch_order<Event::AFTER_LOSS, Role::algorithm>(),
                            hana::tuple_c<std::size_t, 3, 1, 0>));
  static_assert(hana::equal(StepEngine::dispatch_order<Event::AFTER_DATALOADER, Role::algorithm>(),
                            hana::tuple_c<std::size_t, 5, 1, 0>));
  static_assert(hana::equal(StepEngine::dispatch_order<Event::BATCH_END, Role::callback>(),
                            hana::tuple_c<std::size_t, 2>));
  static_assert(hana::equal(StepEngine::dispatch_order<Event::EVAL_START, Role::algorithm>(), hana::tuple_c<std::size_t>));
  static_assert(StepEngine::handles<Event::PREDICT_END>());
  static_assert(!StepEngine::handles<Event::EVAL_START>());
  static_assert(!std::is_polymorphic_v<StepEngine>);
  static_assert(composer::handles_event<Gamma, Event::AFTER_FORWARD>);
  static_assert(!composer::handles_event<Gamma, Event::BEFORE_LOSS>);
  static_assert(composer::role_of<Sink> == Role::logger && composer::role_of<Alpha> == Role::algorithm);
  CHECK(StepEngine::size == 7);
}

TEST_CASE("run_event maps names to the static path and refuses unknown ones") {
  TraceState state;
  StepEngine engine(state);
  engine.run_event("before_forward");
  engine.run_event("AFTER_FORWARD");
  CHECK(state.trace == std::vector<std::string>{"alpha:before_forward", "gamma:before_forward", "gamma:after_forward"});
  CHECK_THROWS_WITH_AS(engine.run_event("after_forwards"), doctest::Contains("unknown event name"),
                       std::invalid_argument);
  engine.run_event("predict_end");
  CHECK(state.trace.back() == "never:predict_end");
}

TEST_CASE("an Engine with no policies runs every event and does nothing") {
  TraceState state;
  composer::BasicEngine<TraceState> engine(state);
  for (Event e : composer::all_events) engine.run_event(e);
  CHECK(state.trace.empty());
  static_assert(decltype(engine)::size == 0);
  static_assert(!decltype(engine)::handles<Event::INIT>());
  engine.logger().log_metrics({{"ignored", 1.0}});  // no destination: discarded
  CHECK_FALSE(engine.logger().has_metrics_destination());
}

TEST_CASE("the logger reaches every destination and only destinations") {
  TraceState state;
  StepEngine engine(state);
  CHECK(engine.logger().has_metrics_destination());
  engine.logger().log_hyperparameters({{"seed", "17"}});
  REQUIRE(engine.get<Sink>().hparams.size() == 1);
  CHECK(engine.get<Sink>().hparams[0].at("seed") == "17");
}

namespace engine_test {
struct Closer {
  static constexpr EventSet events{};
  std::vector<std::string>* log;
  bool fail = false;
  void close(TraceState&) {
    log->push_back("close");
    if (fail) throw std::runtime_error("disk full");
  }
  void post_close() { log->push_back("post_close"); }
};
}  // namespace engine_test

TEST_CASE("close runs once, post_close only after a successful close, errors surface") {
  TraceState state;
  std::vector<std::string> log_a, log_b;
  {
    composer::BasicEngine<TraceState, Closer, Alpha, Closer> engine(state, Closer{&log_a}, Alpha{},
                                                                    Closer{&log_b, true});
    CHECK_THROWS_WITH(engine.close(), "disk full");
    CHECK(engine.closed());
    engine.close();  // second call does nothing
  }
  CHECK(log_a == std::vector<std::string>{"close", "post_close"});
  CHECK(log_b == std::vector<std::string>{"close"});
}

TEST_CASE("policies keep their own members between events") {
  TraceState state;
  composer::BasicEngine<TraceState, Alpha> engine(state);
  engine.run<Event::INIT>();
  engine.run<Event::BATCH_END>();
  engine.run<Event::EVAL_START>();  // not handled
  CHECK(engine.get<0>().calls == 2);
}

namespace protocol_test {
// Stand-ins for the checkpoint archives and a fused stage: the protocol checks are generic over them.
struct Archive {};
struct Stage {};

struct ConstSaver {
  void save_state(Archive&) const {}
  void load_state(Archive&) {}
};
struct MutableSaver {
  void save_state(Archive&) {}
};
struct LoadsIntoState {
  void load_state(Archive&, engine_test::TraceState&) {}
};
struct LoadsIntoOtherState {
  void load_state(Archive&, int&) {}
};
// close() on its own next to close(const State&), as MetricsFile has: the second is the one the Engine calls.
struct OverloadedClose {
  void close() {}
  void close(const engine_test::TraceState&) {}
};
struct CloseWithoutState {
  void close() {}
};
struct TemplateLogger {
  void log_metrics(const composer::Metrics&, const auto&) {}
};
struct StatelessLogger {
  void log_hyperparameters(const composer::Hyperparameters&) {}
};
struct Staged {
  using stage_type = Stage;
  static constexpr Event stage_event = Event::BEFORE_FORWARD;
  Stage draw(const engine_test::TraceState&) const { return {}; }
};
struct StageOfOtherType {
  using stage_type = Stage;
  static constexpr Event stage_event = Event::BEFORE_FORWARD;
  const Stage& draw(engine_test::TraceState&);
};
struct EventWithoutStage {
  static constexpr Event stage_event = Event::AFTER_DATALOADER;
};
struct NonConstGuard {
  bool match(Event, engine_test::TraceState&) { return true; }
};
struct NamedByFunction {
  const char* name() const { return "x"; }
};
struct NoMembers {};
}  // namespace protocol_test

TEST_CASE("the policy protocol sees members declared in any form and tells the forms the library calls") {
  namespace d = composer::detail;
  using namespace protocol_test;
  using engine_test::TraceState;

  static_assert(d::declares_save_state<ConstSaver> && d::saves_state_in_form<ConstSaver>);
  static_assert(d::declares_load_state<ConstSaver> && d::loads_state_in_form<ConstSaver, TraceState>);
  static_assert(d::declares_save_state<MutableSaver> && !d::saves_state_in_form<MutableSaver>);
  static_assert(!d::declares_load_state<MutableSaver>);
  static_assert(d::declares_load_state<LoadsIntoState> && d::loads_state_in_form<LoadsIntoState, TraceState>);
  static_assert(d::declares_load_state<LoadsIntoOtherState> &&
                !d::loads_state_in_form<LoadsIntoOtherState, TraceState>);

  static_assert(d::declares_close<OverloadedClose> && d::closes_in_form<OverloadedClose, TraceState>);
  static_assert(d::declares_close<CloseWithoutState> && !d::closes_in_form<CloseWithoutState, TraceState>);
  static_assert(d::declares_post_close<engine_test::Closer> && d::declares_close<engine_test::Closer>);

  static_assert(d::declares_log_metrics<TemplateLogger> && d::logs_metrics_in_form<TemplateLogger, TraceState>);
  static_assert(d::declares_log_hyperparameters<StatelessLogger> &&
                !d::logs_hyperparameters_in_form<StatelessLogger, TraceState>);
  static_assert(d::declares_log_metrics<engine_test::Sink> && d::logs_metrics_in_form<engine_test::Sink, TraceState>);

  static_assert(d::declares_stage<Staged> && d::stage_event_in_form<Staged> && d::stage_draw_in_form<Staged, TraceState>());
  static_assert(d::declares_stage<StageOfOtherType> && !d::stage_draw_in_form<StageOfOtherType, TraceState>());
  static_assert(d::declares_stage<EventWithoutStage> && !d::declares_stage_type<EventWithoutStage>);

  static_assert(d::declares_match<NonConstGuard> && !composer::has_match_guard<NonConstGuard, TraceState>);
  static_assert(d::declares_match<engine_test::Guarded> && composer::has_match_guard<engine_test::Guarded, TraceState>);
  static_assert(d::declares_name<NamedByFunction> && !d::name_in_form<NamedByFunction>);

  static_assert(!d::declares_save_state<NoMembers> && !d::declares_load_state<NoMembers> && !d::declares_close<NoMembers> &&
                !d::declares_log_metrics<NoMembers> && !d::declares_match<NoMembers> && !d::declares_stage<NoMembers> &&
                !d::declares_name<NoMembers> && !d::declares_touches_inputs<NoMembers>);

  // Every policy of the step engine passes the whole protocol.
  CHECK(composer::policy_check<engine_test::Sink, TraceState>::value);
  CHECK(composer::policy_check<engine_test::Closer, TraceState>::value);
}
