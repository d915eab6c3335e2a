// The cost of running one training step's events (BEFORE_DATALOADER ... BATCH_CHECKPOINT) through
//   static_engine  composer::BasicEngine<...>: the dispatch plan is resolved at compile time;
//   hand_written   the same policies' apply() called inline, in the same order (the floor);
//   virtual_engine Composer's runtime design: base-class pointers asked match() at every event, the
//                  matches collected, reversed on AFTER_* events, then apply() called through virtuals;
//   std_function   the same runtime loop over std::function match/apply pairs;
// for N = 1, 4, 16, 64 trivial policies whose work (a dependent update of the state, kept in memory)
// the optimizer cannot delete. Every variant is checked to produce the same state as the floor.
#include <benchmark/benchmark.h>

#include <composer/core/engine.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace {

using composer::Event;
using composer::EventSet;

struct BenchState {
  std::uint64_t acc = 1;
};

constexpr std::array<Event, 13> step_events = {
    Event::BEFORE_DATALOADER, Event::AFTER_DATALOADER, Event::BATCH_START,     Event::BEFORE_TRAIN_BATCH,
    Event::BEFORE_FORWARD,    Event::AFTER_FORWARD,    Event::BEFORE_LOSS,     Event::AFTER_LOSS,
    Event::BEFORE_BACKWARD,   Event::AFTER_BACKWARD,   Event::AFTER_TRAIN_BATCH, Event::BATCH_END,
    Event::BATCH_CHECKPOINT};

// Event sets shaped like real methods: MixUp-like, LabelSmoothing-like, GradientClipping-like, EMA-like.
constexpr EventSet events_of(int k) {
  switch (k % 4) {
    case 0: return EventSet{Event::AFTER_DATALOADER, Event::AFTER_LOSS};
    case 1: return EventSet{Event::BEFORE_LOSS, Event::AFTER_LOSS};
    case 2: return EventSet{Event::AFTER_TRAIN_BATCH};
    default: return EventSet{Event::BATCH_START, Event::BATCH_END};
  }
}

// A trivial policy: a dependent multiply-add on the state, forced to memory so it cannot be folded away.
template <int K>
struct Trivial {
  static constexpr EventSet events = events_of(K);
  void apply(Event, BenchState& s) {
    s.acc = s.acc * 6364136223846793005ull + static_cast<std::uint64_t>(K + 1);
    benchmark::DoNotOptimize(s.acc);
  }
};

template <class Seq>
struct Policies;
template <int... K>
struct Policies<std::integer_sequence<int, K...>> {
  using engine = composer::BasicEngine<BenchState, Trivial<K>...>;
  using tuple = std::tuple<Trivial<K>...>;
};
template <int N>
using PoliciesOf = Policies<std::make_integer_sequence<int, N>>;

// ---- (b) hand-written: for each event, the matching policies' apply() in Composer's order, inline.
template <Event E, class Tuple, std::size_t... I>
inline void hand_written_event(Tuple& policies, BenchState& s, std::index_sequence<I...>) {
  constexpr std::size_t n = sizeof...(I);
  if constexpr (composer::reverses_algorithm_order(E)) {
    ((std::tuple_element_t<n - 1 - I, Tuple>::events.contains(E) ? std::get<n - 1 - I>(policies).apply(E, s)
                                                                   : void()),
     ...);
  } else {
    ((std::tuple_element_t<I, Tuple>::events.contains(E) ? std::get<I>(policies).apply(E, s) : void()), ...);
  }
}
template <class Tuple, std::size_t... EI>
inline void hand_written_step(Tuple& policies, BenchState& s, std::index_sequence<EI...>) {
  (hand_written_event<step_events[EI]>(policies, s, std::make_index_sequence<std::tuple_size_v<Tuple>>{}), ...);
}

// ---- (a) the static Engine.
template <class Engine, std::size_t... EI>
inline void engine_step(Engine& engine, std::index_sequence<EI...>) {
  (engine.template run<step_events[EI]>(), ...);
}

// ---- (c) Composer-style runtime engine: virtual match/apply asked at every event.
struct AlgorithmBase {
  virtual ~AlgorithmBase() = default;
  virtual bool match(Event event, const BenchState& state) const = 0;
  virtual void apply(Event event, BenchState& state) = 0;
};
template <class P>
struct VirtualAdapter final : AlgorithmBase {
  P policy;
  bool match(Event event, const BenchState&) const override { return P::events.contains(event); }
  void apply(Event event, BenchState& state) override { policy.apply(event, state); }
};
struct VirtualEngine {
  std::vector<std::unique_ptr<AlgorithmBase>> algorithms;
  std::vector<AlgorithmBase*> matched;
  void run_event(Event event, BenchState& state) {
    matched.clear();
    for (auto& a : algorithms)
      if (a->match(event, state)) matched.push_back(a.get());
    if (composer::reverses_algorithm_order(event)) std::reverse(matched.begin(), matched.end());
    for (AlgorithmBase* a : matched) a->apply(event, state);
  }
};

// ---- (d) the same loop over std::function pairs.
struct FunctionAlgorithm {
  std::function<bool(Event, const BenchState&)> match;
  std::function<void(Event, BenchState&)> apply;
};
struct FunctionEngine {
  std::vector<FunctionAlgorithm> algorithms;
  std::vector<FunctionAlgorithm*> matched;
  void run_event(Event event, BenchState& state) {
    matched.clear();
    for (auto& a : algorithms)
      if (a.match(event, state)) matched.push_back(&a);
    if (composer::reverses_algorithm_order(event)) std::reverse(matched.begin(), matched.end());
    for (FunctionAlgorithm* a : matched) a->apply(event, state);
  }
};

template <int N>
VirtualEngine make_virtual_engine() {
  VirtualEngine engine;
  [&]<int... K>(std::integer_sequence<int, K...>) {
    (engine.algorithms.push_back(std::make_unique<VirtualAdapter<Trivial<K>>>()), ...);
  }(std::make_integer_sequence<int, N>{});
  engine.matched.reserve(N);
  return engine;
}

template <int N>
FunctionEngine make_function_engine() {
  FunctionEngine engine;
  [&]<int... K>(std::integer_sequence<int, K...>) {
    (engine.algorithms.push_back(FunctionAlgorithm{
         [](Event e, const BenchState&) { return Trivial<K>::events.contains(e); },
         [p = Trivial<K>{}](Event e, BenchState& s) mutable { p.apply(e, s); }}),
     ...);
  }(std::make_integer_sequence<int, N>{});
  engine.matched.reserve(N);
  return engine;
}

constexpr auto step_indices = std::make_index_sequence<step_events.size()>{};

// The state after one step, computed by the hand-written floor: every variant must reach it.
template <int N>
std::uint64_t reference_after_one_step() {
  typename PoliciesOf<N>::tuple policies;
  BenchState s;
  hand_written_step(policies, s, step_indices);
  return s.acc;
}

void require_same(std::uint64_t got, std::uint64_t expected, const char* variant) {
  if (got != expected) {
    std::fprintf(stderr, "%s disagrees with the hand-written step: %llu vs %llu\n", variant,
                 static_cast<unsigned long long>(got), static_cast<unsigned long long>(expected));
    std::abort();
  }
}

void set_counters(benchmark::State& bench, int n) {
  bench.counters["policies"] = n;
  bench.counters["events/step"] = static_cast<double>(step_events.size());
}

template <int N>
void BM_hand_written(benchmark::State& bench) {
  typename PoliciesOf<N>::tuple policies;
  BenchState s;
  hand_written_step(policies, s, step_indices);
  require_same(s.acc, reference_after_one_step<N>(), "hand_written");
  for (auto _ : bench) hand_written_step(policies, s, step_indices);
  set_counters(bench, N);
}

template <int N>
void BM_static_engine(benchmark::State& bench) {
  BenchState s;
  typename PoliciesOf<N>::engine engine(s);
  engine_step(engine, step_indices);
  require_same(s.acc, reference_after_one_step<N>(), "static_engine");
  for (auto _ : bench) engine_step(engine, step_indices);
  set_counters(bench, N);
}

template <int N>
void BM_virtual_engine(benchmark::State& bench) {
  BenchState s;
  VirtualEngine engine = make_virtual_engine<N>();
  for (Event e : step_events) engine.run_event(e, s);
  require_same(s.acc, reference_after_one_step<N>(), "virtual_engine");
  for (auto _ : bench)
    for (Event e : step_events) engine.run_event(e, s);
  set_counters(bench, N);
}

template <int N>
void BM_std_function(benchmark::State& bench) {
  BenchState s;
  FunctionEngine engine = make_function_engine<N>();
  for (Event e : step_events) engine.run_event(e, s);
  require_same(s.acc, reference_after_one_step<N>(), "std_function");
  for (auto _ : bench)
    for (Event e : step_events) engine.run_event(e, s);
  set_counters(bench, N);
}

#define COMPOSER_DISPATCH_BENCHMARKS(N)                             \
  BENCHMARK_TEMPLATE(BM_hand_written, N)->Name("hand_written/" #N); \
  BENCHMARK_TEMPLATE(BM_static_engine, N)->Name("static_engine/" #N); \
  BENCHMARK_TEMPLATE(BM_virtual_engine, N)->Name("virtual_engine/" #N); \
  BENCHMARK_TEMPLATE(BM_std_function, N)->Name("std_function/" #N);

COMPOSER_DISPATCH_BENCHMARKS(1)
COMPOSER_DISPATCH_BENCHMARKS(4)
COMPOSER_DISPATCH_BENCHMARKS(16)
COMPOSER_DISPATCH_BENCHMARKS(64)

}  // namespace

BENCHMARK_MAIN();
