#pragma once
/// \file
/// What makes a type an algorithm, callback or logger policy, and the compile-time checks that say, in words,
/// what a type that is not one lacks.
///
/// A policy is a plain struct (no base class, no virtual function):
/// \code
/// struct MyAlgorithm {
///   static constexpr composer::EventSet events{composer::Event::AFTER_DATALOADER, composer::Event::AFTER_LOSS};
///   void apply(composer::Event event, auto& state, composer::Logger& logger);  // or apply(event, state)
///   bool match(composer::Event event, const auto& state) const;                 // optional runtime guard
///   static constexpr composer::Role role = composer::Role::algorithm;           // optional, the default
///   static constexpr composer::Placement placement = composer::Placement::declared;  // optional
/// };
/// \endcode
///
/// The optional members (checkpoint state, logger destinations, `close`, fused stages, ...) are listed in the
/// README's "The policy protocol". `policy_check` checks all of them: a member that is declared but not in the
/// form the library calls is a compile error naming the policy, never a member silently skipped.

#include <concepts>
#include <cstddef>
#include <string_view>
#include <type_traits>
#include <utility>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy_members.hpp>

namespace composer {

/// What a policy is to the Engine. Algorithms run first on every event but `INIT`, then callbacks, then
/// loggers; on `INIT` the order is loggers, callbacks, algorithms. Composer counterpart: the split between
/// `Algorithm`, `Callback` and `LoggerDestination` in `Engine.run_event`.
enum class Role { algorithm, callback, logger };

/// Where an algorithm sits among the algorithms handling an event, after the FILO reversal of `AFTER_*`
/// events. Composer counterpart: the `sort_selective_backprop_first` and `sort_low_precision_layernorm_last`
/// passes (see the README for the one deliberate difference).
enum class Placement { first, declared, last };

namespace detail {
template <class P>
consteval Role role_of_impl() {
  if constexpr (requires { P::role; })
    return P::role;
  else
    return Role::algorithm;
}
template <class P>
consteval Placement placement_of_impl() {
  if constexpr (requires { P::placement; })
    return P::placement;
  else
    return Placement::declared;
}
}  // namespace detail

/// The role a policy declares with `static constexpr composer::Role role`, `Role::algorithm` if none.
template <class P>
inline constexpr Role role_of = detail::role_of_impl<P>();

/// The placement a policy declares with `static constexpr composer::Placement placement`, `declared` if none.
template <class P>
inline constexpr Placement placement_of = detail::placement_of_impl<P>();

/// True when `P` declares `static constexpr composer::EventSet events`.
template <class P>
concept declares_events = requires {
  P::events;
  requires std::same_as<std::remove_cvref_t<decltype(P::events)>, EventSet>;
};

/// True when `P` handles event `E` (it declares `E` in its `events`).
template <class P, Event E>
concept handles_event = declares_events<P> && P::events.contains(E);

/// True when `p.apply(event, state, logger)` is valid for event `E`.
template <class P, Event E, class State>
concept applies_with_logger = requires(P& p, State& s, Logger& l) { p.apply(EventTag<E>{}, s, l); };

/// True when `p.apply(event, state)` is valid for event `E`.
template <class P, Event E, class State>
concept applies_without_logger = requires(P& p, State& s) { p.apply(EventTag<E>{}, s); };

/// True when the policy has `apply` for event `E` in either form.
template <class P, Event E, class State>
concept applies_to = applies_with_logger<P, E, State> || applies_without_logger<P, E, State>;

/// True when the policy has a runtime guard `match(event, const state&)` (called before `apply`; `false`
/// skips it). Composer counterpart: the state-dependent part of `Algorithm.match`.
template <class P, class State>
concept has_match_guard = requires(const P& p, const State& s) { p.match(EventTag<Event::INIT>{}, s); };

namespace detail {
struct always_valid {
  static constexpr bool value = true;
};

// Instantiated only for the events a policy declares, so that a missing `apply` is reported with the event
// in the instantiation context.
template <class P, Event E, class State>
struct apply_check {
  static_assert(applies_to<P, E, State>,
                "composer: the policy declares an event in `events` but has no `apply(event, state)` or "
                "`apply(event, state, logger)` member callable for it");
  static constexpr bool value = applies_to<P, E, State>;
};

template <class P, class State, std::size_t... I>
constexpr bool check_every_declared_event(std::index_sequence<I...>) {
  return (std::conditional_t<P::events.contains(static_cast<Event>(I)),
                             apply_check<P, static_cast<Event>(I), State>, always_valid>::value &&
          ...);
}

template <class P, class State>
constexpr bool match_guard_returns_bool() {
  if constexpr (requires(const P& p, const State& s) { p.match(EventTag<Event::INIT>{}, s); })
    return std::convertible_to<decltype(std::declval<const P&>().match(EventTag<Event::INIT>{},
                                                                       std::declval<const State&>())),
                               bool>;
  else
    return true;
}

/// `save_state` as the Trainer calls it when writing a checkpoint: a const member taking the output archive.
template <class P>
concept saves_state_in_form = requires(const P& p, any_argument& archive) { p.save_state(archive); };

/// `load_state` as the Trainer calls it when restoring a checkpoint: taking the input archive, and optionally
/// the state (then it is restored before the optimizers).
template <class P, class State>
concept loads_state_in_form = requires(P& p, any_argument& archive) { p.load_state(archive); } ||
                              requires(P& p, any_argument& archive, State& state) { p.load_state(archive, state); };

/// `log_metrics` as the Engine's logger calls it on a logger destination.
template <class P, class State>
concept logs_metrics_in_form =
    requires(P& p, const Metrics& metrics, const State& state) { p.log_metrics(metrics, state); };

/// `log_hyperparameters` as the Engine's logger calls it on a logger destination.
template <class P, class State>
concept logs_hyperparameters_in_form = requires(P& p, const Hyperparameters& hyperparameters, const State& state) {
  p.log_hyperparameters(hyperparameters, state);
};

/// `close` as `Engine::close` calls it: with the state and the logger, or with the state alone.
template <class P, class State>
concept closes_in_form = requires(P& p, State& state, Logger& logger) { p.close(state, logger); } ||
                         requires(P& p, State& state) { p.close(state); };

/// True when `P` declares any part of a fused stage (`stage_type` or `stage_event`).
template <class P>
concept declares_stage = declares_stage_type<P> || declares_stage_event<P>;

/// True when `P::stage_event` is an Event constant.
template <class P>
concept stage_event_in_form = requires {
  { P::stage_event } -> std::convertible_to<Event>;
  typename std::integral_constant<Event, P::stage_event>;
};

/// True when `P` declares a `stage_type` and `draw(state)` returns exactly it (composer::StagedInputTransform).
template <class P, class State>
consteval bool stage_draw_in_form() {
  if constexpr (declares_stage_type<P>)
    return requires(P& p, State& state) {
      { p.draw(state) } -> std::same_as<typename P::stage_type>;
    };
  else
    return false;
}

/// True unless `P` declares a fused stage at an event that is not among its `events`.
template <class P>
consteval bool stage_event_is_handled() {
  if constexpr (declares_stage<P> && stage_event_in_form<P> && declares_events<P>)
    return P::events.contains(P::stage_event);
  else
    return true;
}

/// True unless `P` declares a fused stage at an event where the Trainer's fused pass does not run.
template <class P>
consteval bool stage_event_is_fusable() {
  if constexpr (declares_stage<P> && stage_event_in_form<P>)
    return P::stage_event == Event::AFTER_DATALOADER || P::stage_event == Event::BEFORE_FORWARD;
  else
    return true;
}

/// True when `P::touches_inputs` is a bool constant.
template <class P>
concept touches_inputs_in_form = requires {
  { P::touches_inputs } -> std::convertible_to<bool>;
  typename std::bool_constant<P::touches_inputs>;
};

/// True when `P::name` reads as a string (the name the policy's state is stored under in checkpoints).
template <class P>
concept name_in_form = requires { std::string_view(P::name); };
}  // namespace detail

/// Checks, with a readable message per rule, that `P` is a valid policy for an Engine over `State`: its
/// `events` and `apply`, and every optional member it declares (the README's "The policy protocol") in the form
/// the library calls. Instantiated by the Engine for each of its policies; the failing type appears in the
/// compiler's "required from" context.
template <class P, class State>
struct policy_check {
  static_assert(std::is_class_v<P>, "composer: a policy must be a class type (a struct with `events` and `apply`)");
  static_assert(!std::is_polymorphic_v<P>,
                "composer: a policy must not have virtual functions or a polymorphic base: the Engine dispatches "
                "statically");
  static_assert(detail::looks_like_a_policy<P>::value,
                "composer: this type is not a policy (it has none of the policy protocol's members): a policy declares "
                "`static constexpr composer::EventSet events{...}` and `apply(event, state)` or `apply(event, state, "
                "logger)`. An algorithm's options struct (e.g. MixUpOptions) is not one: did you mean the algorithm, "
                "e.g. `Trainer<MixUp>`, constructed with these options (`MixUp(mixup_options)`)?");
  static_assert(!std::is_class_v<P> || !detail::declares_a_policy_member<P> || declares_events<P>,
                "composer: the policy has no `static constexpr composer::EventSet events{...}` member naming the "
                "events it handles");
  static_assert(role_of<P> == Role::algorithm || role_of<P> == Role::callback || role_of<P> == Role::logger,
                "composer: the policy's `role` must be a composer::Role");
  static_assert(detail::match_guard_returns_bool<P, State>(),
                "composer: the policy's runtime guard `match(event, const state&)` must return bool");
  static_assert(!detail::declares_match<P> || has_match_guard<P, State>,
                "composer: the policy's runtime guard `match` must be a const member taking the event and a const "
                "state: `bool match(composer::Event, const State&) const`");
  static_assert(!detail::declares_placement<P> || role_of<P> == Role::algorithm,
                "composer: the policy declares a `placement` but is not an algorithm: callbacks and loggers run in "
                "declared order");
  static_assert(!detail::declares_name<P> || detail::name_in_form<P>,
                "composer: the policy's `name` must be a string constant, e.g. `static constexpr const char* name = "
                "\"MyAlgorithm\"`: checkpoints store the policy's state under it");
  // Checkpoint state (trainer/checkpoint.hpp).
  static_assert(!detail::declares_save_state<P> || detail::saves_state_in_form<P>,
                "composer: the policy's `save_state` must be a const member taking the checkpoint's archive: "
                "`void save_state(torch::serialize::OutputArchive&) const`");
  static_assert(!detail::declares_load_state<P> || detail::loads_state_in_form<P, State>,
                "composer: the policy's `load_state` must take the checkpoint's archive, and optionally the state: "
                "`void load_state(torch::serialize::InputArchive&)` or `void load_state(torch::serialize::InputArchive&, "
                "State&)`");
  static_assert(!detail::declares_load_state<P> || detail::declares_save_state<P>,
                "composer: the policy declares `load_state` but no `save_state`: checkpoints would hold nothing for it "
                "to load");
  static_assert(!detail::declares_save_state<P> || detail::declares_load_state<P>,
                "composer: the policy declares `save_state` but no `load_state`: the state it saves would never be "
                "restored");
  // Logger destinations (core/logger.hpp).
  static_assert(!detail::declares_log_metrics<P> || detail::logs_metrics_in_form<P, State>,
                "composer: the policy's `log_metrics` must take the metrics and the state: "
                "`void log_metrics(const composer::Metrics&, const State&)`");
  static_assert(!detail::declares_log_hyperparameters<P> || detail::logs_hyperparameters_in_form<P, State>,
                "composer: the policy's `log_hyperparameters` must take the hyperparameters and the state: "
                "`void log_hyperparameters(const composer::Hyperparameters&, const State&)`");
  static_assert(!(detail::declares_log_metrics<P> || detail::declares_log_hyperparameters<P>) ||
                    role_of<P> == Role::logger,
                "composer: the policy declares `log_metrics` or `log_hyperparameters` but its `role` is not "
                "composer::Role::logger: only logger destinations receive what is logged");
  static_assert(role_of<P> != Role::logger || detail::declares_log_metrics<P> ||
                    detail::declares_log_hyperparameters<P>,
                "composer: the policy is a logger destination (`role = composer::Role::logger`) but has no destination "
                "method: `log_metrics(const composer::Metrics&, const State&)` or "
                "`log_hyperparameters(const composer::Hyperparameters&, const State&)`");
  // Closing (Engine::close).
  static_assert(!detail::declares_close<P> || detail::closes_in_form<P, State>,
                "composer: the policy's `close` must take the state, and optionally the logger: "
                "`void close(State&, composer::Logger&)` or `void close(State&)`");
  static_assert(!detail::declares_post_close<P> || requires(P& p) { p.post_close(); },
                "composer: the policy's `post_close` must take no argument: `void post_close()`");
  // A stage the Trainer may fuse (trainer/fused_inputs.hpp, composer::StagedInputTransform).
  static_assert(!detail::declares_stage<P> || detail::declares_stage_type<P>,
                "composer: the policy declares a `stage_event` but no `using stage_type = ...` (the stage it offers)");
  static_assert(!detail::declares_stage<P> || detail::stage_event_in_form<P>,
                "composer: the policy declares a `stage_type` but no `static constexpr composer::Event stage_event` "
                "(the event of its stage)");
  static_assert(!detail::declares_stage_type<P> || detail::stage_draw_in_form<P, State>(),
                "composer: the policy's `draw` must take the state and return exactly its `stage_type` (this batch's "
                "parameters of its stage): `stage_type draw(State&)`");
  static_assert(detail::stage_event_is_handled<P>(),
                "composer: the policy's `stage_event` is not among its `events`");
  static_assert(detail::stage_event_is_fusable<P>(),
                "composer: the policy's `stage_event` must be Event::AFTER_DATALOADER or Event::BEFORE_FORWARD, the "
                "events where the Trainer's fused pass runs");
  static_assert(!detail::declares_touches_inputs<P> || detail::touches_inputs_in_form<P>,
                "composer: the policy's `touches_inputs` must be a bool constant: `static constexpr bool "
                "touches_inputs = false`");
  static constexpr bool value = [] {
    if constexpr (std::is_class_v<P> && declares_events<P>)
      return detail::check_every_declared_event<P, State>(std::make_index_sequence<event_count>{});
    else
      return false;
  }();
};

}  // namespace composer
