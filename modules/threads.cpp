#include "modules/threads.h"

#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <thread>

#include <ATen/Parallel.h>

namespace bmos {

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

void set_compute_threads(int n) {
  if (n <= 0) n = available_cores();
  at::set_num_threads(n);
  // OpenBLAS is linked through libblas; find its setter at run time (absent with another BLAS: nothing to do).
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

int compute_threads() { return at::get_num_threads(); }

}  // namespace bmos
