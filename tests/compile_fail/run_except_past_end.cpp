// Skipping a position the Engine does not have (it holds one policy, at position 0).
#include "common.hpp"
#include <utility>
struct Only {
  static constexpr composer::EventSet events{composer::Event::INIT};
  void apply(composer::Event, MiniState& s) { ++s.value; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Only> engine(s);
  engine.run_except<composer::Event::INIT>(std::index_sequence<1>{});
  return s.value;
}
