# Run by ctest as torch2_headers.nvcc_kernels (see tests/CMakeLists.txt), on a machine without a GPU:
#  1. compiles the CUDA tests and benchmark in one nvcc call (-c: the host code against the LibTorch 2.x headers,
#     the device code for one architecture);
#  2. builds tests/cuda/test_fused_cuda_host.cu, the kernel's argument packing and every thread of its launch grid
#     run on the host against the eager ATen sequence, linked with LibTorch 2.x's CPU libraries (libtorch_cpu,
#     libc10), and runs it.
# Arguments (-D...): NVCC; FLAGS and SOURCES, '|'-separated lists; HOST_TEST; WORK_DIR; TORCH_LIB (the folder of
# libtorch_cpu.so and libc10.so); RPATH, a '|'-separated list of folders the host test loads libraries from (that
# folder, and those of the CUDA runtime libraries libtorch_cpu needs: libcudart, libcupti; may be empty).
foreach(_var NVCC FLAGS SOURCES HOST_TEST WORK_DIR TORCH_LIB)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "nvcc_kernels.cmake needs -D${_var}=...")
  endif()
endforeach()
foreach(_lib libtorch_cpu.so libc10.so)
  if(NOT EXISTS "${TORCH_LIB}/${_lib}")
    message(FATAL_ERROR "nvcc_kernels.cmake: ${TORCH_LIB} holds no ${_lib}; the host-side kernel test links "
                        "LibTorch 2.x's CPU libraries (scripts/torch2_wheel.sh keeps torch/lib next to "
                        "torch/include)")
  endif()
endforeach()
string(REPLACE "|" ";" _flags "${FLAGS}")
string(REPLACE "|" ";" _sources "${SOURCES}")
string(REPLACE "|" ";" _rpath "${RPATH}")
# DT_RPATH (not RUNPATH), so that the folders also serve the libraries libtorch_cpu loads.
set(_link -L${TORCH_LIB} -ltorch_cpu -lc10 -Xlinker --disable-new-dtags)
foreach(_dir IN LISTS _rpath)
  list(APPEND _link -Xlinker -rpath -Xlinker ${_dir})
endforeach()
file(MAKE_DIRECTORY "${WORK_DIR}")

function(composer_step what)
  string(TIMESTAMP _t0 "%s")
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE _rc)
  string(TIMESTAMP _t1 "%s")
  math(EXPR _seconds "${_t1} - ${_t0}")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${_rc}) after ${_seconds} s")
  endif()
  message(STATUS "${what}: ${_seconds} s")
endfunction()

# Two nvcc processes side by side (execute_process runs its COMMANDs concurrently), each compiling every other
# source: the host compilations of these translation units dominate, and the check runs alone at the end of ctest.
set(_group0 "")
set(_group1 "")
set(_i 0)
foreach(_src IN LISTS _sources)
  math(EXPR _g "${_i} % 2")
  list(APPEND _group${_g} "${_src}")
  math(EXPR _i "${_i} + 1")
endforeach()
string(TIMESTAMP _t0 "%s")
if(_group1)
  execute_process(COMMAND "${NVCC}" ${_flags} -c ${_group0}
                  COMMAND "${NVCC}" ${_flags} -c ${_group1}
                  WORKING_DIRECTORY "${WORK_DIR}" RESULTS_VARIABLE _rcs)
else()
  execute_process(COMMAND "${NVCC}" ${_flags} -c ${_group0} WORKING_DIRECTORY "${WORK_DIR}" RESULTS_VARIABLE _rcs)
endif()
string(TIMESTAMP _t1 "%s")
math(EXPR _seconds "${_t1} - ${_t0}")
foreach(_rc IN LISTS _rcs)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "nvcc -c: CUDA tests, examples and benchmark failed (${_rcs}) after ${_seconds} s")
  endif()
endforeach()
message(STATUS "nvcc -c: CUDA tests, examples and benchmark: ${_seconds} s")
# -O2: LibTorch's unused inline CUDA functions (which would need its CUDA libraries) are not kept.
composer_step("nvcc: host-side kernel test" "${NVCC}" ${_flags} -O2 "${HOST_TEST}" -o cuda_host_tests ${_link})
composer_step("cuda_host_tests" "${WORK_DIR}/cuda_host_tests")
