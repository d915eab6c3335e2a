#pragma once
/// \file
/// Exponential moving average of a model's weights: `compute_ema` and `EMAParameters`, the named copy of the
/// trainable parameters and buffers that the EMA algorithm keeps.

#include <cmath>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/ordered_dict.h>

#include <composer/functional/common.hpp>

namespace composer::functional {

/// A named copy of a model's parameters and buffers, the storage of the EMA weights: the parameters that
/// require gradients and every buffer, cloned (detached) at construction. Names are the dotted names of
/// `Module::named_parameters()` / `named_buffers()`. Composer counterpart:
/// `composer.algorithms.ema.ema.EMAParameters`.
class EMAParameters {
 public:
  /// Tensor storage by dotted name, in the model's order.
  using Dict = torch::OrderedDict<std::string, at::Tensor>;

  /// Empty storage.
  EMAParameters() = default;

  /// Clones the trainable parameters (those with `requires_grad`) and all buffers of `model`.
  explicit EMAParameters(const torch::nn::Module& model) {
    at::NoGradGuard no_grad;
    for (const auto& item : model.named_parameters(/*recurse=*/true))
      if (item.value().requires_grad()) parameters_.insert(item.key(), item.value().detach().clone());
    for (const auto& item : model.named_buffers(/*recurse=*/true))
      buffers_.insert(item.key(), item.value().detach().clone());
  }

  /// The stored parameters by name.
  Dict& named_parameters() noexcept { return parameters_; }
  /// The stored parameters by name.
  const Dict& named_parameters() const noexcept { return parameters_; }
  /// The stored buffers by name.
  Dict& named_buffers() noexcept { return buffers_; }
  /// The stored buffers by name.
  const Dict& named_buffers() const noexcept { return buffers_; }
  /// Whether nothing is stored.
  bool empty() const noexcept { return parameters_.is_empty() && buffers_.is_empty(); }

  /// Exchanges the stored tensors with the model's same-named parameters and buffers (values only: the
  /// model's tensors stay the same objects, so optimizers keep referring to them).
  /// Composer counterpart: `EMAParameters.swap_params`.
  void swap_params(torch::nn::Module& model) {
    at::NoGradGuard no_grad;
    auto swap = [](const at::Tensor& target, at::Tensor& stored) {
      at::Tensor previous = target.detach().clone();
      target.detach().copy_(stored);
      stored = std::move(previous);
    };
    for (const auto& item : model.named_parameters(true))
      if (auto* stored = parameters_.find(item.key())) swap(item.value(), *stored);
    for (const auto& item : model.named_buffers(true))
      if (auto* stored = buffers_.find(item.key())) swap(item.value(), *stored);
  }

  /// Copies the stored tensors into the model's same-named parameters and buffers. Composer counterpart:
  /// `EMAParameters.transfer_ema_params`.
  void transfer_ema_params(torch::nn::Module& model) const {
    at::NoGradGuard no_grad;
    for (const auto& item : model.named_parameters(true))
      if (const auto* stored = parameters_.find(item.key())) item.value().detach().copy_(*stored);
    for (const auto& item : model.named_buffers(true))
      if (const auto* stored = buffers_.find(item.key())) item.value().detach().copy_(*stored);
  }

  /// Moves each stored tensor to the device of the model's same-named tensor. Composer counterpart:
  /// `EMAParameters.move_params_to_device`.
  void move_params_to_device(const torch::nn::Module& model) {
    for (const auto& item : model.named_parameters(true))
      if (auto* stored = parameters_.find(item.key())) *stored = stored->to(item.value().device());
    for (const auto& item : model.named_buffers(true))
      if (auto* stored = buffers_.find(item.key())) *stored = stored->to(item.value().device());
  }

 private:
  Dict parameters_;
  Dict buffers_;
};

namespace detail {
inline void check_smoothing(double smoothing) {
  if (!(smoothing >= 0.0 && smoothing <= 1.0))
    fail("compute_ema smoothing must be in [0, 1], got " + num(smoothing));
}
// ema ← s·ema + (1 − s)·value, written in place (an integer ema tensor truncates the result, as copy_ does).
inline void ema_update(at::Tensor& ema, const at::Tensor& value, double smoothing) {
  ema.copy_(ema * smoothing + value.detach() * (1.0 - smoothing));
}
}  // namespace detail

/// Moves `ema_model`'s weights toward `model`'s in place: for every parameter and buffer of `model` whose
/// name is a parameter or buffer of `ema_model`, ema ← smoothing·ema + (1 − smoothing)·model. Parameters
/// and buffers are matched by their dotted names; names only one of the models has are left alone.
/// \throws std::invalid_argument for a smoothing outside [0, 1].
/// Composer counterpart: `composer.functional.compute_ema(model, ema_model, smoothing=0.99)`.
inline void compute_ema(const torch::nn::Module& model, torch::nn::Module& ema_model, double smoothing = 0.99) {
  detail::check_smoothing(smoothing);
  at::NoGradGuard no_grad;
  torch::OrderedDict<std::string, at::Tensor> ema_tensors;
  for (const auto& item : ema_model.named_parameters(true)) ema_tensors.insert(item.key(), item.value().detach());
  for (const auto& item : ema_model.named_buffers(true))
    if (!ema_tensors.contains(item.key())) ema_tensors.insert(item.key(), item.value().detach());
  for (const auto& item : model.named_parameters(true))
    if (auto* ema = ema_tensors.find(item.key())) detail::ema_update(*ema, item.value(), smoothing);
  for (const auto& item : model.named_buffers(true))
    if (auto* ema = ema_tensors.find(item.key())) detail::ema_update(*ema, item.value(), smoothing);
}

/// The same update into an `EMAParameters` storage: each stored parameter and buffer named like one of
/// `model`'s parameters or buffers moves toward it.
/// \throws std::invalid_argument for a smoothing outside [0, 1].
/// Composer counterpart: `composer.functional.compute_ema(model, ema_parameters, smoothing)`.
inline void compute_ema(const torch::nn::Module& model, EMAParameters& ema_model, double smoothing = 0.99) {
  detail::check_smoothing(smoothing);
  at::NoGradGuard no_grad;
  auto update = [&](const std::string& name, const at::Tensor& value) {
    if (auto* ema = ema_model.named_parameters().find(name)) detail::ema_update(*ema, value, smoothing);
    if (auto* ema = ema_model.named_buffers().find(name)) detail::ema_update(*ema, value, smoothing);
  };
  for (const auto& item : model.named_parameters(true)) update(item.key(), item.value());
  for (const auto& item : model.named_buffers(true)) update(item.key(), item.value());
}

}  // namespace composer::functional
