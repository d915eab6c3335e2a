// A torch::data loader (the std::unique_ptr that make_data_loader returns) given to the Trainer as an lvalue.
#include <torch/data.h>

#include <composer/trainer.hpp>

int main() {
  // Only compiled, never run: the MNIST files need not exist.
  auto loader = torch::data::make_data_loader(torch::data::datasets::MNIST("mnist"), 4);
  composer::TrainerOptions options{.train_dataloader = loader};
}
