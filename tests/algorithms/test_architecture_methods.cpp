// The methods that change a model's architecture: BlurPool, ChannelsLast, SqueezeExcite and StochasticDepth
// (their functional forms and policies; their modules: tests/modules), on the ResNet family and through the
// Trainer's checkpoints.
#include <torch/torch.h>

#include <composer/algorithms/blurpool.hpp>
#include <composer/algorithms/channels_last.hpp>
#include <composer/algorithms/squeeze_excite.hpp>
#include <composer/algorithms/stochastic_depth.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/functional.hpp>
#include <composer/models/resnet.hpp>
#include <composer/modules/blurpool.hpp>
#include <composer/modules/squeeze_excite.hpp>
#include <composer/modules/stochastic_depth.hpp>
#include <composer/surgery.hpp>
#include <composer/io/files.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include "../support/error_messages.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace architecture_test {

namespace io = composer::io;
namespace alg = composer::algorithms;
namespace cf = composer::functional;
namespace cm = composer::modules;
using composer::Event;
using composer::Time;
using composer::models::BasicBlockImpl;
using composer::models::ResNet;
using composer::models::ResNetOptions;
using composer::models::resnet_options;
using composer::surgery::count_module_instances;
using composer::surgery::find_modules;
using OptimizerList = std::vector<std::shared_ptr<torch::optim::Optimizer>>;

ResNet make_resnet(int depth = 20, std::uint64_t seed = 0, ResNetOptions base = {}) {
  torch::manual_seed(seed);
  return ResNet(resnet_options(depth, base));
}

std::shared_ptr<torch::optim::SGD> make_sgd(torch::nn::Module& m, double momentum = 0.9) {
  return std::make_shared<torch::optim::SGD>(m.parameters(), torch::optim::SGDOptions(0.1).momentum(momentum));
}

std::set<const void*> impls(const std::vector<at::Tensor>& tensors) {
  std::set<const void*> out;
  for (const auto& t : tensors) out.insert(t.unsafeGetTensorImpl());
  return out;
}

// The parameters every group of `optimizer` holds, as a set of tensor identities.
std::set<const void*> optimizer_params(torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> all;
  for (auto& group : optimizer.param_groups())
    for (const auto& p : group.params()) all.push_back(p);
  CHECK(impls(all).size() == all.size());  // no parameter twice
  return impls(all);
}

std::set<std::string> parameter_names(torch::nn::Module& m) {
  std::set<std::string> names;
  for (const auto& item : m.named_parameters()) names.insert(item.key());
  return names;
}

std::int64_t parameter_count(torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::vector<at::Tensor> clones(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

// One SGD step on a random batch; returns the parameters as they were before it.
std::vector<at::Tensor> train_step(ResNet& net, torch::optim::Optimizer& optimizer, std::int64_t in_channels = 3) {
  const auto before = clones(net->parameters());
  optimizer.zero_grad();
  const auto x = torch::randn({4, in_channels, 16, 16});
  const auto y = torch::randint(0, 10, {4}, torch::TensorOptions().dtype(torch::kLong));
  torch::nn::functional::cross_entropy(net->forward(x), y).backward();
  optimizer.step();
  return before;
}

// A module of the tree by its dotted path.
template <class Impl>
std::shared_ptr<Impl> module_at(torch::nn::Module& root, const std::string& path) {
  for (const auto& item : root.named_modules())
    if (item.key() == path) return std::dynamic_pointer_cast<Impl>(item.value());
  return nullptr;
}

// The activations after the stem and the first stage, computed through the modules found in the tree (so that
// they reflect any surgery below them).
at::Tensor stem_and_layer1(torch::nn::Module& net, const at::Tensor& x) {
  auto conv1 = module_at<torch::nn::Module>(net, "conv1");
  torch::nn::AnyModule c(std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(conv1));
  auto bn = module_at<torch::nn::BatchNorm2dImpl>(net, "bn1");
  auto stage = module_at<composer::models::ResNetStageImpl>(net, "layer1");
  REQUIRE(bn);
  REQUIRE(stage);
  return stage->forward(at::relu(bn->forward(c.forward(x))));
}

// Keeps what is logged, as a logger destination.
struct Sink {
  static constexpr composer::Role role = composer::Role::logger;
  static constexpr composer::EventSet events{};
  std::vector<composer::Metrics> metrics;
  std::vector<composer::Hyperparameters> hyperparameters;
  void log_metrics(const composer::Metrics& m, const composer::State&) { metrics.push_back(m); }
  void log_hyperparameters(const composer::Hyperparameters& h, const composer::State&) { hyperparameters.push_back(h); }
};

// The drop rate of every stochastic block, in depth order.
std::vector<double> drop_rates(torch::nn::Module& net) {
  std::vector<double> rates;
  for (const auto& found : find_modules<cm::StochasticBasicBlockImpl>(net)) rates.push_back(found.module->drop_rate());
  return rates;
}

// Images for the Trainer: `samples` random [channels, size, size] images with labels.
composer::data::TensorLoader image_loader(std::int64_t samples, std::int64_t batch, std::int64_t channels = 3,
                                          std::int64_t size = 12, std::uint64_t seed = 5) {
  torch::manual_seed(seed);
  auto x = torch::randn({samples, channels, size, size});
  auto y = torch::randint(0, 10, {samples}, torch::TensorOptions().dtype(torch::kLong));
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, /*shuffle=*/true, false, 9});
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = io::join(io::temp_directory(), "composer_architecture_test_" + name);
  io::remove_all(dir);
  io::create_directories(dir);
  return dir;
}

}  // namespace architecture_test

using namespace architecture_test;

// ---------------------------------------------------------------------------------------------------------------
// BlurPool

TEST_CASE("apply_blurpool replaces exactly the strided convolutions with enough input channels, and max pools") {
  // ResNet-20 (width 16, stem pooling on): the strided convolutions are layer2.0.conv1 and
  // layer2.0.shortcut.conv (16 input channels) and layer3.0.conv1 and layer3.0.shortcut.conv (32); the stem
  // (3 input channels) and every stride-1 convolution stay. So min_channels 16 → 4 BlurConv2d, 32 → 2, and the
  // one max pool becomes a BlurMaxPool2d.
  auto net = make_resnet(20, 0, {.stem_max_pool = true});
  auto report = cf::apply_blurpool(*net);
  REQUIRE(report.count() == 5);
  CHECK(report.replaced[0].path == "maxpool");
  CHECK(report.replaced[1].path == "layer2.0.conv1");
  CHECK(report.replaced[2].path == "layer2.0.shortcut.conv");
  CHECK(report.replaced[3].path == "layer3.0.conv1");
  CHECK(report.replaced[4].path == "layer3.0.shortcut.conv");
  CHECK(count_module_instances<cm::BlurConv2dImpl>(*net) == 4);
  CHECK(count_module_instances<cm::BlurMaxPool2dImpl>(*net) == 1);
  CHECK(count_module_instances<torch::nn::MaxPool2dImpl>(*net) == 0);
  CHECK(count_module_instances<torch::nn::Conv2dImpl>(*net) == 21);  // the 4 now inside the BlurConv2d modules
  // a second application finds nothing left to do
  CHECK(cf::apply_blurpool(*net).count() == 0);
  CHECK(count_module_instances<cm::BlurConv2dImpl>(*net) == 4);

  auto higher = make_resnet(20);
  CHECK(cf::apply_blurpool(*higher, true, true, true, /*min_channels=*/32).count() == 2);
  CHECK(find_modules<cm::BlurConv2dImpl>(*higher)[0].path == "layer3.0.conv1");
  auto pools_only = make_resnet(20, 0, {.stem_max_pool = true});
  CHECK(cf::apply_blurpool(*pools_only, /*replace_convs=*/false).count() == 1);
  auto convs_only = make_resnet(20, 0, {.stem_max_pool = true});
  CHECK(cf::apply_blurpool(*convs_only, true, /*replace_maxpools=*/false).count() == 4);
  CHECK(count_module_instances<torch::nn::MaxPool2dImpl>(*convs_only) == 1);

  // parameters are registered under the new paths, with the copied values, and the filter is a buffer
  const auto names = parameter_names(*net);
  CHECK(names.count("layer2.0.conv1.conv.weight") == 1);
  CHECK(names.count("layer2.0.conv1.weight") == 0);
  CHECK(names.count("layer3.0.shortcut.conv.conv.weight") == 1);
  bool has_filter = false;
  for (const auto& b : net->named_buffers()) has_filter = has_filter || b.key() == "layer2.0.conv1.blur_filter";
  CHECK(has_filter);
  auto original = make_resnet(20, 0, {.stem_max_pool = true});
  CHECK(torch::equal(module_at<cm::BlurConv2dImpl>(*net, "layer2.0.conv1")->conv()->weight,
                     module_at<torch::nn::Conv2dImpl>(*original, "layer2.0.conv1")->weight));
  CHECK(parameter_count(*net) == parameter_count(*original));
}

TEST_CASE("BlurPool: untouched parts compute exactly as before") {
  const auto x = torch::randn({2, 3, 16, 16});
  // nothing qualifies (no max pool, every convolution below min_channels): identical outputs
  auto net = make_resnet(8, 4);
  auto copy = make_resnet(8, 4);
  net->eval();
  copy->eval();
  CHECK(cf::apply_blurpool(*net, true, true, true, /*min_channels=*/1000).count() == 0);
  CHECK(torch::equal(net->forward(x), copy->forward(x)));
  // with the default, the stem and layer1 (before the first strided convolution) give identical activations,
  // and the output changes
  CHECK(cf::apply_blurpool(*net).count() == 4);
  CHECK(torch::equal(stem_and_layer1(*net, x), stem_and_layer1(*copy, x)));
  CHECK_FALSE(torch::allclose(net->forward(x), copy->forward(x)));
}

TEST_CASE("BlurPool's surgery trades the optimizer's parameters for the new ones; a step trains them") {
  auto net = make_resnet(20, 2);
  auto sgd = make_sgd(*net);
  train_step(net, *sgd);  // momentum buffers exist for every parameter
  const auto before_params = impls(net->parameters());
  CHECK(sgd->state().size() == before_params.size());
  const auto report = cf::apply_blurpool(*net, OptimizerList{sgd});
  REQUIRE(report.count() == 4);
  CHECK(optimizer_params(*sgd) == impls(net->parameters()));
  // the 4 old convolution weights are gone (with their momentum), 4 new ones are in
  for (const auto& r : report.replaced) {
    for (const auto& p : r.original->parameters()) CHECK(optimizer_params(*sgd).count(p.unsafeGetTensorImpl()) == 0);
    for (const auto& p : r.replacement->parameters()) CHECK(optimizer_params(*sgd).count(p.unsafeGetTensorImpl()) == 1);
  }
  CHECK(sgd->state().size() == before_params.size() - 4);
  auto blurred = module_at<cm::BlurConv2dImpl>(*net, "layer2.0.conv1");
  const auto weight = blurred->conv()->weight.detach().clone();
  train_step(net, *sgd);
  CHECK_FALSE(torch::equal(weight, blurred->conv()->weight));
}

TEST_CASE("the BlurPool policy operates at INIT, logs the layer counts and checks its arguments") {
  auto net = make_resnet(8, 1, {.stem_max_pool = true});
  auto sgd = make_sgd(*net);
  composer::Trainer<alg::BlurPool, Sink> trainer(net, {.train_dataloader = image_loader(8, 4),
                                                       .max_duration = Time("1ba"),
                                                       .optimizers = {sgd},
                                                       .seed = 1,
                                                       .progress_bar = false});
  // ResNet-8: one strided block per later stage → 4 strided convolutions (all with ≥ 16 inputs), one pool
  CHECK(trainer.get<alg::BlurPool>().last_report().count() == 5);
  CHECK(count_module_instances<cm::BlurConv2dImpl>(*net) == 4);
  CHECK(optimizer_params(*sgd) == impls(net->parameters()));
  const auto& logged = trainer.get<Sink>().hyperparameters;
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].at("blurpool/num_blurpool_layers") == "1");
  CHECK(logged[0].at("blurpool/num_blurconv_layers") == "4");
  trainer.fit();

  const alg::BlurPool defaults;
  CHECK(defaults.options().replace_convs);
  CHECK(defaults.options().replace_maxpools);
  CHECK(defaults.options().blur_first);
  CHECK(defaults.options().min_channels == 16);
  composer_test::check_bad_argument([] { alg::BlurPool bad(false, false); }, {"replace_convs", "replace_maxpools"});
  CHECK(alg::BlurPool({.min_channels = 4}).options().min_channels == 4);
}

// ---------------------------------------------------------------------------------------------------------------
// ChannelsLast

TEST_CASE("apply_channels_last stores every 4-D parameter channels-last, same objects, same outputs") {
  auto net = make_resnet(20, 6);
  auto reference = make_resnet(20, 6);
  cf::apply_blurpool(*net);  // adds 4-D buffers (the filters) too
  cf::apply_blurpool(*reference);
  auto sgd = make_sgd(*net);
  const auto before = impls(net->parameters());
  std::size_t four_d = 0;
  for (const auto& p : net->parameters()) four_d += p.dim() == 4;
  for (const auto& b : net->buffers()) four_d += b.dim() == 4;
  CHECK(four_d == 21 + 4);  // ResNet-20's 21 convolution weights and the 4 blur filters

  CHECK(cf::apply_channels_last(*net) == four_d);
  for (const auto& item : net->named_parameters()) {
    CAPTURE(item.key());
    if (item.value().dim() == 4) {
      CHECK(item.value().is_contiguous(at::MemoryFormat::ChannelsLast));
      // really moved: a 3x3 weight cannot be contiguous both ways (a 1x1 one is, trivially)
      if (item.value().size(2) > 1) CHECK_FALSE(item.value().is_contiguous());
    }
  }
  for (const auto& item : net->named_buffers())
    if (item.value().dim() == 4) CHECK(item.value().is_contiguous(at::MemoryFormat::ChannelsLast));
  CHECK(impls(net->parameters()) == before);
  CHECK(optimizer_params(*sgd) == before);
  const auto a = net->parameters();
  const auto b = reference->parameters();
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i], b[i]));

  const auto x = torch::randn({3, 3, 16, 16});
  net->eval();
  reference->eval();
  CHECK(torch::allclose(net->forward(x), reference->forward(x), 1e-4, 1e-5));
  net->train();
  reference->train();
  CHECK(torch::allclose(net->forward(x), reference->forward(x), 1e-4, 1e-5));
  // the optimizer still trains the same (channels-last) tensors
  auto conv = module_at<torch::nn::Conv2dImpl>(*net, "layer1.0.conv1");
  const auto weight = conv->weight.detach().clone();
  train_step(net, *sgd);
  CHECK_FALSE(torch::equal(weight, conv->weight));
  CHECK(conv->weight.is_contiguous(at::MemoryFormat::ChannelsLast));
}

TEST_CASE("the ChannelsLast policy converts the model at INIT") {
  auto net = make_resnet(8, 2);
  composer::Trainer<alg::ChannelsLast> trainer(net, {.train_dataloader = image_loader(8, 4),
                                                     .max_duration = Time("2ba"),
                                                     .optimizers = {make_sgd(*net)},
                                                     .seed = 1,
                                                     .progress_bar = false});
  CHECK(trainer.get<alg::ChannelsLast>().converted() == 9);  // ResNet-8's 9 convolution weights
  for (const auto& p : net->parameters())
    if (p.dim() == 4) CHECK(p.is_contiguous(at::MemoryFormat::ChannelsLast));
  trainer.fit();
  for (const auto& p : net->parameters())
    if (p.dim() == 4) CHECK(p.is_contiguous(at::MemoryFormat::ChannelsLast));
}

// ---------------------------------------------------------------------------------------------------------------
// SqueezeExcite

TEST_CASE("apply_squeeze_excite wraps the convolutions with enough channels, keeping them and training the gates") {
  // ResNet-20, min_channels 32: every convolution with min(in, out) ≥ 32 — layer2: conv2 of block 0 and both
  // convolutions of blocks 1 and 2 (5; block 0's conv1 and projection read 16 channels); layer3: all seven
  // (conv1 and projection of block 0 read 32) — 12 in all. latent 0.25: layer2 gates 32 → 8 → 32 (512 weights),
  // layer3 gates 64 → 16 → 64 (2,048): 5·512 + 7·2,048 = 16,896 new parameters.
  auto net = make_resnet(20, 7);
  auto reference = make_resnet(20, 7);
  auto sgd = make_sgd(*net);
  const auto original_conv = module_at<torch::nn::Conv2dImpl>(*net, "layer3.0.conv2");
  const auto report = cf::apply_squeeze_excite(*net, /*latent_channels=*/0.25, /*min_channels=*/32, OptimizerList{sgd});
  CHECK(report.count() == 12);
  CHECK(count_module_instances<cm::SqueezeExciteConv2dImpl>(*net) == 12);
  CHECK(count_module_instances<torch::nn::Conv2dImpl>(*net) == 21);
  CHECK(report.replaced.front().path == "layer2.0.conv2");
  CHECK(report.replaced.back().path == "layer3.2.conv2");
  CHECK(parameter_count(*net) == 272474 + 16896);
  // the convolution is the same module, with the same parameters, now under `.conv`
  auto wrapped = module_at<cm::SqueezeExciteConv2dImpl>(*net, "layer3.0.conv2");
  REQUIRE(wrapped);
  CHECK(wrapped->conv() == original_conv);
  CHECK(wrapped->se()->latent_channels() == 16);
  const auto names = parameter_names(*net);
  CHECK(names.count("layer3.0.conv2.conv.weight") == 1);
  CHECK(names.count("layer3.0.conv2.se.pool_and_mlp.2.weight") == 1);
  CHECK(names.count("layer3.0.conv2.se.pool_and_mlp.4.weight") == 1);
  CHECK(names.count("layer2.0.conv1.weight") == 1);  // untouched
  // the optimizer holds exactly the model's parameters, and a step changes the gates
  CHECK(optimizer_params(*sgd) == impls(net->parameters()));
  const auto gate = wrapped->se()->parameters()[0].detach().clone();
  train_step(net, *sgd);
  CHECK_FALSE(torch::equal(gate, wrapped->se()->parameters()[0]));
  // applying again adds nothing; the default min_channels (128) finds nothing in this model
  CHECK(cf::apply_squeeze_excite(*net, 0.25, 32).count() == 0);
  CHECK(cf::apply_squeeze_excite(*reference).count() == 0);
  auto only_wide = make_resnet(20, 7);
  CHECK(cf::apply_squeeze_excite(*only_wide, 4, 64).count() == 5);  // layer3 minus conv1/projection of block 0
}

TEST_CASE("SqueezeExcite: the layers before the first gate are unchanged; errors leave the model as it was") {
  auto net = make_resnet(20, 8);
  auto reference = make_resnet(20, 8);
  const auto x = torch::randn({2, 3, 16, 16});
  net->eval();
  reference->eval();
  CHECK(cf::apply_squeeze_excite(*net, 0.5, 32).count() == 12);
  CHECK(torch::equal(stem_and_layer1(*net, x), stem_and_layer1(*reference, x)));
  CHECK_FALSE(torch::allclose(net->forward(x), reference->forward(x)));

  // a width that leaves a gate with no hidden unit is refused before anything changes
  auto small = make_resnet(8, 1);
  composer_test::check_bad_argument([&] { (void)cf::apply_squeeze_excite(*small, 0.01, 16); },
                                    {"latent_channels", "no hidden unit"});
  CHECK(count_module_instances<cm::SqueezeExciteConv2dImpl>(*small) == 0);
  composer_test::check_bad_argument([&] { (void)cf::apply_squeeze_excite(*small, 0.0); }, {"latent_channels"});
  // two parameter groups: nothing tells which group should train the gates
  auto grouped = make_resnet(8, 1);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  const auto params = grouped->parameters();
  groups.emplace_back(std::vector<at::Tensor>(params.begin(), params.begin() + 3));
  groups.emplace_back(std::vector<at::Tensor>(params.begin() + 3, params.end()));
  auto two_groups = std::make_shared<torch::optim::SGD>(groups, torch::optim::SGDOptions(0.1));
  composer_test::check_bad_argument([&] { (void)cf::apply_squeeze_excite(*grouped, 4, 32, OptimizerList{two_groups}); },
                                    {"parameter group"});
}

TEST_CASE("the SqueezeExcite policy operates at INIT with the optimizers and logs the layer count") {
  auto net = make_resnet(8, 3);
  auto sgd = make_sgd(*net);
  // ResNet-8 with min_channels 32: layer2.0.conv2 (32→32), layer3.0 conv1 (32→64), conv2 and projection (32→64)
  composer::Trainer<alg::SqueezeExcite, Sink> trainer(net, {.train_dataloader = image_loader(8, 4),
                                                            .max_duration = Time("2ba"),
                                                            .optimizers = {sgd},
                                                            .seed = 2,
                                                            .progress_bar = false},
                                                      alg::SqueezeExcite(0.5, 32), Sink{});
  CHECK(trainer.get<alg::SqueezeExcite>().last_report().count() == 4);
  CHECK(optimizer_params(*sgd) == impls(net->parameters()));
  REQUIRE(trainer.get<Sink>().hyperparameters.size() == 1);
  CHECK(trainer.get<Sink>().hyperparameters[0].at("squeeze_excite/num_squeeze_excite_layers") == "4");
  trainer.fit();

  const alg::SqueezeExcite defaults;
  CHECK(defaults.options().latent_channels == 64);
  CHECK(defaults.options().min_channels == 128);
  composer_test::check_bad_argument([] { alg::SqueezeExcite bad(0.0); }, {"latent_channels"});
  composer_test::check_bad_argument([] { alg::SqueezeExcite bad(-3.0, 16); }, {"latent_channels"});
}

// ---------------------------------------------------------------------------------------------------------------
// StochasticDepth

TEST_CASE("apply_stochastic_depth wraps every basic block with its depth's drop rate") {
  // ResNet-20 has 9 blocks; linear: block i (from 0) gets (i + 1)/9 · 0.2, uniform: 0.2 each.
  auto net = make_resnet(20, 4);
  auto sgd = make_sgd(*net);
  const auto before = impls(net->parameters());
  const auto report = cf::apply_stochastic_depth(*net, "ResNetBasicBlock", "block", 0.2, "linear", OptimizerList{sgd});
  REQUIRE(report.count() == 9);
  CHECK(report.replaced[0].path == "layer1.0");
  CHECK(report.replaced[8].path == "layer3.2");
  CHECK(count_module_instances<cm::StochasticBasicBlockImpl>(*net) == 9);
  CHECK(count_module_instances<BasicBlockImpl>(*net) == 9);  // wrapped, not copied
  const auto rates = drop_rates(*net);
  REQUIRE(rates.size() == 9);
  for (std::size_t i = 0; i < 9; ++i) CHECK(rates[i] == doctest::Approx(0.2 * static_cast<double>(i + 1) / 9));
  CHECK(rates.back() == doctest::Approx(0.2));
  // the same parameter tensors, under `.block.`, and the optimizer unchanged
  CHECK(impls(net->parameters()) == before);
  CHECK(optimizer_params(*sgd) == before);
  const auto names = parameter_names(*net);
  CHECK(names.count("layer1.0.block.conv1.weight") == 1);
  CHECK(names.count("layer2.0.block.shortcut.conv.weight") == 1);
  CHECK(names.count("layer1.0.conv1.weight") == 0);
  auto conv = module_at<torch::nn::Conv2dImpl>(*net, "layer3.2.block.conv2");
  REQUIRE(conv);
  const auto weight = conv->weight.detach().clone();
  net->eval();  // no dropping, so every block is in the graph
  train_step(net, *sgd);
  CHECK_FALSE(torch::equal(weight, conv->weight));
  // wrapping again does nothing; the blocks' own slots are still reachable by other surgery
  CHECK(cf::apply_stochastic_depth(*net, "ResNetBasicBlock").count() == 0);
  CHECK(cf::apply_blurpool(*net).count() == 4);

  auto uniform = make_resnet(8, 4);
  CHECK(cf::apply_stochastic_depth(*uniform, "ResNetBasicBlock", "sample", 0.3, "uniform").count() == 3);
  for (double r : drop_rates(*uniform)) CHECK(r == doctest::Approx(0.3));
  for (const auto& found : find_modules<cm::StochasticBasicBlockImpl>(*uniform))
    CHECK(found.module->method() == cm::StochasticMethod::sample);
  CHECK(cf::stochastic_layer_drop_rate(0, 4, 0.2, "linear") == doctest::Approx(0.05));
  CHECK(cf::stochastic_layer_drop_rate(3, 4, 0.2, "linear") == doctest::Approx(0.2));
  CHECK(cf::stochastic_layer_drop_rate(1, 4, 0.2, "uniform") == doctest::Approx(0.2));
  CHECK(cf::set_stochastic_drop_rates(*uniform, 0.6, "linear") == 3);
  const auto updated = drop_rates(*uniform);
  REQUIRE(updated.size() == 3);
  CHECK(updated[0] == doctest::Approx(0.2));
  CHECK(updated[1] == doctest::Approx(0.4));
  CHECK(updated[2] == doctest::Approx(0.6));
}

TEST_CASE("a stochastic model in eval mode computes the expected scaled output; untouched stem") {
  auto net = make_resnet(8, 5);
  auto reference = make_resnet(8, 5);
  cf::apply_stochastic_depth(*net, "ResNetBasicBlock", "block", 0.0, "linear");
  const auto x = torch::randn({2, 3, 12, 12});
  net->eval();
  reference->eval();
  CHECK(torch::allclose(net->forward(x), reference->forward(x), 1e-6, 1e-6));  // p = 0: no scaling at all
  cf::set_stochastic_drop_rates(*net, 0.5, "uniform");
  CHECK_FALSE(torch::allclose(net->forward(x), reference->forward(x)));
}

TEST_CASE("StochasticDepth's arguments are checked as Composer checks them") {
  using composer_test::check_bad_argument;
  auto net = make_resnet(8);
  check_bad_argument([&] { (void)cf::apply_stochastic_depth(*net, "ResNetBottleneck"); },
                     {"target_layer_name", "ResNetBottleneck", "ResNetBasicBlock"});
  check_bad_argument([&] { (void)cf::apply_stochastic_depth(*net, "ResNetBasicBlock", "layer"); },
                     {"stochastic_method", "layer"});
  check_bad_argument([&] { (void)cf::apply_stochastic_depth(*net, "ResNetBasicBlock", "block", 1.5); },
                     {"drop_rate", "1.5"});
  check_bad_argument([&] { (void)cf::apply_stochastic_depth(*net, "ResNetBasicBlock", "block", 0.2, "cubic"); },
                     {"drop_distribution", "cubic"});
  CHECK(count_module_instances<cm::StochasticBasicBlockImpl>(*net) == 0);
  check_bad_argument([] { alg::StochasticDepth bad("ResNetBasicBlock", "sample", 0.2, "linear", 0.1); },
                     {"drop_warmup", "sample"});
  check_bad_argument([] { alg::StochasticDepth bad({.drop_warmup = -0.5}); }, {"drop_warmup"});
  check_bad_argument([] { alg::StochasticDepth bad({.drop_rate = -0.1}); }, {"drop_rate"});
  const alg::StochasticDepth defaults;
  CHECK(defaults.options().target_layer_name == "ResNetBasicBlock");
  CHECK(defaults.options().stochastic_method == "block");
  CHECK(defaults.options().drop_rate == 0.2);
  CHECK(defaults.options().drop_distribution == "linear");
  CHECK(defaults.options().drop_warmup == 0.0);
}

namespace architecture_test {
// Reads the last stochastic block's drop rate (the base rate, with the linear distribution) at every batch start,
// after the algorithms.
struct RateProbe {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BATCH_START};
  std::vector<double> seen;
  void apply(Event, composer::State& state) { seen.push_back(drop_rates(state.model.module()).back()); }
};

composer::TrainerOptions sd_options(ResNet& net, const char* duration, const std::string& load_path = "",
                                    const std::string& save_folder = {}) {
  return {.train_dataloader = image_loader(16, 4),
          .max_duration = Time(duration),
          .optimizers = {make_sgd(*net)},
          .save_folder = save_folder,
          .save_interval = Time("3ba"),
          .load_path = load_path,
          .seed = 3,
          .progress_bar = false};
}
}  // namespace architecture_test

TEST_CASE("StochasticDepth's warm-up raises the rate linearly each batch, then holds drop_rate") {
  // 8 batches, warm-up over half of them, drop_rate 0.4: at batch b the elapsed fraction is b/8, so the base rate
  // is (b/8)/0.5 · 0.4 = 0.1·b for b < 4, then 0.4.
  auto net = make_resnet(8, 6);
  composer::Trainer<alg::StochasticDepth, RateProbe, Sink> trainer(
      net, sd_options(net, "8ba"), alg::StochasticDepth({.drop_rate = 0.4, .drop_warmup = 0.5}), RateProbe{}, Sink{});
  CHECK(trainer.get<alg::StochasticDepth>().num_stochastic_layers() == 3);
  CHECK(drop_rates(*net).back() == doctest::Approx(0.4));  // INIT sets the full rates
  trainer.fit();
  const std::vector<double> expected{0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4};
  const auto& seen = trainer.get<RateProbe>().seen;
  REQUIRE(seen.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(seen[i] == doctest::Approx(expected[i]));
  // what was logged: the layer count at INIT, then the rate at every batch start
  std::vector<double> logged_rates;
  double layers = -1;
  for (const auto& m : trainer.get<Sink>().metrics) {
    if (m.count("stochastic_depth/drop_rate")) logged_rates.push_back(m.at("stochastic_depth/drop_rate"));
    if (m.count("stochastic_depth/num_stochastic_layers")) layers = m.at("stochastic_depth/num_stochastic_layers");
  }
  CHECK(layers == 3);
  REQUIRE(logged_rates.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(logged_rates[i] == doctest::Approx(expected[i]));
  // the linear distribution over the 3 blocks at the end
  const auto rates = drop_rates(*net);
  CHECK(rates[0] == doctest::Approx(0.4 / 3));
  CHECK(rates[1] == doctest::Approx(0.8 / 3));

  // without a warm-up, BATCH_START does nothing and nothing is logged there
  auto plain = make_resnet(8, 6);
  composer::Trainer<alg::StochasticDepth, RateProbe, Sink> no_warmup(plain, sd_options(plain, "3ba"));
  no_warmup.fit();
  CHECK(no_warmup.get<RateProbe>().seen == std::vector<double>{0.2, 0.2, 0.2});
  for (const auto& m : no_warmup.get<Sink>().metrics) CHECK(m.count("stochastic_depth/drop_rate") == 0);
}

namespace architecture_test {
// From batch 1 on, drops every stochastic block; keeps the parameters as they were at that point (after the
// first step, which trained every block).
struct DropAllAfterFirst {
  static constexpr composer::Role role = composer::Role::callback;
  static constexpr composer::EventSet events{Event::BATCH_START};
  std::map<std::string, at::Tensor> at_batch1;
  void apply(Event, composer::State& state) {
    if (state.timestamp.batch().count() == 0) return;
    cf::set_stochastic_drop_rates(state.model.module(), 1.0, "uniform");
    if (state.timestamp.batch().count() == 1)
      for (const auto& item : state.model->named_parameters()) at_batch1[item.key()] = item.value().detach().clone();
  }
};
}  // namespace architecture_test

TEST_CASE("in the Trainer, a dropped block's parameters are left alone by the optimizer") {
  // Batch 0 trains every block (rate 0), so every parameter has had a gradient and momentum; from batch 1 on
  // every block returns its shortcut. Gradients are dropped, not zeroed, before each batch (as in Composer), so
  // the residual branches, which get no gradient, get no momentum or weight-decay step either; the stem, the
  // projections and the classifier keep training.
  auto net = make_resnet(8, 10);
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(),
                                                 torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-2));
  composer::Trainer<alg::StochasticDepth, DropAllAfterFirst> trainer(
      net, {.train_dataloader = image_loader(16, 4), .max_duration = Time("4ba"), .optimizers = {sgd}, .seed = 3,
            .progress_bar = false},
      alg::StochasticDepth({.drop_rate = 0.0}), DropAllAfterFirst{});
  trainer.fit();
  const auto& before = trainer.get<DropAllAfterFirst>().at_batch1;
  int residual = 0, trained = 0;
  for (const auto& item : net->named_parameters()) {
    CAPTURE(item.key());
    REQUIRE(before.count(item.key()) == 1);
    const bool in_residual = item.key().find(".block.") != std::string::npos &&
                             item.key().find(".shortcut.") == std::string::npos;
    if (in_residual) {
      ++residual;
      CHECK(torch::equal(item.value(), before.at(item.key())));
    } else {
      ++trained;
      CHECK_FALSE(torch::equal(item.value(), before.at(item.key())));
    }
  }
  CHECK(residual == 3 * 6);         // conv1, bn1 (2), conv2, bn2 (2) in each of the 3 blocks
  CHECK(trained == 3 + 2 * 3 + 2);  // stem conv and bn, 2 projections (conv, bn), classifier
}

TEST_CASE("StochasticDepth's rate survives a checkpoint; the resumed run is bit-identical") {
  // The reference run saves a checkpoint after batch 3 and trains on to batch 8; a second trainer resumes from
  // that checkpoint and must end with the same weights.
  const std::string dir = fresh_dir("stochastic_depth");
  const alg::StochasticDepth policy({.drop_rate = 0.5, .drop_warmup = 0.75});
  auto reference_net = make_resnet(8, 9);
  composer::Trainer<alg::StochasticDepth> reference(reference_net, sd_options(reference_net, "8ba", "", dir), policy);
  reference.fit();
  REQUIRE(reference.saved_checkpoints().size() >= 2);
  const std::string mid = reference.saved_checkpoints().front();
  CHECK(io::file_name(mid) == "ep0-ba3-rank0.pt");

  auto resumed_net = make_resnet(8, 99);
  composer::Trainer<alg::StochasticDepth> resumed(resumed_net, sd_options(resumed_net, "8ba", mid), policy);
  // restored before any batch: the last rate set before the save (batch 2, elapsed 2/8: (0.25/0.75)·0.5 = 1/6)
  // rather than INIT's full rate, spread linearly over the 3 blocks
  CHECK(resumed.get<alg::StochasticDepth>().current_drop_rate() == doctest::Approx(0.5 / 3));
  const auto restored = drop_rates(*resumed_net);
  REQUIRE(restored.size() == 3);
  CHECK(restored[0] == doctest::Approx(1.0 / 18));
  CHECK(restored[2] == doctest::Approx(1.0 / 6));
  resumed.fit();
  const auto a = reference_net->parameters();
  const auto b = resumed_net->parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i], b[i]));
  CHECK(drop_rates(*resumed_net) == drop_rates(*reference_net));
  CHECK(reference.get<alg::StochasticDepth>().current_drop_rate() == 0.5);
  // and the training moved the weights, so the comparison can fail
  auto fresh = make_resnet(8, 9);
  CHECK_FALSE(torch::equal(fresh->parameters()[0], a[0]));
}

TEST_CASE("all four methods together train and resume bit-identically through a checkpoint") {
  // ResNet-8 of width 8 on 1-channel 12x12 images. BlurPool (min_channels 8): the two strided convolutions of
  // layer2.0 (8 inputs) and of layer3.0 (16): 4. SqueezeExcite (min_channels 16, latent 0.5): convolutions with
  // min(in, out) ≥ 16 — layer2.0.conv2 (16→16) and, in layer3.0, conv1 (16→32; inside its BlurConv2d), conv2
  // (32→32) and the projection (16→32; inside its BlurConv2d): 4. StochasticDepth: the 3 blocks.
  using Methods = composer::Trainer<alg::BlurPool, alg::ChannelsLast, alg::SqueezeExcite, alg::StochasticDepth>;
  const std::string dir = fresh_dir("all_four");
  const ResNetOptions small{.width = 8, .in_channels = 1};
  auto options = [&](ResNet& net, const std::string& load_path = "") {
    return composer::TrainerOptions{.train_dataloader = image_loader(24, 8, 1),
                                    .max_duration = Time("6ba"),
                                    .optimizers = {make_sgd(*net)},
                                    .save_folder = load_path.empty() ? dir : std::string(),
                                    .save_interval = Time("4ba"),
                                    .load_path = load_path,
                                    .seed = 4,
                                    .progress_bar = false};
  };
  auto policies = [] {
    return std::tuple{alg::BlurPool({.min_channels = 8}), alg::ChannelsLast{},
                      alg::SqueezeExcite({.latent_channels = 0.5, .min_channels = 16}),
                      alg::StochasticDepth({.drop_rate = 0.3, .drop_warmup = 0.5})};
  };
  auto build = [&](ResNet& net, const std::string& load_path = "") {
    auto [b, c, s, d] = policies();
    return std::make_unique<Methods>(net, options(net, load_path), b, c, s, d);
  };

  auto reference_net = make_resnet(8, 21, small);
  auto reference = build(reference_net);
  CHECK(reference->get<alg::BlurPool>().last_report().count() == 4);
  CHECK(reference->get<alg::SqueezeExcite>().last_report().count() == 4);
  CHECK(reference->get<alg::StochasticDepth>().num_stochastic_layers() == 3);
  CHECK(optimizer_params(*reference->state().optimizers[0]) == impls(reference_net->parameters()));
  for (const auto& p : reference_net->parameters())
    if (p.dim() == 4) CHECK(p.is_contiguous(at::MemoryFormat::ChannelsLast));
  reference->fit();  // saves after batch 4 (in epoch 1) and at the end
  REQUIRE(reference->saved_checkpoints().size() == 2);
  const std::string mid = reference->saved_checkpoints().front();
  CHECK(io::file_name(mid) == "ep1-ba4-rank0.pt");

  auto resumed_net = make_resnet(8, 77, small);
  auto resumed = build(resumed_net, mid);
  CHECK(resumed->state().timestamp.batch().count() == 4);
  resumed->fit();
  const auto a = reference_net->named_parameters();
  const auto b = resumed_net->named_parameters();
  REQUIRE(a.size() == b.size());
  for (const auto& item : a) {
    CAPTURE(item.key());
    CHECK(torch::equal(item.value(), b[item.key()]));
  }
  // training moved the weights (the comparison above can fail)
  auto untrained = make_resnet(8, 21, small);
  CHECK_FALSE(torch::equal(untrained->parameters()[0], reference_net->parameters()[0]));
}

TEST_CASE("check_stochastic_depth_arguments: Composer's checks, shared by apply_stochastic_depth and the policy") {
  using composer_test::check_bad_argument;
  CHECK_NOTHROW(cf::check_stochastic_depth_arguments("ResNetBasicBlock", "block", 0.0, "uniform"));
  CHECK_NOTHROW(cf::check_stochastic_depth_arguments("ResNetBasicBlock", "sample", 1.0, "linear", 0.0));
  CHECK_NOTHROW(cf::check_stochastic_depth_arguments("ResNetBasicBlock", "block", 0.2, "linear", 0.5));
  check_bad_argument([] { cf::check_stochastic_depth_arguments("Bottleneck", "block", 0.2, "linear"); },
                     {"target_layer_name 'Bottleneck' is not supported"});
  check_bad_argument([] { cf::check_stochastic_depth_arguments("ResNetBasicBlock", "row", 0.2, "linear"); },
                     {"row"});
  check_bad_argument([] { cf::check_stochastic_depth_arguments("ResNetBasicBlock", "block", 1.5, "linear"); },
                     {"drop_rate must be between 0 and 1, got 1.5"});
  check_bad_argument([] { cf::check_stochastic_depth_arguments("ResNetBasicBlock", "block", 0.2, "cubic"); },
                     {"drop_distribution", "'cubic'"});
  check_bad_argument([] { cf::check_stochastic_depth_arguments("ResNetBasicBlock", "sample", 0.2, "linear", 0.1); },
                     {"drop_warmup cannot be used with the 'sample' stochastic_method"});
  check_bad_argument([] { cf::check_stochastic_depth_arguments("ResNetBasicBlock", "block", 0.2, "linear", -1.0); },
                     {"drop_warmup must be a finite fraction of training >= 0, got -1"});
}
