#pragma once
/// \file
/// Writing a policy's checkpoint state into a torch serialize archive and reading it back: whole-number entries
/// (counters and flags) and named tensor lists (averaged weights, buffers). Policies with state (EMA, SWA) use
/// these in `save_state` / `load_state`, under the sub-archive the Trainer gives each of them. Composer
/// counterpart: the `state_dict` / `load_state_dict` entries of its algorithms (plain ints and tensor dicts).

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/ordered_dict.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

namespace composer {

/// Tensors by name, in insertion order: what `write_named_tensors` stores and `read_named_tensors` returns.
/// Composer counterpart: a `dict[str, Tensor]` of an algorithm's `state_dict`.
using NamedTensors = torch::OrderedDict<std::string, at::Tensor>;

/// Writes `value` under `key` as a one-element int64 tensor. Read it back with `read_archived_integer`.
inline void write_archived_integer(torch::serialize::OutputArchive& archive, const std::string& key,
                                   std::int64_t value) {
  archive.write(key, at::tensor(std::vector<std::int64_t>{value}));
}

/// The whole number `write_archived_integer` stored under `key`.
/// \throws c10::Error when the archive has no entry `key`.
inline std::int64_t read_archived_integer(torch::serialize::InputArchive& archive, const std::string& key) {
  at::Tensor value;
  archive.read(key, value);
  return value.item<std::int64_t>();
}

/// Writes `tensors` under `key`: the names as one newline-joined string at `key/names` and the tensors (detached)
/// by position at `key/0`, `key/1`, ... Names must not contain a newline (module paths never do).
inline void write_named_tensors(torch::serialize::OutputArchive& archive, const std::string& key,
                                const NamedTensors& tensors) {
  std::string names;
  for (const auto& item : tensors) {
    if (!names.empty()) names += '\n';
    names += item.key();
  }
  archive.write(key + "/names", c10::IValue(names));
  std::size_t i = 0;
  for (const auto& item : tensors) {
    archive.write(key + "/" + std::to_string(i++), item.value().detach(), /*is_buffer=*/true);
  }
}

/// The tensors `write_named_tensors` stored under `key`, with their names and in their order.
/// \throws std::runtime_error when `key/names` is not a name list; c10::Error when an entry is missing.
inline NamedTensors read_named_tensors(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue names;
  archive.read(key + "/names", names);
  if (!names.isString()) throw std::runtime_error("composer: the entry '" + key + "/names' is not a name list");
  NamedTensors tensors;
  const std::string& joined = names.toStringRef();
  if (joined.empty()) return tensors;
  std::istringstream lines(joined);
  std::size_t i = 0;
  for (std::string name; std::getline(lines, name);) {
    at::Tensor tensor;
    archive.read(key + "/" + std::to_string(i++), tensor, /*is_buffer=*/true);
    tensors.insert(name, tensor);
  }
  return tensors;
}

}  // namespace composer
