#pragma once
/// \file
/// Finding, counting and replacing modules of a type in a LibTorch module tree. Composer counterpart:
/// `composer.utils.module_surgery` (`replace_module_classes`, `count_module_instances`).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/optim/optimizer.h>

#include <composer/surgery/optimizer_surgery.hpp>
#include <composer/surgery/surgical_module.hpp>

namespace composer::surgery {

/// A module found in a tree: its dotted path from the root (as in `named_modules()`) and the module.
template <class Impl>
struct FoundModule {
  std::string path;
  std::shared_ptr<Impl> module;
};

/// One replacement made by surgery: where, the module taken out and the module put in.
struct ReplacedModule {
  std::string path;                                 ///< dotted path of (the first parent's) slot
  std::shared_ptr<torch::nn::Module> original;      ///< the module taken out
  std::shared_ptr<torch::nn::Module> replacement;   ///< the module put in
};

/// What a surgery did. Composer counterpart: the `{original: replacement}` dict `replace_module_classes` returns.
struct SurgeryReport {
  std::vector<ReplacedModule> replaced;  ///< in tree order (pre-order, as `named_modules()`)

  /// How many modules were replaced.
  [[nodiscard]] std::size_t count() const noexcept { return replaced.size(); }
  /// Appends another report's replacements (to report several surgeries as one).
  SurgeryReport& operator+=(const SurgeryReport& other) {
    replaced.insert(replaced.end(), other.replaced.begin(), other.replaced.end());
    return *this;
  }
};

namespace detail {

/// Every distinct module below `root` (not `root` itself), pre-order, with every (parent, name) it is registered
/// under: a module shared by two parents is visited once and replaced in both.
struct TreeNode {
  std::shared_ptr<torch::nn::Module> module;
  std::string path;
  std::vector<std::pair<torch::nn::Module*, std::string>> parents;
};

inline void collect(torch::nn::Module& parent, const std::string& prefix, std::vector<TreeNode>& nodes) {
  for (const auto& item : parent.named_children()) {
    const std::shared_ptr<torch::nn::Module>& child = item.value();
    bool seen = false;
    for (auto& node : nodes) {
      if (node.module == child) {
        node.parents.emplace_back(&parent, item.key());
        seen = true;
        break;
      }
    }
    if (seen) continue;
    std::string path = prefix.empty() ? item.key() : prefix + "." + item.key();
    nodes.push_back(TreeNode{child, path, {{&parent, item.key()}}});
    collect(*child, path, nodes);  // (a copy: the recursion may reallocate `nodes`)
  }
}

inline std::vector<TreeNode> tree_of(torch::nn::Module& root) {
  std::vector<TreeNode> nodes;
  collect(root, "", nodes);
  return nodes;
}

/// The device of a module's first parameter or buffer, if it has any. Composer counterpart: `_infer_device`.
inline std::optional<c10::Device> infer_device(const torch::nn::Module& module) {
  for (const auto& p : module.parameters()) return p.device();
  for (const auto& b : module.buffers()) return b.device();
  return std::nullopt;
}

inline std::string type_name_of(const torch::nn::Module& m) {
  const std::string& n = m.name();
  return n.empty() ? std::string(typeid(m).name()) : n;
}

}  // namespace detail

/// Every module of type `Impl` (or derived from it) below `root`, pre-order, each distinct module once, e.g.
/// `find_modules<torch::nn::Conv2dImpl>(*model)`. The root itself is not included.
template <class Impl>
[[nodiscard]] std::vector<FoundModule<Impl>> find_modules(torch::nn::Module& root) {
  static_assert(std::is_base_of_v<torch::nn::Module, Impl>,
                "composer::surgery::find_modules<Impl>: Impl must be a module implementation type such as "
                "torch::nn::Conv2dImpl (not the holder torch::nn::Conv2d)");
  std::vector<FoundModule<Impl>> found;
  for (auto& node : detail::tree_of(root))
    if (auto typed = std::dynamic_pointer_cast<Impl>(node.module)) found.push_back({node.path, std::move(typed)});
  return found;
}

/// How many distinct modules of any of the types `Impls...` (or derived from one) are below `root`.
/// Composer counterpart: `composer.utils.module_surgery.count_module_instances`.
template <class... Impls>
[[nodiscard]] std::size_t count_module_instances(torch::nn::Module& root) {
  static_assert(sizeof...(Impls) > 0, "composer::surgery::count_module_instances needs at least one module type");
  static_assert((std::is_base_of_v<torch::nn::Module, Impls> && ...),
                "composer::surgery::count_module_instances<Impls...>: each type must be a module implementation "
                "type such as torch::nn::Conv2dImpl (not the holder torch::nn::Conv2d)");
  std::size_t n = 0;
  for (auto& node : detail::tree_of(root))
    if (((std::dynamic_pointer_cast<Impls>(node.module) != nullptr) || ...)) ++n;
  return n;
}

/// Replaces every module of type `Impl` (or derived) below `root` for which `factory(module, index)` returns a
/// non-empty `torch::nn::AnyModule`; `index` counts the modules of that type seen so far (pre-order). The
/// replacement is moved to the original's device (or the model's, for a module without tensors) and set to its
/// training mode; replacements are not searched again. With `optimizers`, the replaced modules' parameters
/// are swapped for the new modules' in the optimizers' parameter groups (`update_params_in_optimizer`).
/// Every parent of a replaced module must be a `SurgicalModule` holding it in a slot; this is checked for all
/// replacements before any is made, so a failed surgery leaves the model unchanged. Composer counterpart:
/// `composer.utils.module_surgery.replace_module_classes(module, {Impl: factory}, optimizers)`.
/// \throws std::invalid_argument if a parent cannot take a replacement (naming the path and the parent).
template <class Impl, class Factory>
SurgeryReport replace_module_classes(torch::nn::Module& root, Factory&& factory,
                                     const std::vector<std::shared_ptr<torch::optim::Optimizer>>& optimizers = {}) {
  static_assert(std::is_base_of_v<torch::nn::Module, Impl>,
                "composer::surgery::replace_module_classes<Impl>: Impl must be a module implementation type such "
                "as torch::nn::Conv2dImpl (not the holder torch::nn::Conv2d)");
  static_assert(std::is_invocable_r_v<torch::nn::AnyModule, Factory&, Impl&, std::int64_t>,
                "composer::surgery::replace_module_classes: the factory must be callable as "
                "factory(Impl& module, int64_t index) and return a torch::nn::AnyModule (empty to keep the module)");
  struct Planned {
    detail::TreeNode* node;
    torch::nn::AnyModule replacement;
  };
  std::vector<detail::TreeNode> nodes = detail::tree_of(root);
  const std::optional<c10::Device> model_device = detail::infer_device(root);
  std::vector<Planned> plan;
  std::int64_t index = 0;
  for (auto& node : nodes) {
    auto typed = std::dynamic_pointer_cast<Impl>(node.module);
    if (!typed) continue;
    torch::nn::AnyModule replacement = factory(*typed, index++);
    if (replacement.is_empty()) continue;
    for (const auto& [parent, name] : node.parents) {
      auto* surgical = dynamic_cast<SurgicalModule*>(parent);
      if (surgical == nullptr || !surgical->has_slot(name))
        throw std::invalid_argument(
            "composer: cannot replace '" + node.path + "': its parent " + detail::type_name_of(*parent) +
            " does not hold it in a replaceable slot (derive the parent from composer::surgery::SurgicalModule "
            "and register the child with register_slot); the model was not changed");
    }
    plan.push_back(Planned{&node, std::move(replacement)});
  }

  SurgeryReport report;
  for (auto& step : plan) {
    const auto& original = step.node->module;
    const std::shared_ptr<torch::nn::Module> fresh = step.replacement.ptr();
    if (const auto device = detail::infer_device(*original) ? detail::infer_device(*original) : model_device)
      fresh->to(*device);
    fresh->train(original->is_training());
    for (const auto& [parent, name] : step.node->parents)
      dynamic_cast<SurgicalModule*>(parent)->replace_slot(name, step.replacement);
    report.replaced.push_back(ReplacedModule{step.node->path, original, fresh});
  }
  if (!optimizers.empty())
    for (const auto& r : report.replaced)
      update_params_in_optimizer(r.original->parameters(), r.replacement->parameters(), optimizers);
  return report;
}

}  // namespace composer::surgery
