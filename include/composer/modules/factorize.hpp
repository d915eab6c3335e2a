#pragma once
/// \file
/// Low-rank factorized layers: a convolution or linear layer split into two smaller ones with a narrow latent
/// space between them (`FactorizedConv2d`, `FactorizedLinear`), Composer's rule for the latent size and for when
/// factorizing saves multiply-adds, and the truncated SVD that initialises the factors from an existing layer.
/// Composer counterpart: `composer.algorithms.factorize.factorize_modules` and `factorize_core._svd_initialize`.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <composer/modules/conv_options.hpp>
#include <composer/surgery/surgical_module.hpp>

namespace composer::modules {

namespace detail::factorize {
inline std::string number(double value) {
  std::string s = std::to_string(value);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace detail::factorize

/// Checks a latent size as Composer reads it: a fraction in (0, 1) or a whole count >= 1. `name` is the argument's
/// name in the message (e.g. "latent_channels").
/// \throws std::invalid_argument for a value <= 0, not finite, or >= 1 and not whole.
inline void check_latent_size(double latent_size, const char* name) {
  if (!std::isfinite(latent_size) || latent_size <= 0.0 || (latent_size >= 1.0 && latent_size != std::floor(latent_size)))
    throw std::invalid_argument(std::string("composer: ") + name +
                                " must be a fraction in (0, 1) or a whole count >= 1, got " +
                                detail::factorize::number(latent_size));
}

/// The latent size for a layer with `in_size` inputs and `out_size` outputs: a fraction (< 1) of
/// min(in_size, out_size), truncated, at least 1; or the count itself (>= 1). Composer counterpart:
/// `factorize_modules._clean_latent_size`.
/// \throws std::invalid_argument as `check_latent_size`.
[[nodiscard]] inline std::int64_t clean_latent_size(double latent_size, std::int64_t in_size, std::int64_t out_size) {
  check_latent_size(latent_size, "latent size");
  if (latent_size < 1.0) {
    const auto latent = static_cast<std::int64_t>(latent_size * static_cast<double>(std::min(in_size, out_size)));
    return std::max<std::int64_t>(1, latent);
  }
  return static_cast<std::int64_t>(latent_size);
}

/// The largest latent size at which two factors cost fewer multiply-adds than the original layer: with
/// fan_in = in_channels · kernel_elements, the break-even rank is fan_in · out / (fan_in + out); the result is
/// ceil(break-even − 1), i.e. the break-even rounded down, or one less when it is a whole number. Composer
/// counterpart: `factorize_modules._max_rank_with_possible_speedup`.
[[nodiscard]] inline std::int64_t max_rank_with_possible_speedup(std::int64_t in_channels, std::int64_t out_channels,
                                                                 std::int64_t kernel_elements = 1) {
  const double fan_in = static_cast<double>(in_channels * kernel_elements);
  const double out = static_cast<double>(out_channels);
  const double breakeven = fan_in * out / (fan_in + out);
  return static_cast<std::int64_t>(std::ceil(breakeven - 1.0));
}

/// Whether factorizing `conv` with `latent_channels` could save multiply-adds: not for grouped convolutions,
/// otherwise when the cleaned latent size is at most `max_rank_with_possible_speedup` for its kernel. Composer
/// counterpart: `factorize_modules.factorizing_could_speedup` on a `torch.nn.Conv2d`.
[[nodiscard]] inline bool factorizing_could_speedup(const torch::nn::Conv2dImpl& conv, double latent_channels) {
  const auto& o = conv.options;
  if (o.groups() > 1) return false;
  const auto& k = *o.kernel_size();
  const std::int64_t latent = clean_latent_size(latent_channels, o.in_channels(), o.out_channels());
  return latent <= max_rank_with_possible_speedup(o.in_channels(), o.out_channels(), k[0] * k[1]);
}

/// Whether factorizing `linear` with `latent_features` could save multiply-adds. Composer counterpart:
/// `factorize_modules.factorizing_could_speedup` on a `torch.nn.Linear`.
[[nodiscard]] inline bool factorizing_could_speedup(const torch::nn::LinearImpl& linear, double latent_features) {
  const auto& o = linear.options;
  const std::int64_t latent = clean_latent_size(latent_features, o.in_features(), o.out_features());
  return latent <= max_rank_with_possible_speedup(o.in_features(), o.out_features());
}

/// The rank-`rank` truncated SVD of a [fan_in, out] matrix `w` = U·diag(s)·Vᵀ as two factors (A, B) with
/// A = U[:, :rank]·diag(√s) ([fan_in, rank]) and B = diag(√s)·Vᵀ[:rank] ([rank, out]), the singular values
/// split evenly between them. A·B is the best rank-`rank` approximation of `w`: ‖w − A·B‖_F is the root of
/// the sum of the squared dropped singular values. Computed in double precision, returned in `w`'s dtype.
/// Composer counterpart: `factorize_core._svd_initialize`.
/// \throws std::invalid_argument for a `w` that is not 2-D or a rank outside [1, min(fan_in, out)].
[[nodiscard]] inline std::pair<at::Tensor, at::Tensor> svd_factors(const at::Tensor& w, std::int64_t rank) {
  if (!w.defined() || w.dim() != 2) throw std::invalid_argument("composer: svd_factors needs a 2-D matrix");
  if (rank < 1 || rank > std::min(w.size(0), w.size(1)))
    throw std::invalid_argument("composer: svd_factors rank must be in [1, " +
                                std::to_string(std::min(w.size(0), w.size(1))) + "], got " + std::to_string(rank));
  at::NoGradGuard no_grad;
  const auto [u, s, vh] = at::linalg_svd(w.detach().to(at::kDouble), /*full_matrices=*/false);
  const at::Tensor root = s.slice(0, 0, rank).sqrt();
  const at::Tensor a = u.slice(1, 0, rank) * root.unsqueeze(0);
  const at::Tensor b = vh.slice(0, 0, rank) * root.unsqueeze(1);
  return {a.to(w.scalar_type()), b.to(w.scalar_type())};
}

/// A 2-D convolution split in two: `module0`, a convolution from `in_channels` to `latent_channels` with the
/// original kernel, stride, padding, dilation and padding mode and no bias, then `module1`, a 1x1 convolution from
/// `latent_channels` to `out_channels` with a bias, and no non-linearity between them (slots `module0`,
/// `module1`). Composer counterpart: `composer.algorithms.factorize.FactorizedConv2d`.
class FactorizedConv2dImpl : public surgery::SurgicalModule {
 public:
  /// A factorized convolution shaped like a convolution with `options` (its `bias` is ignored: `module1` always
  /// has one), with `latent_channels` a fraction of min(in, out) or a count; freshly initialised factors.
  /// \throws std::invalid_argument for groups > 1, a bad latent size, or one too large to save multiply-adds.
  explicit FactorizedConv2dImpl(const torch::nn::Conv2dOptions& options, double latent_channels = 0.25)
      : in_channels_(options.in_channels()),
        out_channels_(options.out_channels()),
        kernel_size_((*options.kernel_size())[0], (*options.kernel_size())[1]) {
    check_latent_size(latent_channels, "latent_channels");
    if (options.groups() > 1)
      throw std::invalid_argument("composer: FactorizedConv2d cannot factorize a grouped convolution (groups = " +
                                  std::to_string(options.groups()) + ")");
    latent_channels_ = clean_latent_size(latent_channels, in_channels_, out_channels_);
    const std::int64_t max_rank = max_allowed_latent_channels(in_channels_, out_channels_, kernel_size_);
    if (latent_channels_ > max_rank)
      throw std::invalid_argument("composer: FactorizedConv2d latent_channels " + std::to_string(latent_channels_) +
                                  " is too large to save multiply-adds for " + std::to_string(in_channels_) + " -> " +
                                  std::to_string(out_channels_) + " channels; it must be <= " +
                                  std::to_string(max_rank));
    using torch::nn::Conv2d;
    using torch::nn::Conv2dOptions;
    module0_ = register_slot("module0", Conv2d(Conv2dOptions(in_channels_, latent_channels_, options.kernel_size())
                                                   .stride(options.stride())
                                                   .padding(options.padding())
                                                   .dilation(options.dilation())
                                                   .padding_mode(options.padding_mode())
                                                   .bias(false)));
    module1_ = register_slot("module1", Conv2d(Conv2dOptions(latent_channels_, out_channels_, 1).bias(true)));
  }

  /// A factorized convolution approximating `conv`: the factors are the rank-`latent_channels` truncated SVD of
  /// its weight (as a [in·kh·kw, out] matrix, see `svd_factors`) and `module1`'s bias is `conv`'s bias (zero
  /// without one), so the output is the best approximation of `conv`'s at that rank. Composer counterpart:
  /// `FactorizedConv2d.from_conv2d(module, module_ix, latent_channels=...)` (which initialises the factors
  /// randomly instead).
  /// \throws std::invalid_argument as the constructor.
  [[nodiscard]] static std::shared_ptr<FactorizedConv2dImpl> from_conv2d(const torch::nn::Conv2dImpl& conv,
                                                                         double latent_channels = 0.25) {
    auto factorized = std::make_shared<FactorizedConv2dImpl>(detail::conv2d_options_of(conv), latent_channels);
    factorized->to(conv.weight.device(), conv.weight.scalar_type());
    const std::int64_t k = factorized->latent_channels_;
    const at::Tensor w = conv.weight.detach().reshape({conv.options.out_channels(), -1}).t();  // [in·kh·kw, out]
    const auto [a, b] = svd_factors(w, k);
    at::NoGradGuard no_grad;
    auto m0 = factorized->module0();
    auto m1 = factorized->module1();
    m0->weight.copy_(a.t().reshape(m0->weight.sizes()));
    m1->weight.copy_(b.t().reshape(m1->weight.sizes()));
    if (conv.bias.defined())
      m1->bias.copy_(conv.bias.detach());
    else
      m1->bias.zero_();
    return factorized;
  }

  /// module1(module0(x)).
  at::Tensor forward(const at::Tensor& x) { return call(module1_, call(module0_, x)); }

  /// Input channels. Composer counterpart: `FactorizedConv2d.in_channels`.
  [[nodiscard]] std::int64_t in_channels() const noexcept { return in_channels_; }
  /// Output channels. Composer counterpart: `FactorizedConv2d.out_channels`.
  [[nodiscard]] std::int64_t out_channels() const noexcept { return out_channels_; }
  /// Channels of the latent representation. Composer counterpart: `FactorizedConv2d.latent_channels`.
  [[nodiscard]] std::int64_t latent_channels() const noexcept { return latent_channels_; }
  /// The kernel size (height, width) of `module0`.
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> kernel_size() const noexcept { return kernel_size_; }
  /// The first, kernel-sized convolution (null if another surgery replaced it by a different type).
  [[nodiscard]] std::shared_ptr<torch::nn::Conv2dImpl> module0() const { return slot_as<torch::nn::Conv2dImpl>(module0_); }
  /// The second, 1x1 convolution (null if another surgery replaced it by a different type).
  [[nodiscard]] std::shared_ptr<torch::nn::Conv2dImpl> module1() const { return slot_as<torch::nn::Conv2dImpl>(module1_); }

  /// Whether factorizing further to `proposed_rank` (fraction or count) would save multiply-adds: any rank
  /// below the current latent size does. Composer counterpart: `FactorizedConv2d.should_factorize`.
  [[nodiscard]] bool should_factorize(double proposed_rank) const {
    return clean_latent_size(proposed_rank, in_channels_, out_channels_) <= latent_channels_ - 1;
  }

  /// The largest latent channel count that saves multiply-adds for a convolution of that shape. Composer
  /// counterpart: `FactorizedConv2d.max_allowed_latent_features` (sic).
  [[nodiscard]] static std::int64_t max_allowed_latent_channels(std::int64_t in_channels, std::int64_t out_channels,
                                                               std::pair<std::int64_t, std::int64_t> kernel_size) {
    return max_rank_with_possible_speedup(in_channels, out_channels, kernel_size.first * kernel_size.second);
  }

 private:
  std::int64_t in_channels_, out_channels_;
  std::pair<std::int64_t, std::int64_t> kernel_size_;
  std::int64_t latent_channels_ = 0;
  Slot module0_, module1_;
};
/// Module holder of `FactorizedConv2dImpl`.
TORCH_MODULE(FactorizedConv2d);

/// A linear layer split in two: `module0`, a linear map from `in_features` to `latent_features` without bias,
/// then `module1`, from `latent_features` to `out_features` with the original's bias setting (slots `module0`,
/// `module1`). Composer counterpart: `composer.algorithms.factorize.FactorizedLinear`.
class FactorizedLinearImpl : public surgery::SurgicalModule {
 public:
  /// A factorized linear layer with `latent_features` a fraction of min(in, out) or a count; fresh factors.
  /// \throws std::invalid_argument for a bad latent size, or one too large to save multiply-adds.
  FactorizedLinearImpl(std::int64_t in_features, std::int64_t out_features, bool bias = true,
                       double latent_features = 0.25)
      : in_features_(in_features), out_features_(out_features) {
    check_latent_size(latent_features, "latent_features");
    latent_features_ = clean_latent_size(latent_features, in_features, out_features);
    const std::int64_t max_rank = max_allowed_latent_features(in_features, out_features);
    if (latent_features_ > max_rank)
      throw std::invalid_argument("composer: FactorizedLinear latent_features " + std::to_string(latent_features_) +
                                  " is too large to save multiply-adds for " + std::to_string(in_features) + " -> " +
                                  std::to_string(out_features) + " features; it must be <= " +
                                  std::to_string(max_rank));
    using torch::nn::Linear;
    using torch::nn::LinearOptions;
    module0_ = register_slot("module0", Linear(LinearOptions(in_features, latent_features_).bias(false)));
    module1_ = register_slot("module1", Linear(LinearOptions(latent_features_, out_features).bias(bias)));
  }

  /// A factorized linear layer approximating `linear`: the factors are the rank-`latent_features` truncated SVD
  /// of its weight (see `svd_factors`) and the bias is copied, so the output is the best approximation of
  /// `linear`'s at that rank. Composer counterpart: `FactorizedLinear.from_linear(module, module_ix,
  /// latent_features=...)` (which initialises the factors randomly instead).
  /// \throws std::invalid_argument as the constructor.
  [[nodiscard]] static std::shared_ptr<FactorizedLinearImpl> from_linear(const torch::nn::LinearImpl& linear,
                                                                         double latent_features = 0.25) {
    const auto& o = linear.options;
    auto factorized =
        std::make_shared<FactorizedLinearImpl>(o.in_features(), o.out_features(), o.bias(), latent_features);
    factorized->to(linear.weight.device(), linear.weight.scalar_type());
    const auto [a, b] = svd_factors(linear.weight.detach().t(), factorized->latent_features_);  // w: [in, out]
    at::NoGradGuard no_grad;
    auto m0 = factorized->module0();
    auto m1 = factorized->module1();
    m0->weight.copy_(a.t());
    m1->weight.copy_(b.t());
    if (linear.bias.defined()) m1->bias.copy_(linear.bias.detach());
    return factorized;
  }

  /// module1(module0(x)).
  at::Tensor forward(const at::Tensor& x) { return call(module1_, call(module0_, x)); }

  /// Input features. Composer counterpart: `FactorizedLinear.in_features`.
  [[nodiscard]] std::int64_t in_features() const noexcept { return in_features_; }
  /// Output features. Composer counterpart: `FactorizedLinear.out_features`.
  [[nodiscard]] std::int64_t out_features() const noexcept { return out_features_; }
  /// Size of the latent representation. Composer counterpart: `FactorizedLinear.latent_features`.
  [[nodiscard]] std::int64_t latent_features() const noexcept { return latent_features_; }
  /// The first linear map (null if another surgery replaced it by a different type).
  [[nodiscard]] std::shared_ptr<torch::nn::LinearImpl> module0() const { return slot_as<torch::nn::LinearImpl>(module0_); }
  /// The second linear map (null if another surgery replaced it by a different type).
  [[nodiscard]] std::shared_ptr<torch::nn::LinearImpl> module1() const { return slot_as<torch::nn::LinearImpl>(module1_); }

  /// Whether factorizing further to `proposed_rank` would save multiply-adds: any rank below the current one
  /// does. Composer counterpart: `FactorizedLinear.should_factorize`.
  [[nodiscard]] bool should_factorize(double proposed_rank) const {
    return clean_latent_size(proposed_rank, in_features_, out_features_) <= latent_features_ - 1;
  }

  /// The largest latent size that saves multiply-adds for a linear layer of that shape. Composer counterpart:
  /// `FactorizedLinear.max_allowed_latent_channels` (sic).
  [[nodiscard]] static std::int64_t max_allowed_latent_features(std::int64_t in_features, std::int64_t out_features) {
    return max_rank_with_possible_speedup(in_features, out_features);
  }

 private:
  std::int64_t in_features_, out_features_;
  std::int64_t latent_features_ = 0;
  Slot module0_, module1_;
};
/// Module holder of `FactorizedLinearImpl`.
TORCH_MODULE(FactorizedLinear);

}  // namespace composer::modules
