#pragma once
/// \file
/// composer::BasicEngine — runs, for each event, exactly the policies that handle it, in Composer's order,
/// with the order resolved at compile time.

#include <array>
#include <cstddef>
#include <exception>
#include <iostream>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/hana/at.hpp>
#include <boost/hana/concat.hpp>
#include <boost/hana/filter.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/integral_constant.hpp>
#include <boost/hana/range.hpp>
#include <boost/hana/reverse.hpp>
#include <boost/hana/size.hpp>
#include <boost/hana/core/to.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/unpack.hpp>

#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>

#if defined(__GNUC__) || defined(__clang__)
/// Forces inlining of the Engine's dispatch helpers, so that `run<E>()` compiles to the policies' calls alone.
#define COMPOSER_ALWAYS_INLINE __attribute__((always_inline)) inline
/// The same for a lambda, written after its parameter list.
#define COMPOSER_LAMBDA_ALWAYS_INLINE __attribute__((always_inline))
#else
#define COMPOSER_ALWAYS_INLINE inline
#define COMPOSER_LAMBDA_ALWAYS_INLINE
#endif

namespace composer {

/// An engine over a state of type `StateT` and the policies `Policies...` (algorithms, callbacks and logger
/// destinations, told apart by their `role`). `run<Event::X>()` calls exactly the policies whose `events`
/// contain `X`, with no code for the others:
/// - algorithms in declared order, or reversed on the six `AFTER_*` events so that their effects nest
///   (first in, last out), then moved by their `placement` (`first`/`last`);
/// - then callbacks, then loggers, in declared order; on `INIT` loggers, callbacks, then algorithms;
/// - a policy with a runtime guard `match(event, state)` is skipped when it returns false.
/// `run_event("after_dataloader")` and `run_event(Event)` map a runtime event onto the same static paths.
/// Composer counterpart: `composer.core.Engine` with its default passes.
template <class StateT, class... Policies>
class BasicEngine {
  static_assert((policy_check<Policies, StateT>::value && ...),
                "composer: Engine<...> was given a type that is not a valid policy (see the message above)");

 public:
  /// The state type the policies act on.
  using state_type = StateT;
  /// Number of policies.
  static constexpr std::size_t size = sizeof...(Policies);

  /// An engine acting on `state`, with default-constructed policies.
  explicit BasicEngine(StateT& state)
    requires(sizeof...(Policies) > 0 && (std::is_default_constructible_v<Policies> && ...))
      : state_(state) {}
  /// An engine acting on `state`, with the given policy objects (in the order of `Policies`).
  explicit BasicEngine(StateT& state, Policies... policies) : state_(state), policies_(std::move(policies)...) {}

  BasicEngine(const BasicEngine&) = delete;
  BasicEngine& operator=(const BasicEngine&) = delete;
  /// Closes the policies (see `close`), reporting rather than throwing any error they raise.
  ~BasicEngine() {
    try {
      close();
    } catch (const std::exception& error) {
      std::cerr << "composer: error while closing the engine: " << error.what() << '\n';
    } catch (...) {
      std::cerr << "composer: unknown error while closing the engine\n";
    }
  }

  /// Runs event `E`: only the policies that handle it, in Composer's order, resolved at compile time.
  /// Composer counterpart: `Engine.run_event(event)`.
  template <Event E>
  COMPOSER_ALWAYS_INLINE void run() {
    run_except<E>();
  }

  /// Runs event `E` as `run<E>()` does but without the policies at the positions `Skipped...` (a compile-time set):
  /// how a trainer that has done some policies' work at `E` another way (their stages in one fused pass) runs the
  /// rest of the event. `run_except<E>()` is `run<E>()`.
  template <Event E, std::size_t... Skipped>
  COMPOSER_ALWAYS_INLINE void run_except(std::index_sequence<Skipped...> = {}) {
    static_assert(((Skipped < sizeof...(Policies)) && ...), "composer: run_except was given a position past the last policy");
    if constexpr (E == Event::INIT) {
      run_role<E, Role::logger, Skipped...>();
      run_role<E, Role::callback, Skipped...>();
      run_role<E, Role::algorithm, Skipped...>();
    } else {
      run_role<E, Role::algorithm, Skipped...>();
      run_role<E, Role::callback, Skipped...>();
      run_role<E, Role::logger, Skipped...>();
    }
  }

  /// Runs a runtime event by selecting its static path. Composer counterpart: `Engine.run_event(event)`.
  void run_event(Event event) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (void)((event == static_cast<Event>(I) && (run<static_cast<Event>(I)>(), true)) || ...);
    }(std::make_index_sequence<event_count>{});
  }

  /// Runs an event given by value (`"after_dataloader"`) or name in any case (`"AFTER_DATALOADER"`); throws
  /// `std::invalid_argument` naming an unknown string. Composer counterpart: `Engine.run_event("...")`.
  void run_event(std::string_view event_name) { run_event(parse_event(event_name)); }

  /// Calls `close(state, logger)` (or `close(state)`) on every policy that has one, then `post_close()` on
  /// those whose close succeeded; runs once. Errors are collected and the first is rethrown after every policy
  /// had its turn. Composer counterpart: `Engine.close()` and `Callback.close/post_close`.
  void close() {
    if (closed_) return;
    closed_ = true;
    std::exception_ptr first_error;
    bool closed_ok[sizeof...(Policies) + 1] = {};
    boost::hana::for_each(all_indices(), [&](auto i) {
      auto& policy = boost::hana::at(policies_, i);
      using P = std::remove_reference_t<decltype(policy)>;
      try {
        if constexpr (requires { policy.close(state_, logger_); })
          policy.close(state_, logger_);
        else if constexpr (requires { policy.close(state_); })
          policy.close(state_);
        closed_ok[decltype(i)::value] = true;
      } catch (...) {
        if (!first_error) first_error = std::current_exception();
      }
      (void)sizeof(P);
    });
    boost::hana::for_each(all_indices(), [&](auto i) {
      auto& policy = boost::hana::at(policies_, i);
      if constexpr (requires { policy.post_close(); }) {
        if (closed_ok[decltype(i)::value]) {
          try {
            policy.post_close();
          } catch (...) {
            if (!first_error) first_error = std::current_exception();
          }
        }
      }
    });
    if (first_error) std::rethrow_exception(first_error);
  }

  /// Whether `close()` has run.
  bool closed() const noexcept { return closed_; }

  /// The state the engine acts on.
  StateT& state() noexcept { return state_; }
  /// The state the engine acts on.
  const StateT& state() const noexcept { return state_; }
  /// The logger that forwards to this engine's logger destinations.
  const Logger& logger() const noexcept { return logger_; }

  /// The policy at position `I`.
  template <std::size_t I>
  auto& get() noexcept {
    return boost::hana::at_c<I>(policies_);
  }
  /// The policy at position `I`.
  template <std::size_t I>
  const auto& get() const noexcept {
    return boost::hana::at_c<I>(policies_);
  }
  /// The policy of type `P` (which must appear exactly once).
  template <class P>
  P& get() noexcept {
    return boost::hana::at_c<index_of<P>()>(policies_);
  }
  /// The policy of type `P` (which must appear exactly once).
  template <class P>
  const P& get() const noexcept {
    return boost::hana::at_c<index_of<P>()>(policies_);
  }

  /// Calls `f(policy)` for every policy in declared order (e.g. to save each one's state in a checkpoint).
  template <class F>
  void for_each_policy(F&& f) {
    boost::hana::for_each(policies_, f);
  }
  /// Calls `f(policy)` for every policy in declared order.
  template <class F>
  void for_each_policy(F&& f) const {
    boost::hana::for_each(policies_, f);
  }

  /// Whether any policy of any role handles event `E` (known at compile time).
  template <Event E>
  static constexpr bool handles() noexcept {
    return (handles_event<Policies, E> || ...);
  }

  /// The positions of the policies of role `R` that event `E` runs, in run order, as a Boost.Hana tuple of
  /// integral constants: the compile-time dispatch plan.
  template <Event E, Role R>
  static constexpr auto dispatch_order() {
    constexpr auto matched = boost::hana::filter(all_indices(), [](auto i) {
      using P = policy_at<decltype(i)::value>;
      return boost::hana::bool_c<role_of<P> == R && handles_event<P, E>>;
    });
    if constexpr (R != Role::algorithm) {
      return matched;
    } else {
      constexpr auto nested = [&] {
        if constexpr (reverses_algorithm_order(E))
          return boost::hana::reverse(matched);
        else
          return matched;
      }();
      constexpr auto placed = [](auto order, auto where) {
        return boost::hana::filter(order, [](auto i) {
          return boost::hana::bool_c<placement_of<policy_at<decltype(i)::value>> == decltype(where)::value>;
        });
      };
      using first_c = std::integral_constant<Placement, Placement::first>;
      using declared_c = std::integral_constant<Placement, Placement::declared>;
      using last_c = std::integral_constant<Placement, Placement::last>;
      return boost::hana::concat(boost::hana::concat(placed(nested, first_c{}), placed(nested, declared_c{})),
                          placed(nested, last_c{}));
    }
  }

 private:
  template <std::size_t I>
  using policy_at = std::tuple_element_t<I, std::tuple<Policies...>>;

  static constexpr auto all_indices() { return boost::hana::to_tuple(boost::hana::range_c<std::size_t, 0, sizeof...(Policies)>); }

  template <class P>
  static consteval std::size_t count_of() {
    return (std::size_t{0} + ... + (std::is_same_v<P, Policies> ? 1 : 0));
  }
  template <class P>
  static consteval std::size_t index_of() {
    static_assert(count_of<P>() == 1,
                  "composer: Engine::get<P>() needs P to appear exactly once among the Engine's policies");
    constexpr bool same[] = {std::is_same_v<P, Policies>..., false};
    std::size_t index = 0;
    for (std::size_t i = 0; i < sizeof...(Policies); ++i)
      if (same[i]) index = i;
    return index;
  }

  // The dispatch plan of (E, R) as a constexpr array of policy positions.
  template <Event E, Role R>
  static constexpr auto dispatch_array = boost::hana::unpack(dispatch_order<E, R>(), [](auto... i) {
    return std::array<std::size_t, sizeof...(i)>{decltype(i)::value...};
  });

  // How many positions of the (E, R) plan are not among `Skipped...`.
  template <Event E, Role R, std::size_t... Skipped>
  static consteval std::size_t kept_count() {
    std::size_t kept = 0;
    for (std::size_t p : dispatch_array<E, R>)
      if (((p != Skipped) && ...)) ++kept;
    return kept;
  }
  // The (E, R) plan without the positions `Skipped...`, in run order.
  template <Event E, Role R, std::size_t... Skipped>
  static constexpr auto kept_array = [] {
    std::array<std::size_t, kept_count<E, R, Skipped...>()> kept{};
    std::size_t k = 0;
    for (std::size_t p : dispatch_array<E, R>)
      if (((p != Skipped) && ...)) kept[k++] = p;
    return kept;
  }();

  // A fold over the plan: straight-line calls, no loop and no indirection.
  template <Event E, Role R, std::size_t... Skipped>
  COMPOSER_ALWAYS_INLINE void run_role() {
    constexpr auto& plan = kept_array<E, R, Skipped...>;
    [this]<std::size_t... J>(std::index_sequence<J...>) COMPOSER_LAMBDA_ALWAYS_INLINE {
      (invoke<E>(boost::hana::at_c<plan[J]>(policies_)), ...);
    }(std::make_index_sequence<plan.size()>{});
  }

  template <Event E, class P>
  COMPOSER_ALWAYS_INLINE void invoke(P& policy) {
    if constexpr (has_match_guard<P, StateT>) {
      if (!policy.match(EventTag<E>{}, static_cast<const StateT&>(state_))) return;
    }
    if constexpr (applies_with_logger<P, E, StateT>)
      policy.apply(EventTag<E>{}, state_, logger_);
    else
      policy.apply(EventTag<E>{}, state_);
  }

  static constexpr bool has_metrics_destination =
      ((role_of<Policies> == Role::logger &&
        requires(Policies& p, const Metrics& m, const StateT& s) { p.log_metrics(m, s); }) ||
       ...);
  static constexpr bool has_hyperparameters_destination =
      ((role_of<Policies> == Role::logger &&
        requires(Policies& p, const Hyperparameters& h, const StateT& s) { p.log_hyperparameters(h, s); }) ||
       ...);

  static void fan_out_metrics(void* target, const Metrics& metrics) {
    auto& self = *static_cast<BasicEngine*>(target);
    boost::hana::for_each(self.policies_, [&](auto& policy) {
      using P = std::remove_reference_t<decltype(policy)>;
      if constexpr (role_of<P> == Role::logger && requires { policy.log_metrics(metrics, std::as_const(self.state_)); })
        policy.log_metrics(metrics, std::as_const(self.state_));
    });
  }
  static void fan_out_hyperparameters(void* target, const Hyperparameters& hyperparameters) {
    auto& self = *static_cast<BasicEngine*>(target);
    boost::hana::for_each(self.policies_, [&](auto& policy) {
      using P = std::remove_reference_t<decltype(policy)>;
      if constexpr (role_of<P> == Role::logger &&
                    requires { policy.log_hyperparameters(hyperparameters, std::as_const(self.state_)); })
        policy.log_hyperparameters(hyperparameters, std::as_const(self.state_));
    });
  }

  StateT& state_;
  boost::hana::tuple<Policies...> policies_;
  Logger logger_{this, has_metrics_destination ? &fan_out_metrics : nullptr,
                 has_hyperparameters_destination ? &fan_out_hyperparameters : nullptr};
  bool closed_ = false;
};

}  // namespace composer
