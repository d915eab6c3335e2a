// Prints which LibTorch the tests run against: its version, the library file actually loaded and ATen's number of
// intra-op threads, e.g. "LibTorch 2.11.0 (/.../torch/lib/libtorch_cpu.so), 2 threads (OMP_NUM_THREADS=2)".
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include <ATen/Parallel.h>
#include <torch/version.h>

int main() {
  Dl_info info{};
  const bool found = dladdr(reinterpret_cast<void*>(&at::get_num_threads), &info) != 0 && info.dli_fname != nullptr;
  const char* omp = std::getenv("OMP_NUM_THREADS");
  std::printf("LibTorch %s (%s), %d threads (OMP_NUM_THREADS=%s)\n", TORCH_VERSION, found ? info.dli_fname : "?",
              at::get_num_threads(), omp != nullptr ? omp : "unset");
  return 0;
}
