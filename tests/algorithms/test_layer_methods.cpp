// Layer-replacing methods: ghost batch norm, factorization, weight standardization, gyro dropout and the
// low-precision norms (their modules, functional forms and policies), on ResNet-20 and small slot models.
#include <torch/torch.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <composer/algorithms/factorize.hpp>
#include <composer/algorithms/ghost_batchnorm.hpp>
#include <composer/algorithms/gyro_dropout.hpp>
#include <composer/algorithms/low_precision_groupnorm.hpp>
#include <composer/algorithms/low_precision_layernorm.hpp>
#include <composer/algorithms/weight_standardization.hpp>
#include <composer/data/tensor_loader.hpp>
#include <composer/functional/factorize.hpp>
#include <composer/functional/ghost_batchnorm.hpp>
#include <composer/functional/gyro_dropout.hpp>
#include <composer/functional/low_precision_groupnorm.hpp>
#include <composer/functional/low_precision_layernorm.hpp>
#include <composer/functional/weight_standardization.hpp>
#include <composer/models/resnet.hpp>
#include <composer/trainer/trainer.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace alg = composer::algorithms;
namespace fn = composer::functional;
namespace mod = composer::modules;
using composer::Time;
using composer::surgery::count_module_instances;
using composer::surgery::SurgicalModule;

// linear -> layer norm -> dropout -> linear, every layer in a slot.
struct MlpImpl : SurgicalModule {
  MlpImpl() {
    fc1_ = register_slot("fc1", torch::nn::Linear(6, 8));
    norm_ = register_slot("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({8})));
    drop_ = register_slot("drop", torch::nn::Dropout(0.5));
    fc2_ = register_slot("fc2", torch::nn::Linear(8, 3));
  }
  at::Tensor forward(const at::Tensor& x) { return call(fc2_, call(drop_, call(norm_, call(fc1_, x)))); }
  Slot fc1_, norm_, drop_, fc2_;
};
TORCH_MODULE(Mlp);

// conv -> group norm -> pool -> linear.
struct GroupNetImpl : SurgicalModule {
  GroupNetImpl() {
    conv_ = register_slot("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    norm_ = register_slot("norm", torch::nn::GroupNorm(2, 4));
    fc_ = register_slot("fc", torch::nn::Linear(4, 3));
  }
  at::Tensor forward(const at::Tensor& x) {
    return call(fc_, call(norm_, call(conv_, x)).mean({2, 3}));
  }
  Slot conv_, norm_, fc_;
};
TORCH_MODULE(GroupNet);

std::shared_ptr<torch::optim::SGD> make_sgd(torch::nn::Module& m) {
  return std::make_shared<torch::optim::SGD>(m.parameters(), torch::optim::SGDOptions(0.1));
}

bool holds(const std::vector<at::Tensor>& list, const at::Tensor& t) {
  for (const auto& x : list)
    if (x.unsafeGetTensorImpl() == t.unsafeGetTensorImpl()) return true;
  return false;
}

// The optimizer holds exactly the model's parameters, and one step on the model's loss changes them.
void check_optimizer_trains(torch::nn::Module& model, torch::optim::Optimizer& opt, const at::Tensor& x) {
  std::size_t held = 0;
  for (const auto& g : opt.param_groups()) held += g.params().size();
  const auto params = model.parameters();
  CHECK(held == params.size());
  for (const auto& g : opt.param_groups())
    for (const auto& p : g.params()) CHECK(holds(params, p));
  std::vector<at::Tensor> before;
  for (const auto& p : params) before.push_back(p.detach().clone());
  opt.zero_grad();
  auto* m = &model;
  at::Tensor out;
  if (auto* r = dynamic_cast<composer::models::ResNetImpl*>(m)) out = r->forward(x);
  else if (auto* p = dynamic_cast<MlpImpl*>(m)) out = p->forward(x);
  else if (auto* g = dynamic_cast<GroupNetImpl*>(m)) out = g->forward(x);
  out.pow(2).mean().backward();
  opt.step();
  bool changed = false;
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!torch::equal(before[i], params[i].detach())) changed = true;
  CHECK(changed);
}

composer::data::TensorLoader image_loader(std::int64_t samples, std::int64_t batch) {
  torch::manual_seed(7);
  auto x = torch::randn({samples, 1, 8, 8});
  auto y = torch::randint(0, 10, {samples});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, false, false, 0});
}

composer::data::TensorLoader vector_loader(std::int64_t samples, std::int64_t batch) {
  torch::manual_seed(8);
  auto x = torch::randn({samples, 6});
  auto y = torch::randint(0, 3, {samples});
  return composer::data::TensorLoader(x, y, composer::data::TensorLoaderOptions{batch, false, false, 0});
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Ghost batch norm

TEST_CASE("layer_methods: ghost batch norm wraps all 21 batch norms of ResNet-20 and keeps training them") {
  torch::manual_seed(0);
  auto net = composer::models::resnet20({.in_channels = 1});
  auto opt = make_sgd(*net);
  const auto report = fn::apply_ghost_batchnorm(*net, 4, {opt});
  CHECK(report.count() == 21);
  CHECK(count_module_instances<mod::GhostBatchNorm2dImpl>(*net) == 21);
  CHECK(fn::apply_ghost_batchnorm(*net, 4).count() == 0);  // already wrapped
  check_optimizer_trains(*net, *opt, torch::randn({8, 1, 8, 8}));
  CHECK_THROWS_AS(fn::apply_ghost_batchnorm(*net, 0), std::invalid_argument);
}

TEST_CASE("layer_methods: ghost batch norm normalises each chunk by itself and updates running stats per chunk") {
  torch::manual_seed(1);
  torch::nn::BatchNorm2d bn(torch::nn::BatchNormOptions(3).momentum(0.1));
  {
    torch::NoGradGuard g;
    bn->weight.uniform_(0.5, 1.5);
    bn->bias.uniform_(-0.5, 0.5);
  }
  mod::GhostBatchNorm2d ghost(bn.ptr(), 4);
  ghost->train();
  const auto x = torch::randn({8, 3, 5, 5});
  const auto y = ghost->forward(x);
  const auto w = bn->weight.detach().view({1, 3, 1, 1});
  const auto b = bn->bias.detach().view({1, 3, 1, 1});
  auto r_mean = torch::zeros({3});
  auto r_var = torch::ones({3});
  const double m = 0.1 / 2;  // momentum split over the two chunks
  for (int c = 0; c < 2; ++c) {
    const auto chunk = x.narrow(0, 4 * c, 4);
    const auto mean = chunk.mean({0, 2, 3}, true);
    const auto var = chunk.var({0, 2, 3}, /*unbiased=*/false, true);
    const auto expected = (chunk - mean) / torch::sqrt(var + 1e-5) * w + b;
    CHECK(torch::allclose(y.narrow(0, 4 * c, 4), expected, 1e-4, 1e-5));
    // running stats: (1 − m)·old + m·chunk statistic, the variance unbiased (n = 4·5·5)
    r_mean = (1 - m) * r_mean + m * mean.flatten();
    r_var = (1 - m) * r_var + m * chunk.var({0, 2, 3}, /*unbiased=*/true).flatten();
  }
  CHECK(torch::allclose(bn->running_mean, r_mean, 1e-5, 1e-6));
  CHECK(torch::allclose(bn->running_var, r_var, 1e-5, 1e-6));
  CHECK(bn->options.momentum().value() == doctest::Approx(0.1));  // restored after the pass
  ghost->eval();
  const auto e = ghost->forward(x);
  CHECK(torch::allclose(e, (x - r_mean.view({1, 3, 1, 1})) / torch::sqrt(r_var.view({1, 3, 1, 1}) + 1e-5) * w + b,
                        1e-4, 1e-5));
}

// ---------------------------------------------------------------------------------------------------------------
// Factorization

TEST_CASE("layer_methods: factorization picks the wide layers of ResNet-20 that save compute") {
  torch::manual_seed(2);
  auto net = composer::models::resnet20({.in_channels = 1});
  auto opt = make_sgd(*net);
  // min_channels = 32, latent 0.25: convolutions with min(in, out) >= 32 are those of stage 2 after its first
  // block's first conv (16 -> 32): 5 of 32 -> 32; stage 3: its first conv 32 -> 64, its 1x1 shortcut 32 -> 64 and
  // 5 of 64 -> 64 — 12 in all; each latent size (8 or 16) is far below the break-even (e.g. 32·9·32/(288+32) = 28.8
  // → 27). The classifier 64 -> 10 with min_features = 8: latent int(0.25·10) = 2 ≤ ceil(640/74 − 1) = 8, so it
  // is factorized too: 13.
  const auto report = fn::apply_factorization(*net, true, true, 32, 0.25, 8, 0.25, {opt});
  CHECK(report.count() == 13);
  CHECK(count_module_instances<mod::FactorizedConv2dImpl>(*net) == 12);
  CHECK(count_module_instances<mod::FactorizedLinearImpl>(*net) == 1);
  check_optimizer_trains(*net, *opt, torch::randn({4, 1, 8, 8}));
  // Applying again changes nothing: the inner layers are too narrow or already inside factorized modules.
  CHECK(fn::apply_factorization(*net, true, true, 32, 0.25, 8, 0.25).count() == 0);
  CHECK_THROWS_AS(fn::apply_factorization(*net, true, true, 32, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(fn::apply_factorization(*net, true, true, 32, -0.5), std::invalid_argument);
}

TEST_CASE("layer_methods: factorization follows Composer's size rules") {
  CHECK(mod::clean_latent_size(0.25, 64, 10) == 2);
  CHECK(mod::clean_latent_size(0.01, 64, 10) == 1);  // at least one
  CHECK(mod::clean_latent_size(5, 64, 10) == 5);
  CHECK(mod::max_rank_with_possible_speedup(12, 10) == 5);      // 120/22 = 5.45 → 5
  CHECK(mod::max_rank_with_possible_speedup(10, 10) == 4);      // 100/20 = 5 exactly → 4
  CHECK(mod::max_rank_with_possible_speedup(4, 6, 9) == 5);     // 216/42 = 5.14 → 5
}

TEST_CASE("layer_methods: a factorized layer is the truncated SVD of the original") {
  torch::manual_seed(3);
  torch::nn::Linear linear(12, 10);
  mod::FactorizedLinear f(mod::FactorizedLinearImpl::from_linear(*linear, 3));
  CHECK(f->latent_features() == 3);
  const auto w = linear->weight.detach().to(torch::kDouble);
  const auto product = torch::matmul(f->module1()->weight, f->module0()->weight).detach().to(torch::kDouble);
  const auto s = torch::linalg_svdvals(w);
  const double dropped = s.narrow(0, 3, s.size(0) - 3).pow(2).sum().sqrt().item<double>();
  CHECK((w - product).norm().item<double>() == doctest::Approx(dropped).epsilon(1e-4));
  CHECK(torch::allclose(f->module1()->bias, linear->bias));
  CHECK(mod::factorizing_could_speedup(*linear, 5));
  CHECK_FALSE(mod::factorizing_could_speedup(*linear, 6));  // 6 > 5: no saving

  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(4, 6, 3).padding(1));
  mod::FactorizedConv2d fc(mod::FactorizedConv2dImpl::from_conv2d(*conv, 2));
  CHECK(fc->latent_channels() == 2);
  CHECK(fc->module0()->weight.sizes() == torch::IntArrayRef({2, 4, 3, 3}));
  CHECK(fc->module1()->weight.sizes() == torch::IntArrayRef({6, 2, 1, 1}));
  const auto cw = conv->weight.detach().reshape({6, -1}).to(torch::kDouble);
  const auto cp = torch::matmul(fc->module1()->weight.detach().reshape({6, 2}),
                                fc->module0()->weight.detach().reshape({2, -1})).to(torch::kDouble);
  const auto cs = torch::linalg_svdvals(cw);
  CHECK((cw - cp).norm().item<double>() ==
        doctest::Approx(cs.narrow(0, 2, cs.size(0) - 2).pow(2).sum().sqrt().item<double>()).epsilon(1e-4));
  // A kernel of rank 2 is reproduced exactly by a rank-2 factorization.
  torch::nn::Conv2d low(torch::nn::Conv2dOptions(4, 6, 3).padding(1));
  {
    torch::NoGradGuard g;
    low->weight.copy_(torch::matmul(torch::randn({6, 2}), torch::randn({2, 36})).reshape({6, 4, 3, 3}));
  }
  mod::FactorizedConv2d exact(mod::FactorizedConv2dImpl::from_conv2d(*low, 2));
  const auto x = torch::randn({2, 4, 5, 5});
  CHECK(torch::allclose(exact->forward(x), low->forward(x), 1e-4, 1e-4));
}

// ---------------------------------------------------------------------------------------------------------------
// Weight standardization

TEST_CASE("layer_methods: weight standardization wraps ResNet-20's convolutions, all but the last n") {
  torch::manual_seed(4);
  auto net = composer::models::resnet20({.in_channels = 1});
  auto params = net->parameters();
  CHECK(fn::apply_weight_standardization(*net).count() == 21);
  CHECK(net->parameters().size() == params.size());
  CHECK(count_module_instances<mod::WSConv2dImpl>(*net) == 21);
  auto opt = make_sgd(*net);  // built after the surgery: the standardised convolutions' parameters
  check_optimizer_trains(*net, *opt, torch::randn({4, 1, 8, 8}));

  auto other = composer::models::resnet20({.in_channels = 1});
  CHECK(fn::apply_weight_standardization(*other, 2).count() == 19);
  CHECK(fn::apply_weight_standardization(*other, 0).count() == 2);  // the rest, once
  CHECK(fn::apply_weight_standardization(*other, 0).count() == 0);
  CHECK_THROWS_AS(fn::apply_weight_standardization(*other, -1), std::invalid_argument);
}

TEST_CASE("layer_methods: a standardised kernel is (W - mean) / sqrt(var + 1e-10) per output channel") {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(1, 2, torch::ExpandingArray<2>({1, 2})).bias(true));
  {
    torch::NoGradGuard g;
    conv->weight.copy_(torch::tensor({1.0f, 3.0f, 2.0f, 2.0f}).reshape({2, 1, 1, 2}));
    conv->bias.copy_(torch::tensor({0.5f, -0.5f}));
  }
  // channel 0: mean 2, variance 1 → (−1, 1)/sqrt(1 + 1e-10); channel 1: variance 0 → (0, 0)
  const auto s = mod::standardize_weight(conv->weight.detach());
  CHECK(s[0][0][0][0].item<double>() == doctest::Approx(-1.0));
  CHECK(s[0][0][0][1].item<double>() == doctest::Approx(1.0));
  CHECK(s[1].abs().sum().item<double>() == 0.0);
  mod::WSConv2d ws(conv);
  const auto y = ws->forward(torch::tensor({1.0f, 0.0f}).reshape({1, 1, 1, 2}));
  CHECK(y[0][0][0][0].item<double>() == doctest::Approx(-0.5));
  CHECK(y[0][1][0][0].item<double>() == doctest::Approx(-0.5));
  CHECK(ws->weight[0][0][0][1].item<double>() == doctest::Approx(3.0));  // stored weight unchanged
}

// ---------------------------------------------------------------------------------------------------------------
// Gyro dropout

TEST_CASE("layer_methods: gyro dropout replaces Dropout layers and follows Composer's mask schedule") {
  torch::manual_seed(5);
  auto mlp = Mlp();
  CHECK(fn::apply_gyro_dropout(*mlp, 64, 1, 0.5, 8, 4).count() == 1);
  auto net = composer::models::resnet20({.in_channels = 1, .dropout = 0.2});
  CHECK(fn::apply_gyro_dropout(*mlp, 64, 1, 0.5, 8, 4).count() == 0);  // already replaced
  CHECK_THROWS_AS(fn::apply_gyro_dropout(*net, 64, 1, 1.0, 8, 4), std::invalid_argument);
  CHECK_THROWS_AS(fn::apply_gyro_dropout(*net, 64, 1, -0.1, 8, 4), std::invalid_argument);
  CHECK_THROWS_AS(fn::apply_gyro_dropout(*net, 64, 1, 0.5, 256, 16), std::invalid_argument);  // 64 < sigma
  CHECK(fn::apply_gyro_dropout(*net, 256, 1, 0.5, 256, 16).count() == 1);

  // iter_num = int(64 · 1 / 8) · 4 = 32: the same 4 masks for 32 training passes, then a new draw.
  mod::GyroDropout gyro(mod::GyroDropoutOptions{.iters_per_epoch = 64, .max_epoch = 1, .p = 0.5, .sigma = 8, .tau = 4});
  gyro->train();
  const auto x = torch::ones({8, 2000});
  const auto y = gyro->forward(x);
  CHECK(gyro->state().iter_num == 32);
  const double dropped = (y == 0).to(torch::kDouble).mean().item<double>();
  CHECK(dropped == doctest::Approx(0.5).epsilon(0.1));
  CHECK(torch::allclose(y.masked_select(y != 0), torch::full({1}, 2.0)));  // kept entries scaled by 1/(1 − p)
  for (int g = 0; g < 4; ++g) CHECK(torch::equal(y[2 * g], y[2 * g + 1]));  // groups of N / tau rows share a mask
  const auto selected = gyro->state().selected_masks.clone();
  for (int step = 1; step < 32; ++step) gyro->forward(x);
  CHECK(torch::equal(gyro->state().selected_masks, selected));
  for (int row = 0; row < 4; ++row) {  // each active mask is one of the pre-selected ones
    bool found = false;
    for (int k = 0; k < 8; ++k) found = found || torch::equal(selected[row], gyro->state().preselect_masks[k]);
    CHECK(found);
  }
  gyro->forward(x);  // the 33rd pass draws again
  CHECK(gyro->state().training_step == 33);
  gyro->eval();
  CHECK(torch::equal(gyro->forward(x), x));
}

TEST_CASE("layer_methods: the gyro dropout policy's state survives a checkpoint round trip") {
  torch::manual_seed(6);
  auto net = Mlp();
  composer::State state(composer::Model(net), Time("1ep"));
  state.dataloader_len = 8;
  const composer::Logger logger;
  alg::GyroDropout policy(0.5, 4, 2);
  policy.apply(composer::EventTag<composer::Event::FIT_START>{}, state, logger);
  CHECK(policy.last_report().count() == 1);
  REQUIRE(policy.layers().size() == 1);
  net->train();
  for (int i = 0; i < 3; ++i) net->forward(torch::randn({4, 6}));
  torch::serialize::OutputArchive out;
  policy.save_state(out);
  std::stringstream buffer;
  out.save_to(buffer);

  auto fresh = Mlp();
  composer::State fresh_state(composer::Model(fresh), Time("1ep"));
  fresh_state.dataloader_len = 8;
  alg::GyroDropout restored(0.5, 4, 2);
  torch::serialize::InputArchive in;
  in.load_from(buffer);
  restored.load_state(in);  // no gyro layer yet: kept until the surgery
  restored.apply(composer::EventTag<composer::Event::FIT_START>{}, fresh_state, logger);
  REQUIRE(restored.layers().size() == 1);
  const auto& a = policy.layers()[0]->state();
  const auto& b = restored.layers()[0]->state();
  CHECK(b.training_step == 3);
  CHECK(b.iter_num == a.iter_num);
  CHECK(torch::equal(a.preselect_masks, b.preselect_masks));
  CHECK(torch::equal(a.selected_masks, b.selected_masks));
}

// ---------------------------------------------------------------------------------------------------------------
// Low-precision norms

TEST_CASE("layer_methods: low-precision layer and group norms equal the float ones on CPU fp32") {
  torch::manual_seed(7);
  auto mlp = Mlp();
  auto opt = make_sgd(*mlp);
  const auto x = torch::randn({4, 6});
  mlp->eval();
  const auto before = mlp->forward(x);
  CHECK(fn::apply_low_precision_layernorm(*mlp, composer::Precision::amp_bf16, {opt}).count() == 1);
  CHECK(count_module_instances<mod::LPLayerNormImpl>(*mlp) == 1);
  CHECK(torch::equal(mlp->forward(x), before));
  mlp->train();
  check_optimizer_trains(*mlp, *opt, x);

  auto gnet = GroupNet();
  auto gopt = make_sgd(*gnet);
  const auto img = torch::randn({2, 1, 6, 6});
  const auto gbefore = gnet->forward(img);
  CHECK(fn::apply_low_precision_groupnorm(*gnet, composer::Precision::amp_bf16, {gopt}).count() == 1);
  CHECK(torch::equal(gnet->forward(img), gbefore));
  check_optimizer_trains(*gnet, *gopt, img);

  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({5}));
  mod::LPLayerNorm lp(*ln);
  CHECK(lp->weight.unsafeGetTensorImpl() == ln->weight.unsafeGetTensorImpl());
  const auto v = torch::randn({3, 5});
  CHECK(torch::equal(lp->forward(v), ln->forward(v)));
}

TEST_CASE("layer_methods: the shared low-precision norm surgery replaces only its own kind, once, under amp only") {
  torch::manual_seed(9);
  auto mlp = Mlp();
  auto gnet = GroupNet();
  // the group-norm surgery finds no GroupNorm in the MLP; the layer-norm surgery none in the conv net
  CHECK(fn::apply_low_precision_norm<mod::LPGroupNormImpl>(*mlp, composer::Precision::amp_bf16, {}).count() == 0);
  CHECK(fn::apply_low_precision_norm<mod::LPLayerNormImpl>(*gnet, composer::Precision::amp_fp16, {}).count() == 0);
  CHECK(count_module_instances<torch::nn::LayerNormImpl>(*mlp) == 1);
  // fp32: nothing changes
  CHECK(fn::apply_low_precision_norm<mod::LPGroupNormImpl>(*gnet, composer::Precision::fp32, {}).count() == 0);
  CHECK(count_module_instances<mod::LPGroupNormImpl>(*gnet) == 0);
  // amp: the norm is replaced, its parameter tensors kept; a second pass finds it already replaced
  const auto weight = gnet->named_parameters()["norm.weight"];
  CHECK(fn::apply_low_precision_norm<mod::LPGroupNormImpl>(*gnet, composer::Precision::amp_fp16, {}).count() == 1);
  CHECK(count_module_instances<mod::LPGroupNormImpl>(*gnet) == 1);
  CHECK(count_module_instances<mod::LPLayerNormImpl>(*gnet) == 0);
  CHECK(gnet->named_parameters()["norm.weight"].unsafeGetTensorImpl() == weight.unsafeGetTensorImpl());
  CHECK(fn::apply_low_precision_norm<mod::LPGroupNormImpl>(*gnet, composer::Precision::amp_fp16, {}).count() == 0);
}

TEST_CASE("layer_methods: LowPrecisionLayerNorm and LowPrecisionGroupNorm keep their names, placements and checks") {
  static_assert(!std::is_same_v<alg::LowPrecisionLayerNorm, alg::LowPrecisionGroupNorm>);
  static_assert(composer::placement_of<alg::LowPrecisionLayerNorm> == composer::Placement::last);
  static_assert(composer::placement_of<alg::LowPrecisionGroupNorm> == composer::Placement::declared);
  CHECK(std::string(alg::LowPrecisionLayerNorm::name) == "LowPrecisionLayerNorm");
  CHECK(std::string(alg::LowPrecisionGroupNorm::name) == "LowPrecisionGroupNorm");
  CHECK(alg::LowPrecisionLayerNorm().options().apply_at == composer::Event::INIT);
  CHECK(alg::LowPrecisionGroupNorm(composer::Event::AFTER_LOAD).options().apply_at == composer::Event::AFTER_LOAD);
  const alg::LowPrecisionGroupNormOptions before_load{.apply_at = composer::Event::BEFORE_LOAD};
  CHECK(alg::LowPrecisionGroupNorm(before_load).options().apply_at == composer::Event::BEFORE_LOAD);
  CHECK_THROWS_WITH_AS(alg::LowPrecisionLayerNorm(composer::Event::FIT_START),
                       doctest::Contains("LowPrecisionLayerNorm apply_at must be INIT, BEFORE_LOAD or AFTER_LOAD"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(alg::LowPrecisionGroupNorm({.apply_at = composer::Event::BATCH_END}),
                       doctest::Contains("LowPrecisionGroupNorm apply_at must be INIT, BEFORE_LOAD or AFTER_LOAD"),
                       std::invalid_argument);
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({5}));
  torch::nn::GroupNorm gn(torch::nn::GroupNormOptions(2, 4));
  CHECK(mod::LPLayerNorm(*ln)->name() == "LPLayerNorm");
  CHECK(mod::LPGroupNorm(*gn)->name() == "LPGroupNorm");
  CHECK(mod::LPGroupNormImpl::from_groupnorm(*gn)->options.num_groups() == 2);
  CHECK(mod::LPLayerNormImpl::from_layernorm(*ln)->options.normalized_shape() == std::vector<std::int64_t>{5});
}

// Turns CPU autocast on in bfloat16 for its lifetime (and back off after).
struct CpuBf16Autocast {
  CpuBf16Autocast() {
#if TORCH_VERSION_MAJOR >= 2
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
#else
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
#endif
  }
  ~CpuBf16Autocast() {
#if TORCH_VERSION_MAJOR >= 2
    at::autocast::set_autocast_enabled(at::kCPU, false);
#else
    at::autocast::set_cpu_enabled(false);
#endif
  }
};

TEST_CASE("layer_methods: under CPU bf16 autocast the low-precision norms compute in bfloat16") {
  torch::manual_seed(8);
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({5}));
  torch::nn::GroupNorm gn(torch::nn::GroupNormOptions(2, 4));
  {
    torch::NoGradGuard no_grad;
    ln->weight.uniform_(0.5, 1.5);
    ln->bias.uniform_(-0.5, 0.5);
    gn->weight.uniform_(0.5, 1.5);
    gn->bias.uniform_(-0.5, 0.5);
  }
  mod::LPLayerNorm lp_ln(*ln);
  mod::LPGroupNorm lp_gn(*gn);
  const auto v = torch::randn({3, 5});
  const auto img = torch::randn({2, 4, 3, 3});
  // independent expectation: the functional norms on bfloat16 copies of input, weight and bias
  const auto bf = [](const at::Tensor& t) { return t.to(at::kBFloat16); };
  const auto want_ln = at::layer_norm(bf(v), {5}, bf(ln->weight), bf(ln->bias), 1e-5);
  const auto want_gn = at::group_norm(bf(img), 2, bf(gn->weight), bf(gn->bias), 1e-5);
  at::Tensor got_ln, got_gn;
  {
    CpuBf16Autocast autocast;
    got_ln = lp_ln->forward(v);
    got_gn = lp_gn->forward(img);
  }
  CHECK((got_ln.scalar_type() == at::kBFloat16));
  CHECK((got_gn.scalar_type() == at::kBFloat16));
  CHECK(torch::equal(got_ln, want_ln));
  CHECK(torch::equal(got_gn, want_gn));
  // autocast off again: exactly the float modules
  CHECK((lp_ln->forward(v).scalar_type() == at::kFloat));
  CHECK(torch::equal(lp_gn->forward(img), gn->forward(img)));
}

// ---------------------------------------------------------------------------------------------------------------
// Policies in the Trainer

TEST_CASE("layer_methods: each policy trains a few batches in the Trainer") {
  SUBCASE("GhostBatchNorm") {
    auto net = composer::models::resnet20({.in_channels = 1});
    composer::Trainer<alg::GhostBatchNorm> trainer(
        net, {.train_dataloader = image_loader(16, 8), .max_duration = Time("2ba"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::GhostBatchNorm({.ghost_batch_size = 4}));
    CHECK(trainer.get<alg::GhostBatchNorm>().last_report().count() == 21);
    trainer.fit();
    CHECK(std::isfinite(trainer.state().loss.item<double>()));
  }
  SUBCASE("Factorize") {
    auto net = composer::models::resnet20({.in_channels = 1});
    composer::Trainer<alg::Factorize> trainer(
        net, {.train_dataloader = image_loader(16, 8), .max_duration = Time("2ba"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::Factorize({.min_channels = 32, .min_features = 8, .latent_features = 0.25}));
    CHECK(trainer.get<alg::Factorize>().last_report().count() == 13);
    trainer.fit();
    CHECK(std::isfinite(trainer.state().loss.item<double>()));
  }
  SUBCASE("WeightStandardization") {
    auto net = composer::models::resnet20({.in_channels = 1});
    composer::Trainer<alg::WeightStandardization> trainer(
        net, {.train_dataloader = image_loader(16, 8), .max_duration = Time("2ba"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::WeightStandardization({.n_last_layers_ignore = 1}));
    CHECK(trainer.get<alg::WeightStandardization>().last_report().count() == 20);
    trainer.fit();
    CHECK(std::isfinite(trainer.state().loss.item<double>()));
  }
  SUBCASE("GyroDropout") {
    auto net = Mlp();
    composer::Trainer<alg::GyroDropout> trainer(
        net, {.train_dataloader = vector_loader(64, 8), .max_duration = Time("1ep"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false},
        alg::GyroDropout(0.5, 4, 2));
    trainer.fit();
    CHECK(trainer.get<alg::GyroDropout>().last_report().count() == 1);
    REQUIRE(trainer.get<alg::GyroDropout>().layers().size() == 1);
    CHECK(trainer.get<alg::GyroDropout>().layers()[0]->state().training_step == 8);
    CHECK(trainer.get<alg::GyroDropout>().layers()[0]->state().iter_num == 4);  // int(8·1/4)·2
  }
  SUBCASE("LowPrecisionLayerNorm and LowPrecisionGroupNorm leave fp32 training alone") {
    auto net = Mlp();
    composer::Trainer<alg::LowPrecisionLayerNorm, alg::LowPrecisionGroupNorm> trainer(
        net, {.train_dataloader = vector_loader(16, 8), .max_duration = Time("2ba"), .optimizers = {make_sgd(*net)},
              .seed = 1, .progress_bar = false});
    trainer.fit();
    CHECK(std::isfinite(trainer.state().loss.item<double>()));
  }
}
