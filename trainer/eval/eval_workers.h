// Evaluation batches are independent, and for small models libtorch's intra-op threads lose more to synchronisation than
// they gain (stories260K: 2 intra-op threads took 2.2x the CPU time of 1 and were slower in wall time too). So `bmos eval`
// runs its compute single-threaded and spreads whole batches over worker threads instead.
#pragma once

#include <cstdint>
#include <functional>

namespace bmos {

// Calls fn(i) for every i in [0, n) from `workers` threads (each takes the next index). fn(0) runs alone first, so that
// state a model builds lazily on its first call exists before the threads share it. Every thread runs without
// gradients. The first exception is rethrown after all threads stop. workers <= 1 runs in order on this thread.
void run_on_workers(int64_t n, int workers, const std::function<void(int64_t)>& fn);

}  // namespace bmos
