#pragma once
/// \file
/// The compile-time plan that fuses the input transforms of a `Trainer`'s algorithms (MixUp, CutMix, CutOut,
/// NormalizeInputs) into one pass over the batch, and the runtime step that executes it.
///
/// A policy takes part by declaring
///
///     using fused_stage = kernels::stage::X;            // the stage that does its work on the inputs
///     static constexpr Event fused_event = Event::...;  // the event at which its eager transform runs
///     kernels::stage::X draw_fused_stage(State&);       // draws the batch's parameters exactly as the eager
///                                                       // transform would, and marks the batch as done
///
/// and a policy that acts between the data loader and the forward pass without touching `state.batch.inputs`
/// says so with `static constexpr bool touches_inputs = false`. The plan (all at compile time, from the
/// Engine's dispatch order) fuses when
///  * at least one algorithm offers a stage, each stage at most once, and the kernel supports every stage;
///  * no other algorithm acts on AFTER_DATALOADER, BATCH_START, BEFORE_TRAIN_BATCH or BEFORE_FORWARD (it could
///    read or change the inputs between the eager transforms);
///  * the eager run order agrees with the kernel's fixed order wherever order matters: CutOut runs before
///    NormalizeInputs (holes are zero before normalisation; as AFTER_* events run algorithms in reverse, that
///    means `Trainer<NormalizeInputs, CutOut>`) and MixUp before CutMix. All other pairs commute (the same holes
///    for every image; mixing weights that sum to one commute with the affine normalisation).
/// At run time it fuses a batch only when that gives the eager result: training on the CPU, an [N, C, H, W] CPU batch of float32, or of
/// uint8 with NormalizeInputs (which defines the 1/255 scale), trained as one microbatch. Otherwise the eager
/// transforms run as usual. The random parameters are drawn in the eager order, so both paths see the same
/// batches for the same seed.

#include <array>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include <ATen/ATen.h>
#include <boost/hana.hpp>

#include <composer/core/engine.hpp>
#include <composer/core/event.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/state.hpp>
#include <composer/kernels/batch_stages.hpp>
#include <composer/kernels/fused_batch_cpu.hpp>

namespace composer {

/// A policy whose input transform can join the fused batch pass (see the file comment).
template <class P>
concept FusableInputTransform = requires(P& policy, State& state) {
  typename P::fused_stage;
  { P::fused_event } -> std::convertible_to<Event>;
  { policy.draw_fused_stage(state) } -> std::same_as<typename P::fused_stage>;
};

/// A policy that declares it leaves `state.batch.inputs` alone (`static constexpr bool touches_inputs = false`).
template <class P>
concept LeavesInputs = requires {
  { P::touches_inputs } -> std::convertible_to<bool>;
  requires !P::touches_inputs;
};

namespace fusion_detail {

namespace hana = boost::hana;

/// Whether P acts between the data loader and the forward pass, where it could see or change the inputs.
template <class P>
constexpr bool acts_on_inputs_window() {
  for (Event e : {Event::AFTER_DATALOADER, Event::BATCH_START, Event::BEFORE_TRAIN_BATCH, Event::BEFORE_FORWARD})
    if (P::events.contains(e)) return true;
  return false;
}

template <class P>
constexpr bool offers_stage() {
  if constexpr (FusableInputTransform<P>)
    return kernels::detail::is_stage_v<typename P::fused_stage> && P::events.contains(P::fused_event);
  else
    return false;
}

template <class P>
constexpr bool blocks() {
  return role_of<P> == Role::algorithm && acts_on_inputs_window<P>() && !offers_stage<P>() && !LeavesInputs<P>;
}

/// The policy types of an engine type, as a std::tuple.
template <class EngineT>
struct engine_policies;
template <class StateT, class... Policies>
struct engine_policies<BasicEngine<StateT, Policies...>> {
  using type = std::tuple<Policies...>;
};
template <class EngineT, std::size_t I>
using policy_at = std::tuple_element_t<I, typename engine_policies<EngineT>::type>;

/// Positions of the algorithms whose stage replaces their transform at event E, in E's dispatch order.
template <class EngineT, Event E>
constexpr auto offering_in_order() {
  return hana::filter(EngineT::template dispatch_order<E, Role::algorithm>(), [](auto i) {
    using P = policy_at<EngineT, decltype(i)::value>;
    if constexpr (offers_stage<P>())
      return hana::bool_c<P::fused_event == E>;
    else
      return hana::false_c;
  });
}

/// Positions of the policies whose stages are drawn, in the order their eager transforms run.
template <class EngineT>
constexpr auto draw_order() {
  return hana::concat(offering_in_order<EngineT, Event::AFTER_DATALOADER>(),
                      offering_in_order<EngineT, Event::BEFORE_FORWARD>());
}

/// The stage ranks (`Stage::order`) in draw order.
template <class EngineT>
constexpr auto stage_orders() {
  return hana::unpack(draw_order<EngineT>(), [](auto... i) {
    return std::array<int, sizeof...(i)>{policy_at<EngineT, decltype(i)::value>::fused_stage::order...};
  });
}

template <class EngineT>
constexpr bool any_blocker() {
  return hana::unpack(hana::to_tuple(hana::range_c<std::size_t, 0, EngineT::size>), [](auto... i) {
    return (false || ... || blocks<policy_at<EngineT, decltype(i)::value>>());
  });
}

template <std::size_t N>
constexpr int position_of(const std::array<int, N>& orders, int order) {
  for (std::size_t k = 0; k < N; ++k)
    if (orders[k] == order) return static_cast<int>(k);
  return -1;
}

template <std::size_t N>
constexpr bool unique(const std::array<int, N>& orders) {
  for (std::size_t a = 0; a < N; ++a)
    for (std::size_t b = a + 1; b < N; ++b)
      if (orders[a] == orders[b]) return false;
  return true;
}

// Where order matters, the eager order (positions in `orders`) must be the kernel's.
template <std::size_t N>
constexpr bool before_if_both(const std::array<int, N>& orders, int first, int second) {
  const int a = position_of(orders, first), b = position_of(orders, second);
  return a < 0 || b < 0 || a < b;
}

template <class EngineT>
constexpr bool enabled() {
  constexpr auto orders = stage_orders<EngineT>();
  return orders.size() > 0 && unique(orders) && !any_blocker<EngineT>() &&
         before_if_both(orders, kernels::stage::CutOut::order, kernels::stage::Normalize::order) &&
         before_if_both(orders, kernels::stage::MixUp::order, kernels::stage::CutMix::order);
}

// The fused transform over the planned stages, in the kernel's fixed order.
template <class EngineT, bool = enabled<EngineT>()>
struct transform_of {
  using type = std::tuple<>;  // nothing to fuse: an empty placeholder
};
template <class EngineT>
struct transform_of<EngineT, true> {
  static constexpr auto orders = stage_orders<EngineT>();
  template <class S>
  static constexpr auto pick() {
    if constexpr (position_of(orders, S::order) >= 0)
      return hana::make_tuple(hana::type_c<S>);
    else
      return hana::make_tuple();
  }
  static constexpr auto stages = hana::flatten(hana::make_tuple(pick<kernels::stage::MixUp>(), pick<kernels::stage::CutMix>(),
                                                                pick<kernels::stage::CutOut>(), pick<kernels::stage::Normalize>()));
  using type = typename decltype(hana::unpack(stages, hana::template_<kernels::FusedBatchTransform>))::type;
};

}  // namespace fusion_detail

/// The fusion plan of an engine type: whether its algorithms' input transforms fuse, in which eager order their
/// parameters are drawn, and the fused transform type. Composer counterpart: none (Composer runs each method's
/// transform eagerly, one pass over the batch each).
template <class EngineT>
struct FusedInputPlan {
  /// Positions of the policies whose stages are drawn, in the order their eager transforms would run.
  static constexpr auto draw_order = fusion_detail::draw_order<EngineT>();
  /// Whether this engine's input transforms fuse (the static conditions in the file comment).
  static constexpr bool enabled = fusion_detail::enabled<EngineT>();
  /// Whether the pass normalises (NormalizeInputs takes part): it allows uint8 input and sets the output dtype.
  static constexpr bool normalizes =
      fusion_detail::position_of(fusion_detail::stage_orders<EngineT>(), kernels::stage::Normalize::order) >= 0;
  /// The fused transform type over the planned stages (in the kernel's order); an empty tuple when disabled.
  using transform_type = typename fusion_detail::transform_of<EngineT>::type;
};

/// Runs the fused input pass of a trainer's engine: draws each stage's parameters through its policy (in the
/// eager order) and transforms `state.batch.inputs` in one pass into a buffer reused while nobody else holds it.
template <class EngineT>
class FusedInputRunner {
 public:
  /// The plan this runner executes.
  using plan = FusedInputPlan<EngineT>;

  /// Whether the current batch can take the fused path and give the eager result (see the file comment).
  [[nodiscard]] bool applicable(const State& state) const {
    if constexpr (!plan::enabled) {
      return false;
    } else {
      const at::Tensor& x = state.batch.inputs;
      // The CPU pass serves CPU training only: on another device the policies act on the device microbatches
      // (Composer's BEFORE_FORWARD), so that what they keep (permuted targets, masks) lives on that device.
      if (!x.defined() || x.dim() != 4 || !x.device().is_cpu() || !state.device.is_cpu()) return false;
      const bool byte_ok = plan::normalizes && x.scalar_type() == at::kByte;
      if (x.scalar_type() != at::kFloat && !byte_ok) return false;
      if (state.device_train_microbatch_size && *state.device_train_microbatch_size < x.size(0)) return false;
      return true;
    }
  }

  /// Draws the parameters (in the eager order) and transforms the batch's inputs in place of the eager
  /// transforms, into the normaliser's dtype (float32 without one).
  void run(EngineT& engine, State& state) {
    if constexpr (plan::enabled) {
      at::ScalarType out_dtype = at::kFloat;
      boost::hana::for_each(plan::draw_order, [&](auto i) {
        auto& policy = engine.template get<decltype(i)::value>();
        using Stage = typename std::remove_cvref_t<decltype(policy)>::fused_stage;
        transform_.template get<Stage>() = policy.draw_fused_stage(state);
        if constexpr (std::is_same_v<Stage, kernels::stage::Normalize> && requires { policy.dtype(); })
          out_dtype = policy.dtype();
      });
      const at::Tensor& x = state.batch.inputs;
      // The kernel keeps a channels-last input channels-last and writes anything else as contiguous NCHW.
      const auto layout = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)
                              ? at::MemoryFormat::ChannelsLast
                              : at::MemoryFormat::Contiguous;
      // The output buffer is reused while nobody else holds it or a view of it (steady state: the last batch's
      // autograd graph is gone); a callback that kept the last batch's inputs gets to keep them intact.
      const bool reusable = buffer_.defined() && buffer_.sizes() == x.sizes() && buffer_.scalar_type() == out_dtype &&
                            buffer_.is_contiguous(layout) && buffer_.use_count() == 1 &&
                            buffer_.storage().use_count() == 1;
      if (!reusable) {
        buffer_ = at::empty(x.sizes(), at::TensorOptions().dtype(out_dtype).memory_format(layout));
        ++allocations_;
      }
      transform_.transform_input_into(x, buffer_);
      state.batch.inputs = buffer_;
      ++fused_batches_;
    }
  }

  /// Batches transformed by the fused pass so far.
  [[nodiscard]] std::int64_t fused_batches() const noexcept { return fused_batches_; }
  /// Output buffers allocated so far (one in steady state, more when the shape changes or a batch was kept).
  [[nodiscard]] std::int64_t buffer_allocations() const noexcept { return allocations_; }

 private:
  typename plan::transform_type transform_;
  at::Tensor buffer_;
  std::int64_t fused_batches_ = 0;
  std::int64_t allocations_ = 0;
};

}  // namespace composer
