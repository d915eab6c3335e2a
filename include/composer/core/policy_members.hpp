#pragma once
/// \file
/// Whether a policy declares one of its optional members at all, whatever its signature: what lets
/// `composer::policy_check` (core/policy.hpp) turn a member declared in the wrong form, which the library
/// would otherwise skip without a word, into a compile error, and tell a type that declares none of the
/// protocol's members (not a policy at all) from a policy with one member wrong. Torch-free: a checkpoint
/// archive or a state is stood in for by `detail::any_argument`.

#include <type_traits>

namespace composer::detail {

/// Converts to a reference to any type: an argument that fits any parameter, so that a member can be found
/// by calling it without knowing its parameter types. Only used in unevaluated operands.
struct any_argument {
  template <class T>
  operator T&() const noexcept;
};

}  // namespace composer::detail

/// Defines `composer::detail::declares_<member>`: true when `P` has a member of that name that is a
/// variable, a single function, or an overload set callable with up to three arguments.
#define COMPOSER_DETAIL_DECLARES_MEMBER(member)                                                          \
  namespace composer::detail {                                                                           \
  template <class P>                                                                                     \
  concept declares_##member =                                                                            \
      requires { &P::member; } || requires(P& p) { p.member(); } ||                                     \
      requires(P& p, any_argument& a) { p.member(a); } || requires(P& p, any_argument& a) { p.member(a, a); } || \
      requires(P& p, any_argument& a) { p.member(a, a, a); };                                            \
  }

/// `declares_save_state<P>`: `P` has a member `save_state` (a checkpoint writer, core/policy.hpp says its form).
COMPOSER_DETAIL_DECLARES_MEMBER(save_state)
/// `declares_load_state<P>`: `P` has a member `load_state` (a checkpoint reader).
COMPOSER_DETAIL_DECLARES_MEMBER(load_state)
/// `declares_log_metrics<P>`: `P` has a member `log_metrics` (a logger destination for metrics).
COMPOSER_DETAIL_DECLARES_MEMBER(log_metrics)
/// `declares_log_hyperparameters<P>`: `P` has a member `log_hyperparameters`.
COMPOSER_DETAIL_DECLARES_MEMBER(log_hyperparameters)
/// `declares_close<P>`: `P` has a member `close` (called by `Engine::close`).
COMPOSER_DETAIL_DECLARES_MEMBER(close)
/// `declares_post_close<P>`: `P` has a member `post_close`.
COMPOSER_DETAIL_DECLARES_MEMBER(post_close)
/// `declares_match<P>`: `P` has a member `match` (a runtime guard).
COMPOSER_DETAIL_DECLARES_MEMBER(match)
/// `declares_draw<P>`: `P` has a member `draw` (a fused stage's parameters).
COMPOSER_DETAIL_DECLARES_MEMBER(draw)
/// `declares_apply<P>`: `P` has a member `apply` (what a policy does on its events), in any form.
COMPOSER_DETAIL_DECLARES_MEMBER(apply)

#undef COMPOSER_DETAIL_DECLARES_MEMBER

namespace composer::detail {

/// True when `P` declares a member type `stage_type` (a stage the Trainer may fuse).
template <class P>
concept declares_stage_type = requires { typename P::stage_type; };

/// True when `P` declares a member `stage_event`.
template <class P>
concept declares_stage_event = requires { &P::stage_event; };

/// True when `P` declares a member `touches_inputs`.
template <class P>
concept declares_touches_inputs = requires { &P::touches_inputs; };

/// True when `P` declares a member `name`.
template <class P>
concept declares_name = requires { &P::name; };

/// True when `P` declares a member `placement`.
template <class P>
concept declares_placement = requires { &P::placement; };

/// True when `P` declares a member `events`, of any type.
template <class P>
concept declares_events_member = requires { &P::events; };

/// True when `P` declares a member `role`.
template <class P>
concept declares_role = requires { &P::role; };

/// True when `P` declares at least one member of the policy protocol, in whatever form: what tells a policy
/// with a member wrong (reported member by member) from a type that is not a policy at all, such as an
/// algorithm's options struct. The cheap checks come first; the disjunction stops at the first member found.
template <class P>
concept declares_a_policy_member =
    declares_events_member<P> || declares_role<P> || declares_placement<P> || declares_name<P> ||
    declares_stage_type<P> || declares_stage_event<P> || declares_touches_inputs<P> || declares_apply<P> ||
    declares_match<P> || declares_save_state<P> || declares_load_state<P> || declares_log_metrics<P> ||
    declares_log_hyperparameters<P> || declares_close<P> || declares_post_close<P> || declares_draw<P>;

/// `value` is false exactly when `P` is a class that declares no member of the policy protocol. A class template,
/// so that the compiler's note on a failed check names `P`.
template <class P>
struct looks_like_a_policy {
  static constexpr bool value = !std::is_class_v<P> || declares_a_policy_member<P>;
};

}  // namespace composer::detail
