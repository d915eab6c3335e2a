#pragma once
/// \file
/// composer::surgery::update_params_in_optimizer — moves optimizers onto a changed parameter set after surgery.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>

namespace composer::surgery {

namespace detail {

inline bool same_tensor(const at::Tensor& a, const at::Tensor& b) noexcept {
  return a.unsafeGetTensorImpl() == b.unsafeGetTensorImpl();
}
inline bool contains(const std::vector<at::Tensor>& list, const at::Tensor& t) noexcept {
  return std::any_of(list.begin(), list.end(), [&](const at::Tensor& x) { return same_tensor(x, t); });
}
/// `first` minus `second`, keeping `first`'s order (optimizer state follows parameter order on resume).
inline std::vector<at::Tensor> ordered_difference(const std::vector<at::Tensor>& first,
                                                  const std::vector<at::Tensor>& second) {
  std::vector<at::Tensor> out;
  for (const auto& t : first)
    if (!contains(second, t) && !contains(out, t)) out.push_back(t);
  return out;
}
/// Removes `param`'s per-parameter state (momentum, Adam moments) from `optimizer`. LibTorch keys that state by
/// the parameter's TensorImpl: as its address printed to a string in 1.x, as the address itself in 2.x.
template <class OptimizerT>
void erase_state(OptimizerT& optimizer, const at::Tensor& param) {
  auto& state = optimizer.state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << static_cast<const void*>(param.unsafeGetTensorImpl());
    state.erase(key.str());
  } else {
    state.erase(static_cast<Key>(param.unsafeGetTensorImpl()));
  }
}
/// Index of the parameter group of `optimizer` holding `param`, or -1.
inline int find_group(torch::optim::Optimizer& optimizer, const at::Tensor& param) {
  auto& groups = optimizer.param_groups();
  for (std::size_t g = 0; g < groups.size(); ++g)
    if (contains(groups[g].params(), param)) return static_cast<int>(g);
  return -1;
}

}  // namespace detail

/// Removes `old_params` that are not in `new_params` from the optimizers (with their state) and adds the
/// `new_params` that were not in `old_params` to the parameter group that held the removed ones. Used after a
/// module is replaced so that the optimizer trains the new module's parameters and forgets the old module's.
/// Composer counterpart: `composer.utils.module_surgery.update_params_in_optimizer` (which supports a single
/// optimizer; here the optimizer holding the removed parameters is found among several).
/// \throws std::invalid_argument if the removed parameters are spread over several groups or optimizers while
///         parameters must be added, or if parameters must be added but no optimizer held any removed one and
///         the target group is ambiguous (more than one optimizer or group).
inline void update_params_in_optimizer(const std::vector<at::Tensor>& old_params,
                                       const std::vector<at::Tensor>& new_params,
                                       const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers) {
  const std::vector<at::Tensor> removed = detail::ordered_difference(old_params, new_params);
  const std::vector<at::Tensor> added = detail::ordered_difference(new_params, old_params);
  if (removed.empty() && added.empty()) return;

  // Where the removed parameters live: (optimizer, group) pairs.
  int target_optimizer = -1;
  int target_group = -1;
  bool spread = false;
  for (std::size_t o = 0; o < optimizers.size(); ++o) {
    if (!optimizers[o]) throw std::invalid_argument("composer: surgery was given an empty optimizer pointer");
    for (const auto& p : removed) {
      const int g = detail::find_group(*optimizers[o], p);
      if (g < 0) continue;
      if (target_optimizer < 0) {
        target_optimizer = static_cast<int>(o);
        target_group = g;
      } else if (target_optimizer != static_cast<int>(o) || target_group != g) {
        spread = true;
      }
    }
  }
  if (spread && !added.empty())
    throw std::invalid_argument(
        "composer: the replaced module's parameters are in several optimizer parameter groups, so it is unclear "
        "where to add the new module's " + std::to_string(added.size()) + " parameter(s)");
  if (target_optimizer < 0 && !added.empty()) {
    if (optimizers.size() == 1 && optimizers[0]->param_groups().size() == 1) {
      target_optimizer = 0;
      target_group = 0;
    } else if (!optimizers.empty()) {
      throw std::invalid_argument(
          "composer: no optimizer held the replaced module's parameters, and with " +
          std::to_string(optimizers.size()) +
          " optimizer(s) it is unclear which parameter group should train the new module's " +
          std::to_string(added.size()) + " parameter(s)");
    }
  }

  for (const auto& optimizer : optimizers) {
    for (auto& group : optimizer->param_groups()) {
      auto& params = group.params();
      const auto before = params.size();
      params.erase(std::remove_if(params.begin(), params.end(),
                                  [&](const at::Tensor& p) { return detail::contains(removed, p); }),
                   params.end());
      if (params.size() != before)
        for (const auto& p : removed) detail::erase_state(*optimizer, p);
    }
  }
  if (target_optimizer >= 0) {
    auto& params = optimizers[static_cast<std::size_t>(target_optimizer)]
                       ->param_groups()[static_cast<std::size_t>(target_group)]
                       .params();
    params.insert(params.end(), added.begin(), added.end());
  }
}

}  // namespace composer::surgery
