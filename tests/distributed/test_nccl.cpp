// NCCL for CUDA devices (COMPOSER_WITH_NCCL), on one GPU: a group of one talks through ProcessGroupNCCL, stages
// CPU tensors on its device and back, and a Trainer on cuda:0 in that group steps as one process does. Built and
// run where LibTorch has CUDA (scripts/gpu_check.sh); everywhere else torch2_headers.gxx_nccl compiles it.
#include <composer/composer.hpp>
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace nccl_test {

namespace dist = composer::dist;

TEST_CASE("NCCL on one GPU: collectives on CUDA and staged CPU tensors, and a Trainer step equal to one process's") {
  static_assert(dist::nccl_compiled_in, "this test is compiled with COMPOSER_WITH_NCCL");
  REQUIRE_MESSAGE(torch::cuda::is_available(), "the NCCL test needs a CUDA device");
  dist::DistributedOptions options;
  options.master_port = std::getenv("COMPOSER_NCCL_TEST_PORT") ? std::atoi(std::getenv("COMPOSER_NCCL_TEST_PORT")) : 29533;
  options.device = torch::Device(torch::kCUDA, 0);
  options.timeout = std::chrono::seconds(60);
  const auto group = dist::ProcessGroup::create(options);
  CHECK(group->backend() == dist::Backend::nccl);

  const torch::Tensor on_gpu = torch::arange(4, torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA, 0));
  group->all_reduce_sum(on_gpu, "test all-reduce");  // one rank: the sum is the tensor itself
  CHECK(torch::equal(on_gpu.cpu(), torch::arange(4).to(torch::kFloat)));
  const torch::Tensor on_cpu = torch::tensor({1.5, 2.5}, torch::kDouble);
  group->all_reduce_sum(on_cpu, "test staged all-reduce");
  CHECK(on_cpu.device().is_cpu());
  CHECK(torch::equal(on_cpu, torch::tensor({1.5, 2.5}, torch::kDouble)));
  const auto gathered = group->all_gather(torch::tensor({7, 8}, torch::kLong), "test gather");
  REQUIRE(gathered.size() == 1);
  CHECK(gathered[0].device().is_cpu());
  CHECK(torch::equal(gathered[0], torch::tensor({7, 8}, torch::kLong)));

  // A Trainer step in the group against the same step without it.
  auto make = [] {
    torch::manual_seed(3);
    return torch::nn::Linear(6, 3);
  };
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({8, 6});
  const torch::Tensor y = torch::randint(0, 3, {8});
  auto step = [&](std::shared_ptr<dist::ProcessGroup> with) {
    auto model = make();
    composer::TrainerOptions trainer_options;
    trainer_options.train_dataloader = composer::data::TensorLoader(x, y, 8);
    trainer_options.max_duration = composer::Time::from_batch(1);
    trainer_options.optimizers = {std::make_shared<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.1))};
    trainer_options.device = torch::Device(torch::kCUDA, 0);
    trainer_options.progress_bar = false;
    trainer_options.seed = 5;
    trainer_options.process_group = std::move(with);
    composer::Trainer<> trainer(composer::Model(model.ptr()), std::move(trainer_options));
    trainer.fit();
    return model->weight.detach().cpu();
  };
  CHECK(torch::allclose(step(group), step(nullptr), 1e-6, 1e-7));
}

}  // namespace nccl_test
