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

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>

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
}  // namespace detail

/// Checks, with a readable message per rule, that `P` is a valid policy for an Engine over `State`.
/// Instantiated by the Engine for each of its policies; the failing type appears in the compiler's
/// "required from" context.
template <class P, class State>
struct policy_check {
  static_assert(std::is_class_v<P>, "composer: a policy must be a class type (a struct with `events` and `apply`)");
  static_assert(!std::is_polymorphic_v<P>,
                "composer: a policy must not have virtual functions or a polymorphic base: the Engine dispatches "
                "statically");
  static_assert(declares_events<P>,
                "composer: the policy has no `static constexpr composer::EventSet events{...}` member naming the "
                "events it handles");
  static_assert(role_of<P> == Role::algorithm || role_of<P> == Role::callback || role_of<P> == Role::logger,
                "composer: the policy's `role` must be a composer::Role");
  static_assert(detail::match_guard_returns_bool<P, State>(),
                "composer: the policy's runtime guard `match(event, const state&)` must return bool");
  static constexpr bool value = [] {
    if constexpr (std::is_class_v<P> && declares_events<P>)
      return detail::check_every_declared_event<P, State>(std::make_index_sequence<event_count>{});
    else
      return false;
  }();
};

}  // namespace composer
