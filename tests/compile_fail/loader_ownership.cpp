// The control of loader_not_moved: the ways of passing a torch::data loader that the Trainer accepts compile with
// the same flags (moved in, shared, or referred to with std::ref), as do a range of batches copied in and moved in.
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include <torch/data.h>

#include <composer/trainer.hpp>

int main() {
  // Only compiled, never run: the MNIST files need not exist.
  auto mnist = [] { return torch::data::datasets::MNIST("mnist"); };
  auto kept = torch::data::make_data_loader(mnist(), 4);
  std::shared_ptr shared = torch::data::make_data_loader(mnist(), 4);
  std::vector<composer::Batch> batches{composer::Batch{torch::zeros({4, 2}), torch::zeros({4})}};
  composer::TrainerOptions options{.train_dataloader = torch::data::make_data_loader(mnist(), 4),
                                   .eval_dataloader = shared};
  composer::data::AnyLoader by_reference = std::ref(*kept);
  composer::data::AnyLoader moved = std::move(kept);
  composer::data::AnyLoader copied = batches;
  composer::data::AnyLoader moved_range = std::move(batches);
  return options.train_dataloader && options.eval_dataloader && by_reference && moved && copied && moved_range ? 0 : 1;
}
