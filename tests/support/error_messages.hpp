// Test helper shared by the suites that check the library's argument errors.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

namespace composer_test {

// Runs `f` and returns the message of the std::invalid_argument it throws (or a marker when it does not).
template <class F>
std::string invalid_argument_message(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<other exception> ") + e.what();
  }
  return "<no exception>";
}

}  // namespace composer_test
