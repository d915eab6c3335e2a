#pragma once
/// \file
/// Checks of policy options that several algorithms share, each throwing std::invalid_argument (through
/// `checks::fail`) with the message "<Policy> <option> must ..., got <value>".

#include <cmath>
#include <string>

#include <composer/core/errors.hpp>

namespace composer::algorithms {

/// Throws unless `alpha`, the parameter of a Beta(α, α) mixing draw, is >= 0 and finite. `policy` names the
/// policy in the message. Composer counterpart: the `alpha` MixUp and CutMix accept.
inline void check_beta_alpha(double alpha, const char* policy) {
  if (!(alpha >= 0.0)) checks::fail(std::string(policy) + " alpha must be >= 0, got " + checks::num(alpha));
  if (!std::isfinite(alpha)) checks::fail(std::string(policy) + " alpha must be finite, got " + checks::num(alpha));
}

/// Throws unless `value` is in [0, 1] (NaN is not). `policy` and `option` name the policy and the option in the
/// message, e.g. "ColOut p_row must be in [0, 1], got 2".
inline void check_unit_interval(double value, const char* policy, const char* option) {
  if (!(value >= 0.0 && value <= 1.0)) {
    checks::fail(std::string(policy) + " " + option + " must be in [0, 1], got " + checks::num(value));
  }
}

}  // namespace composer::algorithms
