// Compile-cost: bare_torch.cpp's job through composer::Trainer<> with no methods (the Trainer's loop,
// evaluation and checkpoint folder). COMPOSER_COMPILE_COST_HEADER picks the include: the umbrella
// <composer/composer.hpp> by default, or the Trainer's own header.
#ifndef COMPOSER_COMPILE_COST_HEADER
#define COMPOSER_COMPILE_COST_HEADER <composer/composer.hpp>
#endif
#include COMPOSER_COMPILE_COST_HEADER

#include <composer/data/tensor_loader.hpp>
#include <composer/models/simple_cnn.hpp>
#include <torch/optim/sgd.h>

#ifndef COMPOSER_COMPILE_COST_METHODS
#define COMPOSER_COMPILE_COST_METHODS
#define COMPOSER_COMPILE_COST_POLICY_OBJECTS
#endif

int main() {
  torch::manual_seed(17);
  const auto images = torch::rand({512, 1, 28, 28});
  const auto labels = torch::randint(0, 10, {512});
  composer::models::SimpleCNN model;
  auto sgd = std::make_shared<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  composer::data::TensorLoader train(images, labels, {.batch_size = 64, .shuffle = true});
  composer::data::TensorLoader test(images, labels, {.batch_size = 256});
  composer::Trainer<COMPOSER_COMPILE_COST_METHODS> trainer(model, {
      .train_dataloader = train,
      .eval_dataloader = test,
      .max_duration = composer::Time("2ep"),
      .optimizers = {sgd},
      .save_folder = "trainer_checkpoints",
      .seed = 17,
  } COMPOSER_COMPILE_COST_POLICY_OBJECTS);
  trainer.fit();
  std::printf("accuracy %.3f\n", trainer.eval().at("eval").at("accuracy"));
}
