// The control case: a well-formed policy compiles with the same flags as the compile-fail cases.
#include "common.hpp"
struct Fine {
  static constexpr composer::EventSet events{composer::Event::BEFORE_LOSS, composer::Event::AFTER_LOSS};
  bool match(composer::Event, const MiniState& s) const { return s.value >= 0; }
  void apply(composer::Event, MiniState& s, const composer::Logger&) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Fine> engine(s);
  engine.run<composer::Event::BEFORE_LOSS>();
  engine.run_event("after_loss");
  return engine.get<Fine>().events.size() == 2 && s.value == 2 ? 0 : 1;
}
