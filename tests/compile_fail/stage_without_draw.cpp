// A policy offering a fused stage without the draw that gives the stage its parameters.
#include "common.hpp"
struct Undrawn {
  using stage_type = Stage;
  static constexpr composer::Event stage_event = composer::Event::AFTER_DATALOADER;
  static constexpr composer::EventSet events{composer::Event::AFTER_DATALOADER};
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Undrawn> engine(s);
  engine.run<composer::Event::AFTER_DATALOADER>();
}
