// Filled in with this file's tests.
#include <torch/torch.h>
#include <doctest/doctest.h>
