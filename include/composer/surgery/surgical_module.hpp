#pragma once
/// \file
/// composer::surgery::SurgicalModule — a LibTorch module whose children can be swapped after construction.
///
/// LibTorch's `Module::replace_module` changes a module's registry (what `parameters()`, `named_modules()`,
/// `to()` and checkpoints see) but not the typed member a parent's `forward` calls, so a replaced child would
/// keep being run. A SurgicalModule registers each replaceable child as a *slot* and calls it through the slot
/// (`call(slot, x)`), so that replacing the child (`replace_slot`) changes both the registry and the computation.
/// Composer counterpart: none needed in Python, where `setattr(parent, name, new_module)` does both.

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

namespace composer::surgery {

/// A module whose replaceable children are called through slots. Derive from it, register each child that
/// surgery may replace with `register_slot`, and call it with `call` in `forward`:
///
///     struct BlockImpl : composer::surgery::SurgicalModule {
///       BlockImpl() { conv_ = register_slot("conv", torch::nn::Conv2d(3, 8, 3)); }
///       at::Tensor forward(const at::Tensor& x) { return call(conv_, x); }
///       Slot conv_;
///     };
///
/// Any child whose `forward` takes and returns one tensor can fill a slot, and so can its replacement.
class SurgicalModule : public torch::nn::Module {
 public:
  /// A handle to one slot of this module (cheap to copy; valid for the module that returned it).
  class Slot {
   public:
    Slot() = default;
    /// Whether the handle refers to a slot.
    explicit operator bool() const noexcept { return index_ != kNone; }

   private:
    friend class SurgicalModule;
    static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    explicit Slot(std::size_t index) : index_(index) {}
    std::size_t index_ = kNone;
  };

  using torch::nn::Module::Module;

  /// Whether `name` is one of this module's slots (a direct child registered with `register_slot`).
  [[nodiscard]] bool has_slot(const std::string& name) const noexcept { return find(name) != Slot::kNone; }

  /// The names of this module's slots, in registration order.
  [[nodiscard]] std::vector<std::string> slot_names() const {
    std::vector<std::string> names;
    names.reserve(slots_.size());
    for (const auto& entry : slots_) names.push_back(entry.name);
    return names;
  }

  /// The module currently in slot `name`. \throws std::invalid_argument if there is no such slot.
  [[nodiscard]] std::shared_ptr<torch::nn::Module> slot_module(const std::string& name) const {
    return slots_[require(name)].module.ptr();
  }

  /// Puts `replacement` into slot `name`: it becomes the registered child of that name (so `parameters()`,
  /// `named_modules()`, `to()` and checkpoints see it) and the module `call` runs. Composer counterpart:
  /// `setattr(parent, name, replacement)` inside `module_surgery.replace_module_classes`.
  /// \throws std::invalid_argument if there is no such slot or `replacement` is empty.
  void replace_slot(const std::string& name, torch::nn::AnyModule replacement) {
    const std::size_t index = require(name);
    if (replacement.is_empty())
      throw std::invalid_argument("composer: cannot put an empty module into slot '" + name + "' of " +
                                  this->name());
    replace_module(name, replacement.ptr());
    slots_[index].module = std::move(replacement);
  }

 protected:
  /// Registers `module` (a module holder such as `torch::nn::Conv2d`, or a `shared_ptr` to a module with a
  /// one-tensor `forward`) as child `name` and returns the slot that runs it. \throws std::invalid_argument if
  /// `name` is already a slot.
  template <class ModuleHolder>
  Slot register_slot(const std::string& name, ModuleHolder module) {
    if (has_slot(name))
      throw std::invalid_argument("composer: slot '" + name + "' is registered twice in " + this->name());
    torch::nn::AnyModule any(std::move(module));
    register_module(name, any.ptr());
    slots_.push_back(Entry{name, std::move(any)});
    return Slot(slots_.size() - 1);
  }

  /// Runs the module in `slot` on `input`. \throws std::logic_error for an empty slot handle.
  at::Tensor call(const Slot& slot, const at::Tensor& input) {
    if (!slot || slot.index_ >= slots_.size())
      throw std::logic_error("composer: " + this->name() + " called a slot it did not register");
    return slots_[slot.index_].module.forward(input);
  }

  /// The module in `slot` as `Impl` (e.g. `torch::nn::Conv2dImpl`), or null if it holds another type now.
  template <class Impl>
  std::shared_ptr<Impl> slot_as(const Slot& slot) const {
    if (!slot || slot.index_ >= slots_.size()) return nullptr;
    return std::dynamic_pointer_cast<Impl>(slots_[slot.index_].module.ptr());
  }

 private:
  struct Entry {
    std::string name;
    torch::nn::AnyModule module;
  };

  std::size_t find(const std::string& name) const noexcept {
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].name == name) return i;
    return Slot::kNone;
  }
  std::size_t require(const std::string& name) const {
    const std::size_t index = find(name);
    if (index == Slot::kNone)
      throw std::invalid_argument("composer: " + this->name() + " has no slot named '" + name + "'");
    return index;
  }

  std::vector<Entry> slots_;
};

}  // namespace composer::surgery
