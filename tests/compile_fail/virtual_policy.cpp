// A policy written in the runtime-dispatch style: a virtual function has no place on the static path.
#include "common.hpp"
struct Virtual {
  static constexpr composer::EventSet events{composer::Event::INIT};
  virtual ~Virtual() = default;
  virtual void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Virtual> engine(s);
  engine.run<composer::Event::INIT>();
}
