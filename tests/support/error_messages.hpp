// Test helpers shared by the suites that check the library's argument errors (include after LibTorch).
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

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

// Asserts that `f` throws std::invalid_argument whose message starts with "composer: " and contains every part.
template <class F>
void check_bad_argument(F&& f, const std::vector<std::string>& parts) {
  const std::string message = invalid_argument_message(std::forward<F>(f));
  CAPTURE(message);
  CHECK(message.rfind("composer: ", 0) == 0);
  for (const std::string& part : parts) {
    CAPTURE(part);
    CHECK(message.find(part) != std::string::npos);
  }
}

}  // namespace composer_test
