// The CPU kernels' worker threads: one process-wide pool whose workers spin (with pause) for a while after each job
// before they sleep, so the 200+ matrix products of one decoded token reach threads that are already awake. OpenMP
// under OMP_WAIT_POLICY=PASSIVE (what the tests and a shared machine need) puts its threads to sleep after every
// region, and each wake-up cost more than a 4096 x 4096 GEMV (LLaMA-2-7B decode: 7.7 tok/s on 2 threads against
// 11.7 with OMP_WAIT_POLICY=ACTIVE, bmos_bench BM_Decode). Spinning is bounded: a worker that saw no job for
// $BMOS_SPIN_US microseconds (default 2000) sleeps on a condition variable, so an idle server burns no CPU.
//
// run(parts, fn) calls fn(part, parts) for every part in [0, parts): part 0 on the calling thread, the others on
// workers (created on first use, kept for the process), and returns when all are done; the first exception a part
// throws is rethrown. One job at a time: concurrent callers take turns; a call from inside a part runs inline, and so
// does every call in the child of a fork() made after the pool started (the child has no workers).
#pragma once

#include <functional>

namespace bmos::kernels {

void spin_pool_run(int parts, const std::function<void(int part, int parts)>& fn);

}  // namespace bmos::kernels
