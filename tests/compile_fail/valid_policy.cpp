// The control case: well-formed policies compile with the same flags as the compile-fail cases, Complete and
// Destination declaring every optional member of the policy protocol in the form the library calls.
#include "common.hpp"
struct Fine {
  static constexpr composer::EventSet events{composer::Event::BEFORE_LOSS, composer::Event::AFTER_LOSS};
  bool match(composer::Event, const MiniState& s) const { return s.value >= 0; }
  void apply(composer::Event, MiniState& s, const composer::Logger&) { ++s.value; }
};
struct Complete {
  static constexpr const char* name = "Complete";
  static constexpr composer::EventSet events{composer::Event::AFTER_DATALOADER, composer::Event::FIT_END};
  static constexpr composer::Role role = composer::Role::algorithm;
  static constexpr composer::Placement placement = composer::Placement::last;
  static constexpr bool touches_inputs = true;
  using stage_type = Stage;
  static constexpr composer::Event stage_event = composer::Event::AFTER_DATALOADER;
  bool match(composer::Event, const MiniState&) const { return true; }
  Stage draw(MiniState&) { return {}; }
  void apply(composer::Event, MiniState& s) { s.value += 10; }
  void save_state(OutArchive&) const {}
  void load_state(InArchive&, MiniState&) {}
  void close(MiniState& s, const composer::Logger&) { s.value += 100; }
  void post_close() {}
};
struct Destination {
  static constexpr composer::Role role = composer::Role::logger;
  static constexpr composer::EventSet events{};
  int logged = 0;
  void log_metrics(const composer::Metrics& metrics, const MiniState&) { logged += static_cast<int>(metrics.size()); }
  void log_hyperparameters(const composer::Hyperparameters&, const MiniState&) { ++logged; }
  void close(MiniState&) {}
};
int main() {
  MiniState s;
  composer::BasicEngine<MiniState, Fine, Complete, Destination> engine(s);
  engine.run<composer::Event::BEFORE_LOSS>();
  engine.run_event("after_loss");
  engine.run<composer::Event::AFTER_DATALOADER>();
  engine.logger().log_metrics({{"loss", 1.0}});
  engine.close();
  return engine.get<Fine>().events.size() == 2 && s.value == 112 && engine.get<Destination>().logged == 1 ? 0 : 1;
}
