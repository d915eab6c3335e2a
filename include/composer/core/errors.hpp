#pragma once
/// \file
/// How the library reports a bad argument: `composer::checks::fail` throws std::invalid_argument with the
/// "composer: " prefix, and `checks::num` writes a number as such messages show it. Torch-free (part of
/// composer::core). Composer counterpart: the `ValueError`s its methods raise.

#include <sstream>
#include <stdexcept>
#include <string>

namespace composer::checks {

/// Throws std::invalid_argument with the library's "composer: " prefix.
[[noreturn]] inline void fail(const std::string& message) { throw std::invalid_argument("composer: " + message); }

/// Shortest readable text for a double (6 significant digits), as error messages show it.
inline std::string num(double value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

}  // namespace composer::checks
