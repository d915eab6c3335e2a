# Run by ctest as torch2_headers.nvcc_kernels (see tests/CMakeLists.txt), on a machine without a GPU:
#  1. compiles the CUDA tests and benchmark in one nvcc call (-c: the host code against the LibTorch 2.x headers,
#     the device code for one architecture);
#  2. builds tests/cuda/test_fused_cuda_host.cu, the kernel's per-element code and argument packing run on the
#     host (it needs the LibTorch headers but none of its libraries), and runs it.
# Arguments (-D...): NVCC; FLAGS and SOURCES, '|'-separated lists; HOST_TEST; WORK_DIR.
foreach(_var NVCC FLAGS SOURCES HOST_TEST WORK_DIR)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "nvcc_kernels.cmake needs -D${_var}=...")
  endif()
endforeach()
string(REPLACE "|" ";" _flags "${FLAGS}")
string(REPLACE "|" ";" _sources "${SOURCES}")
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

composer_step("nvcc -c: CUDA tests and benchmark" "${NVCC}" ${_flags} -c ${_sources})
# -O2: the host-only build must not keep LibTorch's unused inline functions, which would need its libraries.
composer_step("nvcc: host-side kernel test" "${NVCC}" ${_flags} -O2 "${HOST_TEST}" -o cuda_host_tests)
composer_step("cuda_host_tests" "${WORK_DIR}/cuda_host_tests")
