// A logger destination whose log_metrics lacks the state parameter: the Engine's logger would never call it.
#include "common.hpp"
struct Stateless {
  static constexpr composer::Role role = composer::Role::logger;
  static constexpr composer::EventSet events{};
  int logged = 0;
  void log_metrics(const composer::Metrics&) { ++logged; }
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Stateless> engine(s);
  engine.logger().log_metrics({{"loss", 1.0}});
}
