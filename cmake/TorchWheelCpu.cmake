# The CPU part of an unpacked LibTorch 2.x wheel from PyPI (torch==2.x, any CUDA variant) as the `torch` target,
# without the wheel's own TorchConfig.cmake: that one links libtorch.so and libtorch_cuda.so, which need cuDNN,
# NCCL and a GPU driver. This links only libtorch_cpu.so and libc10.so, so the library and its CPU tests build and
# run against LibTorch 2.x on a machine without a GPU.
#
# Input:  COMPOSER_TORCH_WHEEL_CPU_ROOT, the folder holding torch/include, torch/lib/{libtorch_cpu.so,libc10.so}
#         and torch/version.py (scripts/torch2_wheel.sh prints one).
# Output: the INTERFACE IMPORTED target `torch` (headers, -D_GLIBCXX_USE_CXX11_ABI=1, both libraries with a
#         run-time path to them), and the variables a TorchConfig.cmake sets: Torch_FOUND, Torch_VERSION (e.g.
#         2.11.0), TORCH_INCLUDE_DIRS, TORCH_LIBRARIES, TORCH_CXX_FLAGS, and Torch_DIR: a folder of the build
#         (torch-wheel-cpu/) holding a TorchConfig.cmake that includes this file again with the same root.
# The wheel's libtorch_cpu.so of a CUDA build also needs the CUDA runtime (libcudart) and CUPTI (libcupti) of the
# same major version; they are found in COMPOSER_TORCH_WHEEL_CUDA_LIBRARY_DIRS (default: /usr/local/cuda's library
# folders) or the system's library folders, and linked directly so that they are found at run time too.
# Included by the top-level CMakeLists.txt when COMPOSER_TORCH_WHEEL_CPU_ROOT is set.

if(TARGET torch)
  return()
endif()
if(NOT COMPOSER_TORCH_WHEEL_CPU_ROOT)
  message(FATAL_ERROR "TorchWheelCpu.cmake needs COMPOSER_TORCH_WHEEL_CPU_ROOT, the root of an unpacked LibTorch wheel")
endif()

set(_tw_torch ${COMPOSER_TORCH_WHEEL_CPU_ROOT}/torch)
foreach(_tw_file include/torch/csrc/api/include/torch/torch.h lib/libtorch_cpu.so lib/libc10.so version.py)
  if(NOT EXISTS ${_tw_torch}/${_tw_file})
    message(FATAL_ERROR "COMPOSER_TORCH_WHEEL_CPU_ROOT=${COMPOSER_TORCH_WHEEL_CPU_ROOT} holds no torch/${_tw_file}: "
                        "it must be an unpacked LibTorch wheel with its CPU libraries (scripts/torch2_wheel.sh "
                        "prints one)")
  endif()
endforeach()

# The version, from torch/version.py: __version__ = '2.11.0+cu130'.
file(STRINGS ${_tw_torch}/version.py _tw_version_line REGEX "^__version__ *= *")
if(NOT _tw_version_line MATCHES "['\"]([0-9]+\\.[0-9]+\\.[0-9]+)([^'\"]*)['\"]")
  message(FATAL_ERROR "cannot read the LibTorch version from ${_tw_torch}/version.py (no __version__ = 'X.Y.Z')")
endif()
set(Torch_VERSION ${CMAKE_MATCH_1})
set(_tw_version_suffix ${CMAKE_MATCH_2})
string(REPLACE "." ";" _tw_version_parts ${Torch_VERSION})
list(GET _tw_version_parts 0 Torch_VERSION_MAJOR)
list(GET _tw_version_parts 1 Torch_VERSION_MINOR)
list(GET _tw_version_parts 2 Torch_VERSION_PATCH)

# What libtorch_cpu.so needs from the CUDA toolkit (for a CUDA wheel: libcudart.so.N and libcupti.so.N).
set(COMPOSER_TORCH_WHEEL_CUDA_LIBRARY_DIRS /usr/local/cuda/lib64 /usr/local/cuda/lib
    /usr/local/cuda/extras/CUPTI/lib64 CACHE STRING "Folders searched for the CUDA runtime libraries that the LibTorch wheel's libtorch_cpu.so needs")
execute_process(COMMAND ${CMAKE_OBJDUMP} -p ${_tw_torch}/lib/libtorch_cpu.so
                OUTPUT_VARIABLE _tw_dynamic RESULT_VARIABLE _tw_objdump_rc ERROR_QUIET)
set(_tw_needed_cuda)
if(_tw_objdump_rc EQUAL 0)
  string(REGEX MATCHALL "NEEDED +(libcudart|libcupti)\\.so[.0-9]*" _tw_needed_cuda "${_tw_dynamic}")
  list(TRANSFORM _tw_needed_cuda REPLACE "^NEEDED +" "")
elseif(_tw_version_suffix MATCHES "^\\+cu([0-9]+)")
  # No objdump: guess the sonames from the CUDA version of the wheel (cu130 -> .so.13).
  math(EXPR _tw_cuda_major "${CMAKE_MATCH_1} / 10")
  set(_tw_needed_cuda libcudart.so.${_tw_cuda_major} libcupti.so.${_tw_cuda_major})
endif()
set(_tw_cuda_libraries)
set(_tw_cuda_dirs)
foreach(_tw_soname IN LISTS _tw_needed_cuda)
  string(MAKE_C_IDENTIFIER ${_tw_soname} _tw_var)
  find_file(COMPOSER_TORCH_WHEEL_${_tw_var} ${_tw_soname} PATHS ${COMPOSER_TORCH_WHEEL_CUDA_LIBRARY_DIRS}
            /usr/local/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib NO_DEFAULT_PATH)
  if(NOT COMPOSER_TORCH_WHEEL_${_tw_var})
    message(FATAL_ERROR "The LibTorch wheel's libtorch_cpu.so needs ${_tw_soname}, found in none of "
                        "${COMPOSER_TORCH_WHEEL_CUDA_LIBRARY_DIRS}: install the CUDA toolkit of that version or "
                        "set COMPOSER_TORCH_WHEEL_CUDA_LIBRARY_DIRS to the folder holding it")
  endif()
  list(APPEND _tw_cuda_libraries ${COMPOSER_TORCH_WHEEL_${_tw_var}})
  get_filename_component(_tw_dir ${COMPOSER_TORCH_WHEEL_${_tw_var}} DIRECTORY)
  list(APPEND _tw_cuda_dirs ${_tw_dir})
endforeach()
list(REMOVE_DUPLICATES _tw_cuda_dirs)

set(_tw_include_dirs ${_tw_torch}/include ${_tw_torch}/include/torch/csrc/api/include)
add_library(torch INTERFACE IMPORTED)
# torch/lib comes first in the programs' run-time path, so a program built with -fopenmp also loads the wheel's
# libgomp.so.1, the OpenMP runtime libtorch_cpu.so was built with: one runtime serves both. The libraries and their
# folder are given as plain -L/-l flags, which CMake leaves out of its own run-time path, so that it does not warn
# that this hides the compiler's libgomp.so.1.
# They are linked even where a linker default drops libraries nothing refers to: the CUDA runtime libraries must be
# direct dependencies of the program to be found through its run-time path.
set_target_properties(torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_tw_include_dirs}"
  INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=1"
  INTERFACE_LINK_LIBRARIES "-Wl,--push-state,--no-as-needed;-ltorch_cpu;-lc10;${_tw_cuda_libraries};-Wl,--pop-state"
  INTERFACE_LINK_OPTIONS "-L${_tw_torch}/lib;LINKER:-rpath,${_tw_torch}/lib;LINKER:-rpath-link,${_tw_torch}/lib")
foreach(_tw_dir IN LISTS _tw_cuda_dirs)
  set_property(TARGET torch APPEND PROPERTY INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_tw_dir}")
endforeach()

# A TorchConfig.cmake that gives the same target, for projects that call find_package(Torch) with
# -DTorch_DIR=<build folder>/torch-wheel-cpu (the package tests do).
set(_tw_config_dir ${CMAKE_BINARY_DIR}/torch-wheel-cpu)
file(CONFIGURE OUTPUT ${_tw_config_dir}/TorchConfig.cmake CONTENT
"# Written by composer-cpp's cmake/TorchWheelCpu.cmake: the CPU libraries of the LibTorch wheel below.
set(COMPOSER_TORCH_WHEEL_CPU_ROOT \"${COMPOSER_TORCH_WHEEL_CPU_ROOT}\")
include(\"${CMAKE_CURRENT_LIST_FILE}\")
" @ONLY)

set(Torch_FOUND TRUE)
set(TORCH_FOUND TRUE)
set(Torch_DIR ${_tw_config_dir})
set(TORCH_INCLUDE_DIRS ${_tw_include_dirs})
set(TORCH_LIBRARIES torch)
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")
set(_tw_cuda_text)
if(_tw_cuda_libraries)
  list(JOIN _tw_cuda_libraries ", " _tw_cuda_text)
  set(_tw_cuda_text ", with ${_tw_cuda_text}")
endif()
message(STATUS "LibTorch ${Torch_VERSION}${_tw_version_suffix}: the CPU libraries of the wheel at "
               "${COMPOSER_TORCH_WHEEL_CPU_ROOT}${_tw_cuda_text}")
