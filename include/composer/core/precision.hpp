#pragma once
/// \file
/// composer::Precision — the numerical precision of forward and loss computation.

#include <stdexcept>
#include <string>
#include <string_view>

namespace composer {

/// Numerical precision of training. `amp_*` run the forward pass and the loss under CUDA autocast in the
/// named type (`amp_fp16` with gradient scaling); fp32 is plain float. Composer counterpart:
/// `composer.core.Precision` (its `amp_fp8` needs TransformerEngine and has no LibTorch counterpart).
enum class Precision { fp32, amp_fp16, amp_bf16 };

/// The precision's value, e.g. `"amp_bf16"`. Composer counterpart: `Precision.value`.
constexpr std::string_view to_string(Precision precision) noexcept {
  switch (precision) {
    case Precision::fp32: return "fp32";
    case Precision::amp_fp16: return "amp_fp16";
    case Precision::amp_bf16: return "amp_bf16";
  }
  return "?";
}

/// Parses `"fp32"`, `"amp_fp16"` or `"amp_bf16"`; throws `std::invalid_argument` naming any other string.
inline Precision parse_precision(std::string_view text) {
  for (Precision p : {Precision::fp32, Precision::amp_fp16, Precision::amp_bf16})
    if (to_string(p) == text) return p;
  throw std::invalid_argument("composer: unknown precision '" + std::string(text) +
                              "' (expected fp32, amp_fp16 or amp_bf16)");
}

}  // namespace composer
