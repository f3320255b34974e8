// CPU threads for compute. libtorch's intra-op pool and OpenBLAS's own pthread pool are separate: at::set_num_threads
// alone leaves OpenBLAS spinning up every core (sched_yield busy-waits), which is ruinous on a shared 2-core machine.
#pragma once

namespace bmos {

// The CPUs this process may run on (its affinity mask: a container's cpuset, taskset), at least 1.
int available_cores();
// n <= 0: all of available_cores(). Sets both pools. Commands call it whatever their --threads says: left alone,
// libtorch's pool may start with fewer threads than cores (Debian's libtorch 1.13 starts with 1 on a 2-vCPU VM).
void set_compute_threads(int n);
// The threads libtorch's pool (and so the packed kernels, which take up to 2 of them) will use.
int compute_threads();

}  // namespace bmos
