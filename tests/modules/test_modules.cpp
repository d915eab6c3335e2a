// The layer modules of include/composer/modules/, used directly (without their surgery or policies): values by
// hand or against an independent computation (blur filters, squeeze-excite gates, stochastic blocks, ghost batch
// norm, the truncated SVD of factorized layers, standardised kernels, the low-precision norms in fp32 and under
// CPU bf16 autocast). The surgery that installs them and the policies: tests/algorithms.
#include <torch/torch.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <composer/functional/low_precision_groupnorm.hpp>
#include <composer/functional/low_precision_layernorm.hpp>
#include <composer/models/resnet.hpp>
#include <composer/modules.hpp>
#include <composer/surgery.hpp>

#include <doctest/doctest.h>

#include "../support/error_messages.hpp"
#include "../support/slot_models.hpp"

#include <cstdint>
#include <vector>

namespace modules_test {

namespace cm = composer::modules;
namespace fn = composer::functional;
using composer::surgery::count_module_instances;
using composer_test::check_optimizer_trains;
using composer_test::GroupNet;
using composer_test::make_sgd;
using composer_test::Mlp;

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

}  // namespace modules_test

using namespace modules_test;

// ---------------------------------------------------------------------------------------------------------------
// Blur pooling (modules/blurpool.hpp)

TEST_CASE("blur_2d applies the [1 2 1]x[1 2 1]/16 filter per channel, zero-padded, with a stride") {
  // A 3x3 image of ones, channel 2 twice channel 1: each output is the sum of the filter taps that fall inside
  // the image — corners 9/16, edges 12/16, centre 16/16 — times the channel's value.
  auto x = torch::ones({1, 2, 3, 3});
  x[0][1] *= 2;
  const auto y = cm::blur_2d(x);
  const auto expected = torch::tensor({9.f, 12.f, 9.f, 12.f, 16.f, 12.f, 9.f, 12.f, 9.f}).reshape({3, 3}) / 16;
  CHECK(torch::allclose(y[0][0], expected));
  CHECK(torch::allclose(y[0][1], 2 * expected));
  // an impulse at the centre of a 5x5 image reproduces the filter; stride 2 keeps rows and columns 0, 2, 4
  auto impulse = torch::zeros({1, 1, 5, 5});
  impulse[0][0][2][2] = 1;
  const auto spread = cm::blur_2d(impulse);
  CHECK(torch::allclose(spread[0][0].slice(0, 1, 4).slice(1, 1, 4), cm::default_blur_filter()[0][0]));
  CHECK(spread.sum().item<float>() == doctest::Approx(1.0));
  const auto strided = cm::blur_2d(impulse, -1, {2});
  CHECK(strided.sizes() == std::vector<std::int64_t>{1, 1, 3, 3});
  CHECK(strided[0][0][1][1].item<float>() == doctest::Approx(4.0 / 16));
  CHECK(strided[0][0][0][0].item<float>() == 0.0f);
  // an even-sized filter is refused
  composer_test::check_bad_argument([&] { (void)cm::blur_2d(x, -1, {1}, torch::ones({1, 1, 2, 3})); },
                                    {"odd height", "2"});
}

TEST_CASE("blurmax_pool2d: max at stride 1, then blur with the stride (values by hand)") {
  // x[r][c] = 4r + c. 2x2 maxima at stride 1: m[i][j] = 4i + j + 5 = [[5,6,7],[9,10,11],[13,14,15]]. Blurring
  // with stride 2 keeps m's corners: (4·5 + 2·6 + 2·9 + 10)/16 = 3.75, (4·7 + 2·6 + 2·11 + 10)/16 = 4.5,
  // (4·13 + 2·9 + 2·14 + 10)/16 = 6.75, (4·15 + 2·11 + 2·14 + 10)/16 = 7.5.
  const auto x = torch::arange(16, torch::kFloat).reshape({1, 1, 4, 4});
  const auto y = cm::blurmax_pool2d(x);
  CHECK(torch::allclose(y, torch::tensor({3.75f, 4.5f, 6.75f, 7.5f}).reshape({1, 1, 2, 2})));
  cm::BlurMaxPool2d pool(torch::nn::MaxPool2dOptions(2));
  CHECK(torch::allclose(pool->forward(x), y));
}

TEST_CASE("BlurConv2d blurs before (or after) the convolution it copies") {
  torch::manual_seed(1);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3).stride(2).padding(1).bias(true));
  const auto x = torch::randn({2, 3, 9, 9});
  auto first = cm::BlurConv2dImpl::from_conv2d(*conv, /*blur_first=*/true);
  CHECK(torch::equal(first->conv()->weight, conv->weight));
  CHECK(first->conv()->weight.unsafeGetTensorImpl() != conv->weight.unsafeGetTensorImpl());  // new parameters
  CHECK(torch::equal(first->conv()->bias, conv->bias));
  CHECK(first->blur_filter().sizes() == std::vector<std::int64_t>{3, 1, 3, 3});
  CHECK(torch::allclose(first->forward(x), conv->forward(cm::blur_2d(x)), 1e-5, 1e-6));
  CHECK(first->forward(x).sizes() == std::vector<std::int64_t>{2, 4, 5, 5});

  auto after = cm::BlurConv2dImpl::from_conv2d(*conv, /*blur_first=*/false);
  CHECK((*after->conv()->options.stride())[0] == 1);
  CHECK(after->blur_filter().sizes() == std::vector<std::int64_t>{4, 1, 3, 3});
  const auto dense = at::conv2d(x, conv->weight, conv->bias, 1, 1);
  CHECK(torch::allclose(after->forward(x), cm::blur_2d(dense, -1, {2}), 1e-5, 1e-6));
  CHECK(after->forward(x).sizes() == std::vector<std::int64_t>{2, 4, 5, 5});
}

// ---------------------------------------------------------------------------------------------------------------
// Squeeze-and-excitation (modules/squeeze_excite.hpp)

TEST_CASE("SqueezeExcite2d gates each channel by sigmoid(W2 relu(W1 mean))") {
  // Two channels with means 1 and 3, one hidden unit: W1 = [1, 1] → hidden relu(4) = 4; W2 = [1, -1]ᵀ → gates
  // σ(4) = 0.98201379 and σ(−4) = 0.01798621; outputs 1·σ(4) and 3·σ(−4) = 0.05395863.
  cm::SqueezeExcite2d se(2, /*latent_channels=*/1);
  CHECK(se->latent_channels() == 1);
  {
    torch::NoGradGuard no_grad;
    auto params = se->named_parameters();
    REQUIRE(params.size() == 2);
    params["pool_and_mlp.2.weight"].copy_(torch::tensor({{1.f, 1.f}}));
    params["pool_and_mlp.4.weight"].copy_(torch::tensor({{1.f}, {-1.f}}));
  }
  auto x = torch::ones({1, 2, 2, 2});
  x[0][1] *= 3;
  const auto y = se->forward(x);
  CHECK(torch::allclose(y[0][0], torch::full({2, 2}, 0.98201379f)));
  CHECK(torch::allclose(y[0][1], torch::full({2, 2}, 0.05395863f)));
  CHECK(torch::allclose(se->gates(x), torch::tensor({{0.98201379f, 0.01798621f}})));

  // hidden width: a count from 1 up, a fraction of the channels below 1 (truncated)
  CHECK(cm::SqueezeExcite2d(64, 0.25)->latent_channels() == 16);
  CHECK(cm::SqueezeExcite2d(64, 0.3)->latent_channels() == 19);
  CHECK(cm::SqueezeExcite2d(64, 8)->latent_channels() == 8);
  CHECK(cm::SqueezeExcite2d(64)->latent_channels() == 8);  // Composer's module default 0.125
  composer_test::check_bad_argument([] { cm::SqueezeExcite2d bad(4, 0.125); }, {"latent_channels", "no hidden unit"});
  composer_test::check_bad_argument([] { cm::SqueezeExcite2d bad(4, -1); }, {"latent_channels"});
  composer_test::check_bad_argument([&] { (void)se->forward(torch::ones({1, 3, 2, 2})); }, {"2 channels"});
}

// ---------------------------------------------------------------------------------------------------------------
// Stochastic depth (modules/stochastic_depth.hpp)

TEST_CASE("a dropped block returns its shortcut; eval scales the residual by 1 - p") {
  torch::manual_seed(11);
  const auto x = at::relu(torch::randn({4, 16, 8, 8}));
  // identity shortcut: a dropped block returns x itself
  composer::models::BasicBlock plain(16, 16, 1);
  cm::StochasticBasicBlock always(plain, /*drop_rate=*/1.0);
  always->train();
  CHECK(torch::equal(always->forward(x), x));
  // projected shortcut: relu(shortcut(x))
  composer::models::BasicBlock down(16, 32, 2);
  cm::StochasticBasicBlock dropped(down, 1.0);
  dropped->train();
  CHECK(dropped->has_projection());
  CHECK(torch::allclose(dropped->forward(x), at::relu(down->shortcut(x))));
  // p = 0 in training: the block as it was
  cm::StochasticBasicBlock kept(down, 0.0);
  kept->train();
  CHECK(torch::allclose(kept->forward(x), down->forward(x)));
  // evaluation: relu((1 − p)·residual + shortcut), no draw
  cm::StochasticBasicBlock scaled(down, 0.25);
  scaled->eval();
  CHECK(torch::allclose(scaled->forward(x), at::relu(0.75 * down->residual(x) + down->shortcut(x)), 1e-5, 1e-6));
  // in training, the block is dropped about p of the time (one draw per call)
  composer::models::BasicBlock tiny(2, 2, 1);
  cm::StochasticBasicBlock coin(tiny, 0.3);
  coin->train();
  const auto small = at::relu(torch::randn({1, 2, 3, 3})) + 0.5;
  int dropped_calls = 0;
  for (int i = 0; i < 400; ++i) dropped_calls += torch::equal(coin->forward(small), small);
  CHECK(dropped_calls > 90);
  CHECK(dropped_calls < 150);
}

TEST_CASE("sample mode drops the residual of single samples; eval scales by 1 - p") {
  torch::manual_seed(12);
  composer::models::BasicBlock block(8, 8, 1);
  const auto x = at::relu(torch::randn({32, 8, 4, 4}));
  cm::StochasticBasicBlock stochastic(block, 0.5, cm::StochasticMethod::sample);
  stochastic->train();
  block->train();
  const auto y = stochastic->forward(x);
  const auto full = block->forward(x);  // batch statistics: the same as inside the stochastic forward
  int kept = 0, dropped = 0;
  for (std::int64_t i = 0; i < 32; ++i) {
    if (torch::allclose(y[i], full[i])) ++kept;
    else if (torch::allclose(y[i], at::relu(x[i]))) ++dropped;  // identity shortcut: relu(0 + x)
  }
  CHECK(kept + dropped == 32);
  CHECK(kept > 5);
  CHECK(dropped > 5);
  stochastic->eval();
  block->eval();
  CHECK(torch::allclose(stochastic->forward(x), at::relu(0.5 * block->residual(x) + x), 1e-5, 1e-6));
  // the mask itself
  const auto ones = torch::ones({1000, 1, 1, 1});
  const auto masked = cm::sample_drop(ones, 0.2, /*training=*/true);
  CHECK(((masked == 0) | (masked == 1)).all().item<bool>());
  CHECK(masked.mean().item<double>() == doctest::Approx(0.8).epsilon(0.05));
  CHECK(torch::allclose(cm::sample_drop(ones, 0.2, false), torch::full_like(ones, 0.8)));
}

// ---------------------------------------------------------------------------------------------------------------
// Ghost batch norm (modules/ghost_batchnorm.hpp)

TEST_CASE("ghost batch norm normalises each chunk by itself and updates running stats per chunk") {
  torch::manual_seed(1);
  torch::nn::BatchNorm2d bn(torch::nn::BatchNormOptions(3).momentum(0.1));
  {
    torch::NoGradGuard g;
    bn->weight.uniform_(0.5, 1.5);
    bn->bias.uniform_(-0.5, 0.5);
  }
  cm::GhostBatchNorm2d ghost(bn.ptr(), 4);
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
// Factorized layers (modules/factorize.hpp)

TEST_CASE("factorization follows Composer's size rules") {
  CHECK(cm::clean_latent_size(0.25, 64, 10) == 2);
  CHECK(cm::clean_latent_size(0.01, 64, 10) == 1);  // at least one
  CHECK(cm::clean_latent_size(5, 64, 10) == 5);
  CHECK(cm::max_rank_with_possible_speedup(12, 10) == 5);      // 120/22 = 5.45 → 5
  CHECK(cm::max_rank_with_possible_speedup(10, 10) == 4);      // 100/20 = 5 exactly → 4
  CHECK(cm::max_rank_with_possible_speedup(4, 6, 9) == 5);     // 216/42 = 5.14 → 5
}

TEST_CASE("a factorized layer is the truncated SVD of the original") {
  torch::manual_seed(3);
  torch::nn::Linear linear(12, 10);
  cm::FactorizedLinear f(cm::FactorizedLinearImpl::from_linear(*linear, 3));
  CHECK(f->latent_features() == 3);
  const auto w = linear->weight.detach().to(torch::kDouble);
  const auto product = torch::matmul(f->module1()->weight, f->module0()->weight).detach().to(torch::kDouble);
  const auto s = torch::linalg_svdvals(w);
  const double dropped = s.narrow(0, 3, s.size(0) - 3).pow(2).sum().sqrt().item<double>();
  CHECK((w - product).norm().item<double>() == doctest::Approx(dropped).epsilon(1e-4));
  CHECK(torch::allclose(f->module1()->bias, linear->bias));
  CHECK(cm::factorizing_could_speedup(*linear, 5));
  CHECK_FALSE(cm::factorizing_could_speedup(*linear, 6));  // 6 > 5: no saving

  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(4, 6, 3).padding(1));
  cm::FactorizedConv2d fc(cm::FactorizedConv2dImpl::from_conv2d(*conv, 2));
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
  cm::FactorizedConv2d exact(cm::FactorizedConv2dImpl::from_conv2d(*low, 2));
  const auto x = torch::randn({2, 4, 5, 5});
  CHECK(torch::allclose(exact->forward(x), low->forward(x), 1e-4, 1e-4));
}

// ---------------------------------------------------------------------------------------------------------------
// Weight standardization (modules/weight_standardization.hpp)

TEST_CASE("a standardised kernel is (W - mean) / sqrt(var + 1e-10) per output channel") {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(1, 2, torch::ExpandingArray<2>({1, 2})).bias(true));
  {
    torch::NoGradGuard g;
    conv->weight.copy_(torch::tensor({1.0f, 3.0f, 2.0f, 2.0f}).reshape({2, 1, 1, 2}));
    conv->bias.copy_(torch::tensor({0.5f, -0.5f}));
  }
  // channel 0: mean 2, variance 1 → (−1, 1)/sqrt(1 + 1e-10); channel 1: variance 0 → (0, 0)
  const auto s = cm::standardize_weight(conv->weight.detach());
  CHECK(s[0][0][0][0].item<double>() == doctest::Approx(-1.0));
  CHECK(s[0][0][0][1].item<double>() == doctest::Approx(1.0));
  CHECK(s[1].abs().sum().item<double>() == 0.0);
  cm::WSConv2d ws(conv);
  const auto y = ws->forward(torch::tensor({1.0f, 0.0f}).reshape({1, 1, 1, 2}));
  CHECK(y[0][0][0][0].item<double>() == doctest::Approx(-0.5));
  CHECK(y[0][1][0][0].item<double>() == doctest::Approx(-0.5));
  CHECK(ws->weight[0][0][0][1].item<double>() == doctest::Approx(3.0));  // stored weight unchanged
}

// ---------------------------------------------------------------------------------------------------------------
// Low-precision norms (modules/low_precision_norm.hpp)

TEST_CASE("low-precision layer and group norms equal the float ones on CPU fp32") {
  torch::manual_seed(7);
  auto mlp = Mlp();
  auto opt = make_sgd(*mlp);
  const auto x = torch::randn({4, 6});
  mlp->eval();
  const auto before = mlp->forward(x);
  CHECK(fn::apply_low_precision_layernorm(*mlp, composer::Precision::amp_bf16, {opt}).count() == 1);
  CHECK(count_module_instances<cm::LPLayerNormImpl>(*mlp) == 1);
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
  cm::LPLayerNorm lp(*ln);
  CHECK(lp->weight.unsafeGetTensorImpl() == ln->weight.unsafeGetTensorImpl());
  const auto v = torch::randn({3, 5});
  CHECK(torch::equal(lp->forward(v), ln->forward(v)));
}

TEST_CASE("under CPU bf16 autocast the low-precision norms compute in bfloat16") {
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
  cm::LPLayerNorm lp_ln(*ln);
  cm::LPGroupNorm lp_gn(*gn);
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
