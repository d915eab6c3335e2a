#pragma once
/// \file
/// The fused batch transforms on the host: the stages and their value types, their eager form and the CPU
/// kernel (no Composer counterpart: Composer runs each transform as its own pass). The CUDA kernel is
/// `<composer/kernels/fused_batch_cuda.cuh>`, for translation units compiled by nvcc.

#include <composer/kernels/apply_stage.hpp>
#include <composer/kernels/batch_stages.hpp>
#include <composer/kernels/fused_batch_cpu.hpp>
#include <composer/kernels/host_checks.hpp>
#include <composer/kernels/stage_types.hpp>
