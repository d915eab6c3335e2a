// A policy whose draw returns something other than exactly its stage_type (here a float).
#include "common.hpp"
struct MisDrawn {
  using stage_type = Stage;
  static constexpr composer::Event stage_event = composer::Event::BEFORE_FORWARD;
  static constexpr composer::EventSet events{composer::Event::BEFORE_FORWARD};
  float draw(MiniState&) { return 0.5f; }
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, MisDrawn> engine(s);
  engine.run<composer::Event::BEFORE_FORWARD>();
}
