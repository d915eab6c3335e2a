// Small models built from surgery slots, shared by the module tests and the layer-method tests: an MLP with a
// layer norm and a dropout, a conv net with a group norm, and a check that an optimizer trains a model after its
// surgery (include after LibTorch).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <composer/models/resnet.hpp>
#include <composer/surgery.hpp>

#include <doctest/doctest.h>

namespace composer_test {

// linear(6, 8) -> layer norm -> dropout(0.5) -> linear(8, 3), every layer in a slot.
struct MlpImpl : composer::surgery::SurgicalModule {
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

// conv(1 -> 4, 3x3) -> group norm (2 groups) -> spatial mean -> linear(4, 3), every layer in a slot.
struct GroupNetImpl : composer::surgery::SurgicalModule {
  GroupNetImpl() {
    conv_ = register_slot("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    norm_ = register_slot("norm", torch::nn::GroupNorm(2, 4));
    fc_ = register_slot("fc", torch::nn::Linear(4, 3));
  }
  at::Tensor forward(const at::Tensor& x) { return call(fc_, call(norm_, call(conv_, x)).mean({2, 3})); }
  Slot conv_, norm_, fc_;
};
TORCH_MODULE(GroupNet);

// Plain SGD (lr 0.1) over the module's parameters.
inline std::shared_ptr<torch::optim::SGD> make_sgd(torch::nn::Module& m) {
  return std::make_shared<torch::optim::SGD>(m.parameters(), torch::optim::SGDOptions(0.1));
}

// Whether `list` holds the tensor `t` itself (not a copy).
inline bool holds(const std::vector<at::Tensor>& list, const at::Tensor& t) {
  for (const auto& x : list)
    if (x.unsafeGetTensorImpl() == t.unsafeGetTensorImpl()) return true;
  return false;
}

// The optimizer holds exactly the model's parameters, and one step on the model's loss changes them. The model is
// a ResNet, an Mlp or a GroupNet (another model leaves the output undefined, and its backward throws).
inline void check_optimizer_trains(torch::nn::Module& model, torch::optim::Optimizer& opt, const at::Tensor& x) {
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

}  // namespace composer_test
