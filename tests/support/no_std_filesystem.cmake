# Keeps std::filesystem out of the library, the tests, the examples and the benchmarks: PyPI's LibTorch 2.x exports
# its own copy of libstdc++'s std::filesystem functions, a program linked with it binds its calls to that copy, and
# some of them crash (see include/composer/io/files.hpp, which does the same work with POSIX calls).
# Run by ctest (tests/CMakeLists.txt) as `cmake -DMODE=... -P no_std_filesystem.cmake`:
#   MODE=sources  SOURCE_DIR=...             no source file includes <filesystem> or names std::filesystem outside
#                                            a comment
#   MODE=imports  NM=... FILES=a|b|...       no built program has a std::filesystem symbol in its dynamic table
#   MODE=control  NM=... CXX=... WORK_DIR=.. the imports check does see the symbols of a program that uses
#                                            std::filesystem (so that its silence above means something)
cmake_minimum_required(VERSION 3.21)

set(_pattern "std::(experimental::)?filesystem")

# The dynamic symbols of `file` that belong to std::filesystem, into `out`.
function(filesystem_symbols file out)
  execute_process(COMMAND ${NM} -D -C ${file} RESULT_VARIABLE rc OUTPUT_VARIABLE symbols ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "no_std_filesystem: ${NM} -D -C ${file} failed (${rc}): ${err}")
  endif()
  string(REPLACE ";" "," symbols "${symbols}")
  string(REGEX MATCHALL "[^\n]*${_pattern}[^\n]*" found "${symbols}")
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "sources")
  file(GLOB_RECURSE files LIST_DIRECTORIES false
       ${SOURCE_DIR}/include/*.hpp ${SOURCE_DIR}/include/*.h ${SOURCE_DIR}/include/*.cuh
       ${SOURCE_DIR}/tests/*.hpp ${SOURCE_DIR}/tests/*.h ${SOURCE_DIR}/tests/*.cpp ${SOURCE_DIR}/tests/*.cu
       ${SOURCE_DIR}/examples/*.hpp ${SOURCE_DIR}/examples/*.cpp ${SOURCE_DIR}/examples/*.cu
       ${SOURCE_DIR}/benchmarks/*.hpp ${SOURCE_DIR}/benchmarks/*.cpp ${SOURCE_DIR}/benchmarks/*.cu)
  set(offenders)
  foreach(file IN LISTS files)
    file(READ ${file} text)
    string(REPLACE ";" "," text "${text}")
    string(REGEX MATCHALL "[^\n]*(#[ \t]*include[ \t]*<(experimental/)?filesystem>|${_pattern})[^\n]*" lines "${text}")
    foreach(line IN LISTS lines)
      if(NOT line MATCHES "^[ \t]*//")
        file(RELATIVE_PATH name ${SOURCE_DIR} ${file})
        string(STRIP "${line}" line)
        list(APPEND offenders "  ${name}: ${line}")
      endif()
    endforeach()
  endforeach()
  list(LENGTH files count)
  if(offenders)
    list(JOIN offenders "\n" offenders)
    message(FATAL_ERROR "std::filesystem is used (use composer/io/files.hpp instead):\n${offenders}")
  endif()
  message("no_std_filesystem: none in ${count} source files")
elseif(MODE STREQUAL "imports")
  string(REPLACE "|" ";" files "${FILES}")
  set(offenders)
  foreach(file IN LISTS files)
    filesystem_symbols(${file} found)
    foreach(symbol IN LISTS found)
      get_filename_component(name ${file} NAME)
      string(STRIP "${symbol}" symbol)
      list(APPEND offenders "  ${name}: ${symbol}")
    endforeach()
  endforeach()
  list(LENGTH files count)
  if(offenders)
    list(JOIN offenders "\n" offenders)
    message(FATAL_ERROR "programs with std::filesystem symbols, which LibTorch 2.x's libtorch_cpu.so can take over:\n"
                        "${offenders}")
  endif()
  message("no_std_filesystem: no std::filesystem symbol in ${count} programs")
elseif(MODE STREQUAL "control")
  file(MAKE_DIRECTORY ${WORK_DIR})
  file(WRITE ${WORK_DIR}/uses_filesystem.cpp
       "#include <filesystem>\nint main(int argc, char** argv) { return std::filesystem::remove_all(argv[0]) > 0 && argc > 5; }\n")
  execute_process(COMMAND ${CXX} -std=c++20 ${WORK_DIR}/uses_filesystem.cpp -o ${WORK_DIR}/uses_filesystem
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "no_std_filesystem: cannot build the control program: ${err}")
  endif()
  filesystem_symbols(${WORK_DIR}/uses_filesystem found)
  if(NOT found MATCHES "remove_all")
    message(FATAL_ERROR "no_std_filesystem: the imports check misses std::filesystem::remove_all in a program that "
                        "calls it (found: '${found}')")
  endif()
  message("no_std_filesystem: the control program's std::filesystem::remove_all is detected")
else()
  message(FATAL_ERROR "no_std_filesystem: MODE must be sources, imports or control, not '${MODE}'")
endif()
