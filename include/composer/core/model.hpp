#pragma once
/// \file
/// composer::Model — any LibTorch module with a `forward(Tensor)`, held by type-erased handle, plus its loss.

#include <functional>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace composer {

/// The loss used when a Model is given none: cross entropy over class dimension 1, accepting class-index
/// targets (int64 [N]) and probability targets (float [N, C]). Composer counterpart:
/// `composer.loss.soft_cross_entropy` with mean reduction.
inline at::Tensor cross_entropy_loss(const at::Tensor& outputs, const at::Tensor& targets) {
  if (outputs.dim() < 2)
    throw std::invalid_argument("composer: cross entropy needs outputs of shape [N, C, ...], got " +
                                std::to_string(outputs.dim()) + " dimension(s)");
  if (targets.size(0) != outputs.size(0))
    throw std::invalid_argument("composer: cross entropy got " + std::to_string(outputs.size(0)) + " outputs but " +
                                std::to_string(targets.size(0)) + " targets");
  if (at::isFloatingType(targets.scalar_type())) {
    if (targets.sizes() != outputs.sizes())
      throw std::invalid_argument("composer: probability targets must have the outputs' shape");
    return -(targets * at::log_softmax(outputs, 1)).sum(1).mean();
  }
  return at::cross_entropy_loss(outputs, targets);
}

/// True for a LibTorch module holder (`torch::nn::Linear`, a `TORCH_MODULE` type) or a `std::shared_ptr` to a
/// module, whose `forward` takes one tensor and returns one.
template <class M>
concept TensorModule = requires(M m, const at::Tensor& x) {
  { m.ptr() } -> std::convertible_to<std::shared_ptr<torch::nn::Module>>;
  { m->forward(x) } -> std::convertible_to<at::Tensor>;
} || requires(M m, const at::Tensor& x) {
  { std::shared_ptr<torch::nn::Module>(m) };
  { m->forward(x) } -> std::convertible_to<at::Tensor>;
};

/// A model the trainer can run: the module (for parameters, modes, devices and checkpoints), its forward
/// function and its loss. Built from any LibTorch module holder; the forward call goes through one
/// type-erased function object, which is what lets `Trainer<Algs...>` take any model without naming its type.
/// Composer counterpart: `composer.models.ComposerModel` (`forward`, `loss`).
class Model {
 public:
  /// The loss signature: `(outputs, targets) -> scalar tensor`.
  using LossFunction = std::function<at::Tensor(const at::Tensor& outputs, const at::Tensor& targets)>;

  /// An empty model (no module).
  Model() = default;

  /// Wraps a module holder (or `shared_ptr` to a module) and a loss (cross entropy by default).
  template <TensorModule M>
  Model(M module, LossFunction loss = cross_entropy_loss)  // NOLINT(google-explicit-constructor)
      : module_(module_pointer(module)),
        forward_([module](const at::Tensor& x) mutable -> at::Tensor { return module->forward(x); }),
        loss_(std::move(loss)) {
    if (!module_) throw std::invalid_argument("composer: Model was given an empty module holder");
    if (!loss_) throw std::invalid_argument("composer: Model was given an empty loss function");
  }

  /// Runs the module's forward pass.
  at::Tensor forward(const at::Tensor& inputs) const {
    require();
    return forward_(inputs);
  }
  /// Runs the module's forward pass.
  at::Tensor operator()(const at::Tensor& inputs) const { return forward(inputs); }
  /// The loss of `outputs` against `targets`. Composer counterpart: `ComposerModel.loss`.
  at::Tensor loss(const at::Tensor& outputs, const at::Tensor& targets) const {
    require();
    return loss_(outputs, targets);
  }
  /// The loss function.
  const LossFunction& loss_function() const noexcept { return loss_; }

  /// The module.
  torch::nn::Module& module() const {
    require();
    return *module_;
  }
  /// Access to the module's members (`model->parameters()`, `model->train(false)`).
  torch::nn::Module* operator->() const {
    require();
    return module_.get();
  }
  /// The shared pointer to the module.
  const std::shared_ptr<torch::nn::Module>& ptr() const noexcept { return module_; }
  /// The module as its concrete type, or null if it is another type.
  template <class Impl>
  std::shared_ptr<Impl> as() const {
    return std::dynamic_pointer_cast<Impl>(module_);
  }
  /// Whether a module is held.
  explicit operator bool() const noexcept { return module_ != nullptr; }

 private:
  template <class M>
  static std::shared_ptr<torch::nn::Module> module_pointer(const M& module) {
    if constexpr (requires { module.ptr(); })
      return module.ptr();
    else
      return std::shared_ptr<torch::nn::Module>(module);
  }
  void require() const {
    if (!module_) throw std::logic_error("composer: the Model holds no module");
  }

  std::shared_ptr<torch::nn::Module> module_;
  std::function<at::Tensor(const at::Tensor&)> forward_;
  LossFunction loss_;
};

}  // namespace composer
