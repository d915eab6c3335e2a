// A policy that declares AFTER_LOSS but can only apply itself on BEFORE_LOSS.
#include "common.hpp"
struct HalfDone {
  static constexpr composer::EventSet events{composer::Event::BEFORE_LOSS, composer::Event::AFTER_LOSS};
  void apply(composer::EventTag<composer::Event::BEFORE_LOSS>, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, HalfDone> engine(s);
  engine.run<composer::Event::BEFORE_LOSS>();
}
