# The CUDA build: COMPOSER_BUILD_CUDA (off by default) adds the tests that need a CUDA device (the fused kernel's
# `cuda_tests`, the Trainer's `cuda_trainer_tests`, the main job's presets on CUDA) and the kernel's benchmark.
# Needs nvcc and a LibTorch 2.x built with CUDA, such as PyTorch's own (scripts/gpu_check.sh configures, builds
# and runs all of it).
option(COMPOSER_BUILD_CUDA
       "Build the tests and benchmark that need a CUDA device (needs nvcc and a LibTorch 2.x with CUDA)" OFF)
if(COMPOSER_BUILD_CUDA)
  if(NOT TARGET torch_cuda OR NOT TARGET c10_cuda OR Torch_VERSION VERSION_LESS 2)
    message(FATAL_ERROR
      "COMPOSER_BUILD_CUDA=ON needs a LibTorch 2.x built with CUDA; the Torch found (${Torch_DIR}, version "
      "${Torch_VERSION}) is not one. Configure a fresh build folder with "
      "-DCMAKE_PREFIX_PATH=\"$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')\".")
  endif()
  enable_language(CUDA)
  # nvcc 12+ takes -std=c++20, but some CMake versions (3.25, for one) have no CUDA20 dialect for nvcc, and the
  # library's cxx_std_20 requirement then stops the generation of any CUDA target: give them the flag.
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  # C++20, constexpr std:: functions in device code, and the shared CUDA runtime (the one LibTorch itself uses).
  function(composer_cuda_target target)
    set_target_properties(${target} PROPERTIES CUDA_STANDARD 20 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF
                                               CUDA_RUNTIME_LIBRARY Shared)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr>)
  endfunction()
endif()
