// A state of the compile-fail tests' own, so they need no LibTorch.
#pragma once
#include <composer/core/engine.hpp>

struct MiniState {
  int value = 0;
};
