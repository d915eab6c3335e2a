#pragma once
/// \file
/// The Trainer's fusion plan: which of its algorithms' input stages (MixUp, CutMix, CutOut, NormalizeInputs) run
/// as one fused pass over each device microbatch, decided at compile time from the Engine's type list, and the
/// runner that carries the plan out at `AFTER_DATALOADER` and `BEFORE_FORWARD`.
///
/// A policy offers a stage by declaring
///
///     using stage_type = kernels::stage::X;            // a per-element description (kernels/batch_stages.hpp)
///     static constexpr Event stage_event = Event::...; // AFTER_DATALOADER or BEFORE_FORWARD
///     stage_type draw(State&);                         // this batch's random parameters (and what later events need)
///
/// with an eager `apply` at `stage_event` that is `kernels::apply_stage(draw(state), inputs)`. The policy knows
/// nothing of fusion (its `match` decides events only); the plan decides, as an epilogue functor leaves it to the
/// kernel that calls it. A policy that acts between the data loader and the forward pass without touching
/// `state.batch.inputs` says so with `static constexpr bool touches_inputs = false`.
///
/// The plan fuses (all at compile time) when
///  * at least one algorithm offers a stage, each stage at most once;
///  * no other algorithm acts on AFTER_DATALOADER, BATCH_START, BEFORE_TRAIN_BATCH or BEFORE_FORWARD unless it
///    leaves the inputs alone (otherwise it could read or change them between the eager stages);
///  * the eager order agrees with the kernel's fixed order (MixUp, CutMix, CutOut, Normalize) wherever order
///    matters: CutOut before NormalizeInputs (holes are zero before normalisation; as AFTER_* events run algorithms
///    in reverse, that is `Trainer<NormalizeInputs, CutOut>`) and MixUp before CutMix. Every other pair commutes:
///    CutOut's holes and CutMix's box are the same for every image, and mixing weights that sum to one commute
///    with the per-channel affine normalisation.
///
/// At run time, with the plan on and `TrainerOptions::fuse_batch_transforms` set, a batch is fused when its inputs
/// are [N, C, H, W] float32 (or uint8 with NormalizeInputs, which defines the 1/255 scale) and a kernel serves the
/// training device: the CPU kernel (`kernels/fused_batch_cpu.hpp`) for CPU training, the CUDA kernel
/// (`kernels/fused_batch_cuda.cuh`) for CUDA training when the translation unit that instantiates the Trainer is
/// compiled by nvcc (`COMPOSER_CUDA_FUSION`, below). Other batches run the eager stages. For a fused batch:
///  * at AFTER_DATALOADER the batch-level stages (CutOut, NormalizeInputs) are drawn in their eager order, on the
///    whole batch, and the event runs without them: the inputs stay as the loader gave them (uint8 stays uint8,
///    so it crosses to the device at a quarter of float32's bytes);
///  * at BEFORE_FORWARD of every microbatch, on the training device, the microbatch stages (MixUp, CutMix) are
///    drawn in their eager order, one launch of the fused kernel writes the transformed microbatch, and the event
///    runs without them.
/// Composer's semantics are kept: the same parameters are drawn from the same generator in the same order as the
/// eager stages, so both paths give the same batches (to a few ulp); MixUp and CutMix mix within each device
/// microbatch. Between AFTER_DATALOADER and BEFORE_FORWARD, `state.batch.inputs` of a fused batch holds the
/// loader's inputs.

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

/// 1 when the Trainer's fused pass also runs on CUDA devices: by default, when the translation unit is compiled
/// as CUDA by nvcc (`__CUDACC__`) against a LibTorch built with CUDA. Define it to 0 before including the library
/// to keep such a translation unit on the eager path for CUDA batches. Trainers compiled with and without it are
/// distinct types (their own inline namespace), so both kinds of translation unit link into one program.
#ifndef COMPOSER_CUDA_FUSION
#if defined(__CUDACC__)
#define COMPOSER_CUDA_FUSION 1
#else
#define COMPOSER_CUDA_FUSION 0
#endif
#endif

#if COMPOSER_CUDA_FUSION
#if !defined(__CUDACC__)
#error "COMPOSER_CUDA_FUSION=1 needs the translation unit compiled as CUDA by nvcc (a .cu file, or -x cu)"
#endif
#include <composer/kernels/fused_batch_cuda.cuh>
/// The inline namespace of the Trainer and its fusion runner in a translation unit with the CUDA fused pass.
#define COMPOSER_FUSION_ABI_NAMESPACE cuda_fusion
#else
/// The inline namespace of the Trainer and its fusion runner in a translation unit without the CUDA fused pass.
#define COMPOSER_FUSION_ABI_NAMESPACE host_fusion
#endif

namespace composer {

/// A policy whose input transform is a stage that the Trainer may run in its fused pass (see the file comment).
template <class P>
concept StagedInputTransform = requires(P& policy, State& state) {
  typename P::stage_type;
  { P::stage_event } -> std::convertible_to<Event>;
  { policy.draw(state) } -> std::same_as<typename P::stage_type>;
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
  if constexpr (declares_events<P>) {
    for (Event e : {Event::AFTER_DATALOADER, Event::BATCH_START, Event::BEFORE_TRAIN_BATCH, Event::BEFORE_FORWARD})
      if (P::events.contains(e)) return true;
  }
  return false;  // also for a type that is not a policy, which policy_check reports
}

/// Whether P offers a stage the kernels know, at an event where the runner can take it.
template <class P>
constexpr bool offers_stage() {
  if constexpr (StagedInputTransform<P>)
    return kernels::detail::is_stage_v<typename P::stage_type> && P::events.contains(P::stage_event) &&
           (P::stage_event == Event::AFTER_DATALOADER || P::stage_event == Event::BEFORE_FORWARD);
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

/// Positions of the algorithms whose stage acts at event E, in E's dispatch order (the eager draw order).
template <class EngineT, Event E>
constexpr auto offering_in_order() {
  return hana::filter(EngineT::template dispatch_order<E, Role::algorithm>(), [](auto i) {
    using P = policy_at<EngineT, decltype(i)::value>;
    if constexpr (offers_stage<P>())
      return hana::bool_c<P::stage_event == E>;
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
    return std::array<int, sizeof...(i)>{policy_at<EngineT, decltype(i)::value>::stage_type::order...};
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

/// The planned stage types in the kernel's fixed order, as a std::tuple of stage types (empty when disabled).
template <class EngineT, bool = enabled<EngineT>()>
struct stages_of {
  using type = std::tuple<>;
};
template <class EngineT>
struct stages_of<EngineT, true> {
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
  using type = typename decltype(hana::unpack(stages, hana::template_<std::tuple>))::type;
};

template <template <class...> class Transform, class Tuple>
struct apply_stages;
template <template <class...> class Transform, class... S>
struct apply_stages<Transform, std::tuple<S...>> {
  using type = Transform<S...>;
};

/// The positions drawn at event E, as a std::index_sequence (for `run_except`).
template <class EngineT, Event E>
constexpr auto positions_at() {
  if constexpr (!enabled<EngineT>())
    return std::index_sequence<>{};
  else
    return hana::unpack(offering_in_order<EngineT, E>(),
                        [](auto... i) { return std::index_sequence<decltype(i)::value...>{}; });
}

}  // namespace fusion_detail

/// The fusion plan of an engine type, computed from its type list. Composer counterpart: none (Composer runs each
/// method's transform eagerly, one pass over the batch each).
template <class EngineT>
struct FusedInputPlan {
  /// Whether this engine's input stages fuse (the static conditions in the file comment).
  static constexpr bool enabled = fusion_detail::enabled<EngineT>();
  /// The fused stage types, in the kernel's order (MixUp, CutMix, CutOut, Normalize): a std::tuple, empty when the
  /// plan is off.
  using stages = typename fusion_detail::stages_of<EngineT>::type;
  /// Positions of the policies whose stages are drawn, in the order their eager transforms would run.
  static constexpr auto draw_order = fusion_detail::draw_order<EngineT>();
  /// Positions (a std::index_sequence) of the policies whose stage the fused pass takes at AFTER_DATALOADER.
  using batch_positions = decltype(fusion_detail::positions_at<EngineT, Event::AFTER_DATALOADER>());
  /// Positions (a std::index_sequence) of the policies whose stage the fused pass takes at BEFORE_FORWARD.
  using microbatch_positions = decltype(fusion_detail::positions_at<EngineT, Event::BEFORE_FORWARD>());
  /// Whether the pass normalises (NormalizeInputs takes part): it allows uint8 input and sets the output dtype.
  static constexpr bool normalizes =
      fusion_detail::position_of(fusion_detail::stage_orders<EngineT>(), kernels::stage::Normalize::order) >= 0;
  /// The CPU fused transform over the planned stages (`kernels::FusedBatchTransform<...>`; an empty tuple when
  /// the plan is off).
  using cpu_transform = std::conditional_t<enabled, typename fusion_detail::apply_stages<kernels::FusedBatchTransform, stages>::type,
                                           std::tuple<>>;
#if COMPOSER_CUDA_FUSION
  /// The CUDA fused transform over the planned stages (in translation units compiled with COMPOSER_CUDA_FUSION).
  using cuda_transform = std::conditional_t<enabled,
                                            typename fusion_detail::apply_stages<kernels::cuda::FusedBatchTransform, stages>::type,
                                            std::tuple<>>;
#endif
};

inline namespace COMPOSER_FUSION_ABI_NAMESPACE {

/// Carries out the fusion plan of a trainer's engine: decides per batch whether it is fused, draws the stages
/// through their policies in the eager order, launches the fused pass once per microbatch on the training device,
/// and runs the rest of each event through `BasicEngine::run_except`.
template <class EngineT>
class FusedInputRunner {
 public:
  /// The plan this runner executes.
  using plan = FusedInputPlan<EngineT>;
  /// Whether CUDA batches can take the fused pass in this translation unit (`COMPOSER_CUDA_FUSION`).
  static constexpr bool cuda_fusion = COMPOSER_CUDA_FUSION != 0;

  /// Decides whether the batch now in `state.batch` (as the loader gave it) takes the fused pass: `allowed`
  /// (the option), the plan on, [N, C, H, W] float32 inputs (or uint8 with a normaliser), and a kernel for the
  /// training device.
  void begin_batch(const State& state, bool allowed) {
    active_ = false;
    if constexpr (plan::enabled) {
      const at::Tensor& x = state.batch.inputs;
      if (!allowed || !x.defined() || x.dim() != 4) return;
      const bool byte_ok = plan::normalizes && x.scalar_type() == at::kByte;
      if (x.scalar_type() != at::kFloat && !byte_ok) return;
      active_ = state.device.is_cpu() || (cuda_fusion && state.device.is_cuda());
    }
  }

  /// Whether the current batch takes the fused pass.
  [[nodiscard]] bool active() const noexcept { return active_; }

  /// Runs event `E` (AFTER_DATALOADER or BEFORE_FORWARD) for the current batch or microbatch: for a fused batch,
  /// draws the stages that act at `E`, at BEFORE_FORWARD transforms `state.batch.inputs` in one launch, then runs
  /// the event without those policies; otherwise runs the event as is.
  template <Event E>
  void run(EngineT& engine, State& state) {
    static_assert(E == Event::AFTER_DATALOADER || E == Event::BEFORE_FORWARD,
                  "the fused pass takes stages at AFTER_DATALOADER and BEFORE_FORWARD only");
    if constexpr (plan::enabled) {
      if (active_) {
        draw<E>(engine, state);
        if constexpr (E == Event::BEFORE_FORWARD) launch(state);
        using skipped = std::conditional_t<E == Event::AFTER_DATALOADER, typename plan::batch_positions,
                                           typename plan::microbatch_positions>;
        engine.template run_except<E>(skipped{});
        return;
      }
    }
    engine.template run<E>();
  }

  /// Microbatches transformed by the fused pass so far: one kernel launch each.
  [[nodiscard]] std::int64_t fused_microbatches() const noexcept { return fused_microbatches_; }
  /// Output buffers allocated so far (one per shape and device in steady state; more when a policy or callback
  /// kept a previous microbatch's inputs).
  [[nodiscard]] std::int64_t buffer_allocations() const noexcept { return allocations_; }

 private:
  // Draws the stages acting at E, in E's dispatch order, into the CPU transform's parameters.
  template <Event E>
  void draw(EngineT& engine, State& state) {
    boost::hana::for_each(fusion_detail::offering_in_order<EngineT, E>(), [&](auto i) {
      auto& policy = engine.template get<decltype(i)::value>();
      using Stage = typename std::remove_cvref_t<decltype(policy)>::stage_type;
      transform_.template get<Stage>() = policy.draw(state);
      if constexpr (std::is_same_v<Stage, kernels::stage::Normalize>) out_dtype_ = transform_.template get<Stage>().dtype;
    });
  }

  // The output buffer for `x`: reused while nobody else holds it or a view of it (steady state: the last
  // microbatch's autograd graph is gone), so a callback that kept earlier inputs keeps them intact.
  at::Tensor& output_for(const at::Tensor& x) {
    const auto layout = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)
                            ? at::MemoryFormat::ChannelsLast
                            : at::MemoryFormat::Contiguous;
    const bool reusable = buffer_.defined() && buffer_.sizes() == x.sizes() && buffer_.scalar_type() == out_dtype_ &&
                          buffer_.device() == x.device() && buffer_.is_contiguous(layout) && buffer_.use_count() == 1 &&
                          buffer_.storage().use_count() == 1;
    if (!reusable) {
      buffer_ = at::empty(x.sizes(), at::TensorOptions().dtype(out_dtype_).device(x.device()).memory_format(layout));
      ++allocations_;
    }
    return buffer_;
  }

  // One fused launch over the microbatch in `state.batch.inputs`, on its device.
  void launch(State& state) {
    const at::Tensor x = state.batch.inputs;
    at::Tensor& out = output_for(x);
    if (x.device().is_cpu()) {
      transform_.transform_input_into(x, out);
    } else {
#if COMPOSER_CUDA_FUSION
      launch_cuda(x, out);
#else
      throw std::logic_error("composer: the fused pass met a " + x.device().str() +
                             " microbatch in a translation unit compiled without COMPOSER_CUDA_FUSION");
#endif
    }
    state.batch.inputs = out;
    ++fused_microbatches_;
  }

#if COMPOSER_CUDA_FUSION
  // The CUDA kernel takes the drawn parameters, with the partner indices on the images' device.
  void launch_cuda(const at::Tensor& x, at::Tensor& out) {
    // The parameters come from the policies' own draws (a permutation, boxes and holes inside the image), so the
    // per-call value check, a stream synchronisation, is left out.
    cuda_transform_.set_value_checks(false);
    copy_stages_to_cuda(x.device(), std::make_index_sequence<std::tuple_size_v<typename plan::stages>>{});
    cuda_transform_.transform_input_into(x, out);
  }
  template <std::size_t... I>
  void copy_stages_to_cuda(const c10::Device& device, std::index_sequence<I...>) {
    (copy_stage(transform_.template get<std::tuple_element_t<I, typename plan::stages>>(),
                cuda_transform_.template get<std::tuple_element_t<I, typename plan::stages>>(), device),
     ...);
  }
  template <class Stage>
  static void copy_stage(const Stage& from, Stage& to, const c10::Device& device) {
    to = from;
    if constexpr (requires { to.indices; })
      if (to.indices.defined()) to.indices = to.indices.to(device, /*non_blocking=*/true);
  }

  typename plan::cuda_transform cuda_transform_;
#endif

  typename plan::cpu_transform transform_;
  at::Tensor buffer_;
  at::ScalarType out_dtype_ = at::kFloat;
  bool active_ = false;
  std::int64_t fused_microbatches_ = 0;
  std::int64_t allocations_ = 0;
};

}  // namespace COMPOSER_FUSION_ABI_NAMESPACE

}  // namespace composer
