// Asking the Engine for a policy type it does not hold.
#include "common.hpp"
struct Present {
  static constexpr composer::EventSet events{composer::Event::INIT};
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
struct Absent {
  static constexpr composer::EventSet events{composer::Event::INIT};
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Present> engine(s);
  return engine.get<Absent>().events.size() > 0 ? 0 : 1;
}
