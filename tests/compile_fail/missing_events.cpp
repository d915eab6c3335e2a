// A policy that does not say which events it handles.
#include "common.hpp"
struct NoEvents {
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, NoEvents> engine(s);
  engine.run<composer::Event::INIT>();
}
