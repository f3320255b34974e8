// CPU threads for compute. libtorch's intra-op pool and OpenBLAS's own pthread pool are separate: at::set_num_threads
// alone leaves OpenBLAS spinning up every core (sched_yield busy-waits), which is ruinous on a shared 2-core machine.
#pragma once

namespace bmos {

// n <= 0: all cores. Sets both pools.
void set_compute_threads(int n);

}  // namespace bmos
