#pragma once
/// \file
/// What the functional forms of the model-surgery methods share: finding the modules an earlier application
/// already wrapped, so that applying a method twice does not wrap them again.

#include <unordered_set>

#include <torch/nn/module.h>

#include <composer/surgery/module_surgery.hpp>

namespace composer::functional::detail {

/// Every module of type `Inner` strictly below a module of type `Wrapper` in `root`: the ones a previous surgery
/// already wrapped. Composer counterpart: the `_already_blurpooled` / `_already_squeeze_excited` marks.
template <class Wrapper, class Inner>
std::unordered_set<const torch::nn::Module*> wrapped_modules(torch::nn::Module& root) {
  std::unordered_set<const torch::nn::Module*> inside;
  for (const auto& found : surgery::find_modules<Wrapper>(root))
    for (const auto& m : found.module->modules(/*include_self=*/false))
      if (dynamic_cast<const Inner*>(m.get()) != nullptr) inside.insert(m.get());
  return inside;
}

}  // namespace composer::functional::detail
