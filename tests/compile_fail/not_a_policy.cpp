// A type with none of the policy protocol's members (here an options struct) given to the Engine as a policy.
#include "common.hpp"
struct ScaleOptions {
  double factor = 2.0;
  bool enabled = true;
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, ScaleOptions> engine(s);
  engine.run<composer::Event::INIT>();
}
