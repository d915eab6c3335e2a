// A policy that restores state from checkpoints but never writes any.
#include "common.hpp"
struct LoadOnly {
  static constexpr composer::EventSet events{composer::Event::BATCH_END};
  int steps = 0;
  void apply(composer::Event, MiniState&) { ++steps; }
  void load_state(InArchive&) {}
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, LoadOnly> engine(s);
  engine.run<composer::Event::BATCH_END>();
}
