// Command-line checks the examples share (CLI11 validators): whole numbers in a range and finite numbers, each
// refusal naming the value.
#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace examples {

// A whole number in [low, high] (no sign unless low is negative, no fraction, no trailing text).
inline CLI::Validator whole_number(std::int64_t low, std::int64_t high) {
  const std::string range = "[" + std::to_string(low) + ", " + std::to_string(high) + "]";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        std::int64_t value = 0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (error == std::errc::result_out_of_range || (error == std::errc() && end == text.data() + text.size() &&
                                                        (value < low || value > high)))
          return "must be a whole number in " + range + ", got '" + text + "'";
        if (error != std::errc() || end != text.data() + text.size())
          return "must be a whole number in " + range + ", got '" + text + "', not a whole number";
        return {};
      },
      "INT in " + range);
}

// A finite number above zero, or with `allow_zero` at least zero.
inline CLI::Validator positive_finite(bool allow_zero = false) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value) || value < 0 ||
            (value == 0 && !allow_zero))
          return std::string("must be a finite number ") + (allow_zero ? "of at least zero" : "above zero") +
                 ", got '" + text + "'";
        return {};
      },
      allow_zero ? "NON-NEGATIVE" : "POSITIVE");
}

}  // namespace examples
