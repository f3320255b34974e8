// The binary matmul of the CPU serving path: y (M, N) = x (M, K) @ B^T for a +-1 matrix B held as a
// PreparedBinaryMatrix. M == 1 is the decode GEMV, M > 1 the prefill GEMM; both use the fp32 lookup-table kernels
// of matmul_job.h (exact fp32 arithmetic, only the summation order differs from binary_matmul_ref). For one ISA
// the result is bitwise the same for any M and any thread count.
// Row-major raw pointers, no torch. Threads split the output rows (or, for small N, the tokens) between them.
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/prepared_matrix.h"

namespace bmos::kernels {

// x (M, K), y (M, N): K = B.cols(), N = B.rows(); y must not overlap x. threads >= 1 (1 or 2 on the serving
// machine); with OpenMP absent from the build, the work runs on the calling thread whatever `threads` says.
// isa picks the kernels (tests and benchmarks compare them); std::invalid_argument when this CPU lacks it.
void binary_matmul(const PreparedBinaryMatrix& B, const float* x, int64_t M, float* y, int threads = 1,
                   CpuIsa isa = best_cpu_isa());

// The same, and each thread then calls done(m0, m1, n0, n1) on the block of y it computed (tokens [m0, m1) x rows
// [n0, n1)): an epilogue that runs on the thread whose cache holds that block, in parallel (binarymos_forward scales
// its outputs there). The blocks of all calls tile y exactly once.
void binary_matmul(const PreparedBinaryMatrix& B, const float* x, int64_t M, float* y, int threads, CpuIsa isa,
                   const std::function<void(int64_t m0, int64_t m1, int64_t n0, int64_t n1)>& done);

}  // namespace bmos::kernels
