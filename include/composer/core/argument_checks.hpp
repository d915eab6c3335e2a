#pragma once
/// \file
/// The argument checks every layer shares (functional transforms, algorithms, kernels, the trainer): tensors that
/// must be defined, image batches, matching batch sizes and permutation indices. Each throws std::invalid_argument
/// through `checks::fail`, naming the function (`fn`), the argument and what it got.

#include <cstdint>
#include <sstream>
#include <string>

#include <ATen/ATen.h>

#include <composer/core/errors.hpp>

namespace composer::checks {

/// A tensor's shape as text, e.g. "[2, 3, 4]"; "undefined" for an undefined tensor.
inline std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

/// Throws unless `t` is a defined tensor with at least `min_dim` dimensions.
inline void check_tensor(const at::Tensor& t, const char* fn, const char* arg, int64_t min_dim) {
  if (!t.defined()) fail(std::string(fn) + " " + arg + " must be a defined tensor");
  if (t.dim() < min_dim) {
    fail(std::string(fn) + " " + arg + " must have at least " + std::to_string(min_dim) +
         " dimension(s), got shape " + shape_of(t));
  }
}

/// Throws unless `input` is an image batch of shape (N, C, H, W).
inline void check_image_batch(const at::Tensor& input, const char* fn) {
  if (!input.defined()) fail(std::string(fn) + " input must be a defined tensor");
  if (input.dim() != 4) fail(std::string(fn) + " input must be 4-D (N, C, H, W), got shape " + shape_of(input));
}

/// Throws unless `input` is a single image (C, H, W) or an image batch (N, C, H, W).
inline void check_image_or_batch(const at::Tensor& input, const char* fn) {
  if (!input.defined()) fail(std::string(fn) + " input must be a defined tensor");
  if (input.dim() != 3 && input.dim() != 4) {
    fail(std::string(fn) + " input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape " + shape_of(input));
  }
}

/// Throws unless input and target agree on the batch size (dim 0).
inline void check_same_batch(const at::Tensor& input, const at::Tensor& target, const char* fn) {
  check_tensor(input, fn, "input", 1);
  check_tensor(target, fn, "target", 1);
  if (input.size(0) != target.size(0)) {
    fail(std::string(fn) + " input and target must have the same batch size, got input shape " + shape_of(input) +
         " and target shape " + shape_of(target));
  }
}

/// Throws unless `indices` is a 1-D integer tensor with `n` entries (any length when n < 0).
inline void check_indices(const at::Tensor& indices, int64_t n, const char* fn, const char* arg) {
  if (!indices.defined()) fail(std::string(fn) + " " + arg + " must be a defined tensor");
  if (indices.dim() != 1) fail(std::string(fn) + " " + arg + " must be 1-D, got shape " + shape_of(indices));
  if (!at::isIntegralType(indices.scalar_type(), /*includeBool=*/false)) {
    fail(std::string(fn) + " " + arg + " must have an integer dtype, got " +
         std::string(c10::toString(indices.scalar_type())));
  }
  if (n >= 0 && indices.size(0) != n) {
    fail(std::string(fn) + " " + arg + " must have one entry per sample (" + std::to_string(n) + "), got " +
         std::to_string(indices.size(0)));
  }
}

/// Checks `indices` as check_indices does and returns it as int64 on `device`.
inline at::Tensor as_indices(const at::Tensor& indices, int64_t n, const at::Device& device, const char* fn,
                             const char* arg) {
  check_indices(indices, n, fn, arg);
  return indices.to(device, at::kLong);
}

/// True for the dtypes Composer treats as class-index targets (uint8, int8, int16, int32, int64).
inline bool is_index_dtype(at::ScalarType t) {
  return t == at::kByte || t == at::kChar || t == at::kShort || t == at::kInt || t == at::kLong;
}

}  // namespace composer::checks
