#pragma once
/// \file
/// composer::algorithms::SAM — sharpness-aware minimization (Foret et al. 2020, arXiv:2010.01412): the
/// optimizer steps with the gradient taken at the worst nearby point w + ρ·g/‖g‖.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <composer/core/errors.hpp>
#include <composer/core/event.hpp>
#include <composer/core/precision.hpp>
#include <composer/core/state.hpp>

namespace composer::algorithms {

/// An optimizer that wraps another with sharpness-aware minimization. `step(closure)` (the closure runs a
/// full forward and backward pass and returns the loss): on every `interval`-th call, runs the closure at
/// w, moves each parameter with a gradient by e = g·ρ/(‖g‖ + ε), ‖g‖ the L2 norm of all gradients together,
/// runs the closure again at w + e, moves the parameters back to w and steps the base optimizer with the
/// gradients of the second pass; on the other calls, runs the closure once and steps the base optimizer.
/// Returns the loss of the first pass. If the second pass throws, the weights are restored before the error
/// propagates.
///
/// The wrapper keeps its own copy of the base optimizer's parameter groups (LibTorch optimizers own their
/// groups): change learning rates and parameter lists on the wrapper, which copies its groups (parameters and
/// options) into the base optimizer before every base step. `save`/`load` delegate to the base optimizer, so
/// checkpoints are those of the base optimizer. Composer counterpart:
/// `composer.algorithms.sam.SAMOptimizer(base_optimizer, rho=0.05, epsilon=1e-12, interval=1)`.
class SAMOptimizer : public torch::optim::Optimizer {
 public:
  /// Wraps `base_optimizer`.
  /// \throws std::invalid_argument for a null base optimizer, a negative or NaN rho or epsilon, or an
  ///         interval below 1.
  explicit SAMOptimizer(std::shared_ptr<torch::optim::Optimizer> base_optimizer, double rho = 0.05,
                        double epsilon = 1.0e-12, std::int64_t interval = 1)
      : torch::optim::Optimizer(checked(base_optimizer, rho, epsilon, interval).param_groups(),
                                checked(base_optimizer, rho, epsilon, interval).defaults().clone()),
        base_(std::move(base_optimizer)), rho_(rho), epsilon_(epsilon), interval_(interval) {}

  /// One SAM step (see the class comment).
  /// \throws std::invalid_argument without a closure.
  at::Tensor step(LossClosure closure = nullptr) override {
    if (!closure)
      throw std::invalid_argument(
          "composer: SAMOptimizer::step needs a closure that runs the forward and backward pass (the Trainer "
          "passes one when it has a single optimizer and no fp16 loss scaling)");
    at::Tensor loss;
    if ((global_step_ + 1) % interval_ == 0) {
      loss = run(closure);
      auto perturbation = perturb();
      try {
        run(closure);
      } catch (...) {
        restore(perturbation);
        throw;
      }
      restore(perturbation);
    } else {
      loss = run(closure);
    }
    sync_base();
    base_->step();
    ++global_step_;
    return loss;
  }

  /// Saves the base optimizer's state.
  void save(torch::serialize::OutputArchive& archive) const override { base_->save(archive); }

  /// Loads the base optimizer's state, then takes over its group options.
  void load(torch::serialize::InputArchive& archive) override {
    base_->load(archive);
    auto& theirs = base_->param_groups();
    for (std::size_t i = 0; i < param_groups_.size() && i < theirs.size(); ++i)
      param_groups_[i].set_options(theirs[i].options().clone());
  }

  /// The wrapped optimizer.
  const std::shared_ptr<torch::optim::Optimizer>& base_optimizer() const noexcept { return base_; }
  /// Number of completed steps (sharpness-aware or not). Composer counterpart: `SAMOptimizer.global_step`.
  std::int64_t global_step() const noexcept { return global_step_; }
  /// Sets the step count (used when resuming from a checkpoint).
  void set_global_step(std::int64_t step) noexcept { global_step_ = step; }
  /// The neighbourhood size ρ.
  double rho() const noexcept { return rho_; }
  /// The term added to the gradient norm.
  double epsilon() const noexcept { return epsilon_; }
  /// Every how many steps the sharpness-aware two-pass step runs.
  std::int64_t interval() const noexcept { return interval_; }

 private:
  static torch::optim::Optimizer& checked(const std::shared_ptr<torch::optim::Optimizer>& base, double rho,
                                          double epsilon, std::int64_t interval) {
    using checks::fail;
    using checks::num;
    if (!base) fail("SAMOptimizer needs a base optimizer");
    if (!(rho >= 0.0)) fail("SAM rho must be non-negative, got " + num(rho));
    if (!(epsilon >= 0.0)) fail("SAM epsilon must be non-negative, got " + num(epsilon));
    if (interval < 1) fail("SAM interval must be at least 1, got " + std::to_string(interval));
    return *base;
  }

  static at::Tensor run(const LossClosure& closure) {
    at::AutoGradMode enable_grad(true);
    return closure();
  }

  // Moves every parameter that has a gradient to w + e and returns the (parameter, e) pairs.
  std::vector<std::pair<at::Tensor, at::Tensor>> perturb() {
    at::NoGradGuard no_grad;
    std::vector<std::pair<at::Tensor, at::Tensor>> moved;
    std::vector<at::Tensor> norms;
    for (const auto& group : param_groups_)
      for (const auto& p : group.params())
        if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad(), 2));
    if (norms.empty()) return moved;
    const at::Tensor grad_norm = at::linalg_vector_norm(at::stack(norms), 2);
    const at::Tensor scale = rho_ / (grad_norm + epsilon_);
    for (const auto& group : param_groups_) {
      for (const auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        at::Tensor e = p.grad() * scale.to(p.options());
        p.add_(e);
        moved.emplace_back(p, std::move(e));
      }
    }
    return moved;
  }

  static void restore(const std::vector<std::pair<at::Tensor, at::Tensor>>& moved) {
    at::NoGradGuard no_grad;
    for (const auto& [p, e] : moved) p.sub_(e);
  }

  // Makes the base optimizer's groups equal to this wrapper's (parameters and options).
  void sync_base() {
    auto& theirs = base_->param_groups();
    while (theirs.size() > param_groups_.size()) theirs.pop_back();
    for (std::size_t i = 0; i < param_groups_.size(); ++i) {
      if (i < theirs.size()) {
        theirs[i].params() = param_groups_[i].params();
        theirs[i].set_options(param_groups_[i].options().clone());
      } else {
        base_->add_param_group(param_groups_[i]);
      }
    }
  }

  std::shared_ptr<torch::optim::Optimizer> base_;
  double rho_;
  double epsilon_;
  std::int64_t interval_;
  std::int64_t global_step_ = 0;
};

/// Settings of `SAM`, with Composer's defaults.
struct SAMOptions {
  /// Neighbourhood size ρ, ≥ 0.
  double rho = 0.05;
  /// Added to the gradient norm for numerical stability, ≥ 0.
  double epsilon = 1.0e-12;
  /// The two-pass step runs on every `interval`-th optimizer step, ≥ 1.
  std::int64_t interval = 1;
};

/// SAM: at `AFTER_LOAD` (after a checkpoint named by `load_path` was restored into the optimizer) replaces
/// `state.optimizers[0]` by a `SAMOptimizer` wrapping it. The Trainer then calls its `step(closure)`, so a
/// sharpness-aware step runs `BEFORE_TRAIN_BATCH` … `AFTER_TRAIN_BATCH` twice. Keeps the step count in
/// checkpoints, so that `interval` > 1 resumes in phase.
/// Composer counterpart: `composer.algorithms.SAM(rho=0.05, epsilon=1e-12, interval=1)`.
class SAM {
 public:
  /// The optimizer is wrapped once the trainer is built and any checkpoint loaded.
  static constexpr EventSet events{Event::AFTER_LOAD};
  /// The name under which checkpoints record this policy.
  static constexpr const char* name = "SAM";

  /// SAM with Composer's defaults.
  SAM() : SAM(SAMOptions{}) {}
  /// SAM with Composer's arguments, in Composer's order.
  /// \throws std::invalid_argument as the options constructor.
  explicit SAM(double rho, double epsilon = 1.0e-12, std::int64_t interval = 1)
      : SAM(SAMOptions{.rho = rho, .epsilon = epsilon, .interval = interval}) {}
  /// SAM with the given options: `SAM({.rho = 0.1, .interval = 2})`.
  /// \throws std::invalid_argument for a negative or NaN rho or epsilon, or an interval below 1.
  explicit SAM(SAMOptions options) : options_(options) {
    using checks::fail;
    using checks::num;
    if (!(options_.rho >= 0.0)) fail("SAM rho must be non-negative, got " + num(options_.rho));
    if (!(options_.epsilon >= 0.0)) fail("SAM epsilon must be non-negative, got " + num(options_.epsilon));
    if (options_.interval < 1) fail("SAM interval must be at least 1, got " + std::to_string(options_.interval));
  }

  /// The settings.
  const SAMOptions& options() const noexcept { return options_; }
  /// The wrapping optimizer, once installed.
  const std::shared_ptr<SAMOptimizer>& optimizer() const noexcept { return optimizer_; }

  /// Wraps the optimizer.
  /// \throws std::invalid_argument unless the state has exactly one optimizer (the Trainer passes a closure
  ///         only then) and a precision other than amp_fp16 (whose loss scaling steps without a closure).
  void apply(auto event, State& state) {
    static_assert(decltype(event)::value == Event::AFTER_LOAD);
    using checks::fail;
    if (state.optimizers.size() != 1)
      fail("SAM needs exactly one optimizer, got " + std::to_string(state.optimizers.size()));
    if (state.precision == Precision::amp_fp16)
      fail("SAM does not support amp_fp16 (its loss scaling steps the optimizer without a closure)");
    optimizer_ = std::make_shared<SAMOptimizer>(state.optimizers.front(), options_.rho, options_.epsilon,
                                                options_.interval);
    optimizer_->set_global_step(pending_global_step_);
    state.optimizers.front() = optimizer_;
  }

  /// Saves the optimizer's step count.
  void save_state(torch::serialize::OutputArchive& archive) const {
    archive.write("global_step", at::tensor(std::vector<std::int64_t>{global_step()}));
  }
  /// Restores the step count (into the optimizer if already wrapped, else for the wrapping).
  void load_state(torch::serialize::InputArchive& archive) {
    at::Tensor step;
    archive.read("global_step", step);
    pending_global_step_ = step.item<std::int64_t>();
    if (optimizer_) optimizer_->set_global_step(pending_global_step_);
  }

  /// The wrapping optimizer's step count (0 before wrapping, or the restored count).
  std::int64_t global_step() const noexcept { return optimizer_ ? optimizer_->global_step() : pending_global_step_; }

 private:
  SAMOptions options_;
  std::shared_ptr<SAMOptimizer> optimizer_;
  std::int64_t pending_global_step_ = 0;
};

}  // namespace composer::algorithms
