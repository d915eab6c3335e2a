// A state of the compile-fail tests' own, so they need no LibTorch.
#pragma once
#include <composer/core/engine.hpp>

struct MiniState {
  int value = 0;
};

// Stand-ins for LibTorch's checkpoint archives (torch::serialize::OutputArchive and InputArchive): the policy
// checks accept any archive type, so the checkpoint rules are checked here without LibTorch.
struct OutArchive {};
struct InArchive {};

// A stand-in for a fused stage's parameters (kernels/batch_stages.hpp).
struct Stage {
  float scale = 1;
};
