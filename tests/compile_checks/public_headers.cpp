// Compiles every public header and instantiates the main templates, so that the headers are checked
// against another LibTorch (2.x) and another compiler (nvcc) than the default build uses.
#include <composer/composer.hpp>

namespace {
struct Touch {
  static constexpr composer::EventSet events{composer::Event::AFTER_DATALOADER, composer::Event::AFTER_LOSS};
  double mixing = 0.0;
  void apply(composer::Event event, composer::State& state, const composer::Logger& logger) {
    if (event == composer::Event::AFTER_LOSS) logger.log_metrics({{"loss", state.loss.item<double>()}});
    mixing += 0.5;
  }
};
}  // namespace

void composer_public_headers_compile_check(composer::State& state) {
  composer::Engine<Touch> engine(state);
  engine.run_event("after_dataloader");
  engine.run<composer::Event::AFTER_LOSS>();
  (void)composer::Time::from_timestring("0.25dur");
}

void composer_trainer_compile_check(composer::Model model, composer::TrainerOptions options) {
  composer::Trainer<Touch> trainer(std::move(model), std::move(options));
  trainer.fit();
  (void)trainer.eval();
  trainer.save_checkpoint("checkpoint.pt");
}
