// An algorithm's options struct given to the Trainer in place of the algorithm it configures.
#include <composer/algorithms/mixup.hpp>
#include <composer/trainer.hpp>
int main() {
  composer::TrainerOptions options;
  composer::Trainer<composer::algorithms::MixUpOptions> trainer(composer::Model{}, options);
}
