// The ResNet family: shapes, layer counts per depth, the strided layers, the parameter count, argument errors,
// and a short training run.
#include <torch/torch.h>

#include <composer/models/resnet.hpp>
#include <composer/surgery.hpp>

#include <doctest/doctest.h>

#include "../support/error_messages.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace {

using composer::models::BasicBlockImpl;
using composer::models::ResNet;
using composer::models::ResNetOptions;
using composer::models::resnet_options;
using composer::surgery::count_module_instances;
using composer::surgery::find_modules;

// Parameters of one basic block from `in` to `out` channels: two 3x3 convolutions without bias, two batch norms
// (scale and shift), and a 1x1 projection with its batch norm when the width or resolution changes.
std::int64_t basic_block_parameters(std::int64_t in, std::int64_t out, bool projected) {
  std::int64_t n = in * out * 9 + out * out * 9 + 2 * 2 * out;
  if (projected) n += in * out + 2 * out;
  return n;
}

// The same count for a whole network, from the formula (stem, stages, classifier).
std::int64_t resnet_parameters(const ResNetOptions& o) {
  std::int64_t n = o.in_channels * o.width * 9 + 2 * o.width;
  std::int64_t channels = o.width;
  for (std::size_t s = 0; s < o.blocks_per_stage.size(); ++s) {
    const std::int64_t out = o.width << s;
    for (std::int64_t b = 0; b < o.blocks_per_stage[s]; ++b) {
      const std::int64_t in = b == 0 ? channels : out;
      const bool projected = b == 0 && (s != 0 || in != out);
      n += basic_block_parameters(in, out, projected);
    }
    channels = out;
  }
  return n + channels * o.num_classes + o.num_classes;
}

std::int64_t parameter_count(torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::vector<std::string> strided_conv_paths(torch::nn::Module& m) {
  std::vector<std::string> paths;
  for (const auto& found : find_modules<torch::nn::Conv2dImpl>(m))
    if ((*found.module->options.stride())[0] > 1) paths.push_back(found.path);
  return paths;
}

}  // namespace

TEST_CASE("ResNet output shapes for the CIFAR family and ResNet-18, at 28x28, 32x32 and odd sizes") {
  torch::manual_seed(0);
  for (int depth : {8, 20, 56}) {
    CAPTURE(depth);
    ResNet net(resnet_options(depth, {.in_channels = 1, .num_classes = 10}));
    net->eval();
    CHECK(net->forward(torch::randn({2, 1, 28, 28})).sizes() == std::vector<std::int64_t>{2, 10});
    CHECK(net->features(torch::randn({3, 1, 28, 28})).sizes() == std::vector<std::int64_t>{3, 64});
  }
  ResNet cifar = composer::models::resnet20();
  cifar->eval();
  CHECK(cifar->forward(torch::randn({4, 3, 32, 32})).sizes() == std::vector<std::int64_t>{4, 10});
  CHECK(cifar->forward(torch::randn({1, 3, 17, 23})).sizes() == std::vector<std::int64_t>{1, 10});
  CHECK(cifar->forward(torch::randn({2, 3, 5, 3})).sizes() == std::vector<std::int64_t>{2, 10});

  ResNet r18 = composer::models::resnet18({.num_classes = 7});
  r18->eval();
  CHECK(r18->features(torch::randn({2, 3, 32, 32})).sizes() == std::vector<std::int64_t>{2, 512});
  CHECK(r18->forward(torch::randn({2, 3, 28, 28})).sizes() == std::vector<std::int64_t>{2, 7});
  CHECK(r18->forward(torch::randn({1, 3, 31, 29})).sizes() == std::vector<std::int64_t>{1, 7});

  // with the ImageNet-style stem pooling, and dropout before the classifier
  ResNet pooled(resnet_options(8, {.num_classes = 5, .dropout = 0.5, .stem_max_pool = true}));
  pooled->eval();
  CHECK(pooled->forward(torch::randn({2, 3, 28, 28})).sizes() == std::vector<std::int64_t>{2, 5});
  CHECK(count_module_instances<torch::nn::MaxPool2dImpl>(*pooled) == 1);
  CHECK(count_module_instances<torch::nn::DropoutImpl>(*pooled) == 1);
  CHECK(count_module_instances<torch::nn::DropoutImpl>(*cifar) == 0);
}

TEST_CASE("ResNet layer counts per depth, worked out by hand") {
  // CIFAR family, depth 6n+2: three stages of n blocks. Convolutions: the stem, two per block, and the 1x1
  // projections of the first blocks of stages 2 and 3 (stage 1 keeps width 16 at stride 1, so its shortcut is
  // the identity): 1 + 6n + 2. Batch norms: one after each convolution.
  struct Expected {
    int depth;
    std::size_t blocks, convs;
  };
  for (const Expected e : {Expected{8, 3, 9}, Expected{20, 9, 21}, Expected{56, 27, 57}}) {
    CAPTURE(e.depth);
    ResNet net(resnet_options(e.depth));
    CHECK(count_module_instances<BasicBlockImpl>(*net) == e.blocks);
    CHECK(count_module_instances<torch::nn::Conv2dImpl>(*net) == e.convs);
    CHECK(count_module_instances<torch::nn::BatchNorm2dImpl>(*net) == e.convs);
    CHECK(count_module_instances<torch::nn::LinearImpl>(*net) == 1);
    CHECK(count_module_instances<composer::models::ResNetShortcutImpl>(*net) == 2);
  }
  // ResNet-18: four stages of two blocks = 8 blocks; 1 + 16 + 3 projections (stages 2-4) = 20 convolutions.
  ResNet r18 = composer::models::resnet18();
  CHECK(count_module_instances<BasicBlockImpl>(*r18) == 8);
  CHECK(count_module_instances<torch::nn::Conv2dImpl>(*r18) == 20);
  CHECK(count_module_instances<torch::nn::BatchNorm2dImpl>(*r18) == 20);
  // ResNet-34: [3, 4, 6, 3] = 16 blocks; 1 + 32 + 3 = 36 convolutions.
  ResNet r34(resnet_options(34));
  CHECK(count_module_instances<BasicBlockImpl>(*r34) == 16);
  CHECK(count_module_instances<torch::nn::Conv2dImpl>(*r34) == 36);
}

TEST_CASE("the strided convolutions sit at the first block of each later stage, in the block and its shortcut") {
  ResNet r20 = composer::models::resnet20();
  CHECK(strided_conv_paths(*r20) == std::vector<std::string>{"layer2.0.conv1", "layer2.0.shortcut.conv",
                                                             "layer3.0.conv1", "layer3.0.shortcut.conv"});
  ResNet r18 = composer::models::resnet18();
  CHECK(strided_conv_paths(*r18) ==
        std::vector<std::string>{"layer2.0.conv1", "layer2.0.shortcut.conv", "layer3.0.conv1",
                                 "layer3.0.shortcut.conv", "layer4.0.conv1", "layer4.0.shortcut.conv"});
  // a block's own accessors agree
  const auto blocks = find_modules<BasicBlockImpl>(*r20);
  REQUIRE(blocks.size() == 9);
  CHECK(blocks[0].path == "layer1.0");
  CHECK(blocks[3].path == "layer2.0");
  CHECK(blocks[3].module->stride() == 2);
  CHECK(blocks[3].module->in_channels() == 16);
  CHECK(blocks[3].module->out_channels() == 32);
  CHECK(blocks[4].module->stride() == 1);
  CHECK(blocks[3].module->has_slot("shortcut"));
  CHECK_FALSE(blocks[4].module->has_slot("shortcut"));
}

TEST_CASE("ResNet-20 of width 16 has 272,474 parameters, as the formula says") {
  // By hand: stem 3·16·9 + 32 = 464; stage 1: 3 · (2·16·16·9 + 64) = 14,016; stage 2: first block
  // 16·32·9 + 32·32·9 + 128 + 16·32 + 64 = 14,528, two more of 2·32·32·9 + 128 = 18,560 each → 51,648;
  // stage 3: 32·64·9 + 64·64·9 + 256 + 32·64 + 128 = 57,728, two of 2·64·64·9 + 256 = 73,984 → 205,696;
  // classifier 64·10 + 10 = 650. Total 272,474.
  ResNet r20 = composer::models::resnet20();
  CHECK(parameter_count(*r20) == 272474);
  CHECK(resnet_parameters(r20->options()) == 272474);
  for (int depth : {8, 56, 18}) {
    CAPTURE(depth);
    ResNet net(resnet_options(depth, {.in_channels = 1, .num_classes = 10}));
    CHECK(parameter_count(*net) == resnet_parameters(net->options()));
  }
  ResNet wide(resnet_options(20, {.width = 24}));
  CHECK(wide->options().width == 24);
  CHECK(parameter_count(*wide) == resnet_parameters(wide->options()));
}

TEST_CASE("bad depths and options are rejected with a clear message") {
  using composer_test::check_bad_argument;
  for (int depth : {0, 7, 10, 19, 21, -4}) {
    CAPTURE(depth);
    check_bad_argument([&] { (void)resnet_options(depth); }, {"depth " + std::to_string(depth), "6n+2"});
  }
  check_bad_argument([] { ResNet net(ResNetOptions{.blocks_per_stage = {}}); }, {"at least one stage"});
  check_bad_argument([] { ResNet net(ResNetOptions{.blocks_per_stage = {2, 0, 2}}); }, {"at least one block", "0"});
  check_bad_argument([] { ResNet net(ResNetOptions{.width = 0}); }, {"width"});
  check_bad_argument([] { ResNet net(ResNetOptions{.in_channels = -1}); }, {"in_channels"});
  check_bad_argument([] { ResNet net(ResNetOptions{.num_classes = 0}); }, {"num_classes"});
  check_bad_argument([] { ResNet net(ResNetOptions{.dropout = 1.0}); }, {"dropout", "[0, 1)"});
  check_bad_argument([] { composer::models::BasicBlock block(16, 16, 0); }, {"stride"});
}

TEST_CASE("a small ResNet learns a tiny synthetic task (the loss falls)") {
  // Class = which half of the image is brighter; 64 8x8 images, ResNet-8 of width 8, 30 SGD steps.
  torch::manual_seed(3);
  const auto x = torch::randn({64, 1, 8, 8});
  const auto left = x.slice(3, 0, 4).mean({1, 2, 3});
  const auto right = x.slice(3, 4, 8).mean({1, 2, 3});
  const auto y = (left > right).to(torch::kLong);
  ResNet net(resnet_options(8, {.width = 8, .in_channels = 1, .num_classes = 2}));
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 30; ++step) {
    sgd.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    loss.backward();
    sgd.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  CAPTURE(first);
  CAPTURE(last);
  CHECK(last < 0.5 * first);
  net->eval();
  const double accuracy = (net->forward(x).argmax(1) == y).to(torch::kDouble).mean().item<double>();
  CHECK(accuracy > 0.9);
}
