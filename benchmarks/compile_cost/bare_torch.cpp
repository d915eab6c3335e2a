// Compile-cost baseline: the training job of trainer_empty.cpp written with LibTorch alone (the same CNN, SGD with
// momentum, epochs of shuffled batches, cross entropy, evaluation, a checkpoint file). scripts/compile_cost.sh
// times this translation unit against the same job through composer::Trainer.
#include <torch/torch.h>

// The same model as the Trainer TUs (a header of LibTorch modules only, none of the library's machinery).
#include <composer/models/simple_cnn.hpp>

#include <cstdio>

int main() {
  torch::manual_seed(17);
  const auto images = torch::rand({512, 1, 28, 28});
  const auto labels = torch::randint(0, 10, {512});
  composer::models::SimpleCNN model;
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const int64_t batch_size = 64;
  for (int epoch = 0; epoch < 2; ++epoch) {
    model->train();
    const auto order = torch::randperm(images.size(0));
    for (int64_t start = 0; start < images.size(0); start += batch_size) {
      const auto rows = order.slice(0, start, start + batch_size);
      sgd.zero_grad();
      const auto loss = torch::nn::functional::cross_entropy(model->forward(images.index_select(0, rows)),
                                                             labels.index_select(0, rows));
      loss.backward();
      sgd.step();
    }
    torch::NoGradGuard no_grad;
    model->eval();
    const auto accuracy = model->forward(images).argmax(1).eq(labels).to(torch::kFloat).mean().item<double>();
    std::printf("epoch %d accuracy %.3f\n", epoch, accuracy);
    torch::save(model, "bare_torch_checkpoint.pt");
  }
}
