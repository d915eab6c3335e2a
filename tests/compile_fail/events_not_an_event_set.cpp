// A policy whose `events` is not a composer::EventSet.
#include "common.hpp"
struct WrongEvents {
  static constexpr int events = 3;
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, WrongEvents> engine(s);
  engine.run<composer::Event::INIT>();
}
