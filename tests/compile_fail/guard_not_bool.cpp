// A runtime guard that does not answer yes or no.
#include "common.hpp"
#include <string>
struct OddGuard {
  static constexpr composer::EventSet events{composer::Event::INIT};
  std::string match(composer::Event, const MiniState&) const { return "yes"; }
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, OddGuard> engine(s);
  engine.run<composer::Event::INIT>();
}
