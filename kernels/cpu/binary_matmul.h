// The binary matmul of the CPU serving path: y (M, N) = x (M, K) @ B^T for a +-1 matrix B held as a
// PreparedBinaryMatrix. M == 1 is the decode GEMV, M > 1 the prefill GEMM; both use the fp32 lookup-table kernels
// of matmul_job.h (exact fp32 arithmetic, only the summation order differs from binary_matmul_ref). For one ISA
// the result is bitwise the same for any M and any thread count.
// LutPrecision::kInt8 is an opt-in for prefill only: products of M >= 2 tokens round the tables to int8 (a scale
// per token refined per group, binary_matmul_int8_ref gives the exact arithmetic) and run about 2x faster on
// AVX-512 VBMI + VNNI (2.2-2.4x at 128 tokens, 4096x4096, 1 thread: bmos_bench BM_PackedGemm_Int8); the one-token
// product (decode, memory-bound) stays exact whatever the precision says.
// Row-major raw pointers, no torch. Threads split the output rows (or, for small N, the tokens) between them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/prepared_matrix.h"

namespace bmos::kernels {

enum class LutPrecision {
  kFp32,  // exact fp32 tables (the default)
  kInt8,  // tables rounded to int8 for M >= 2: relative output error about 0.5 % (Gaussian activations)
};
// True when this CPU can run the int8-table kernel (AVX-512 F/BW/VL/DQ + VBMI + VNNI).
bool cpu_supports_int8_lut();
// "fp32" / "int8"; parse_lut_precision throws std::invalid_argument naming the value otherwise.
const char* lut_precision_name(LutPrecision p);
LutPrecision parse_lut_precision(const std::string& name);

// x (M, K), y (M, N): K = B.cols(), N = B.rows(); y must not overlap x. threads >= 1 (1 or 2 on the serving
// machine); with OpenMP absent from the build, the work runs on the calling thread whatever `threads` says.
// isa picks the kernels (tests and benchmarks compare them); std::invalid_argument when this CPU lacks it, or lacks
// the int8 kernel that lut = kInt8 asks for (M >= 2 only).
void binary_matmul(const PreparedBinaryMatrix& B, const float* x, int64_t M, float* y, int threads = 1,
                   CpuIsa isa = best_cpu_isa());

// The same, and each thread then calls done(m0, m1, n0, n1) on the block of y it computed (tokens [m0, m1) x rows
// [n0, n1)): an epilogue that runs on the thread whose cache holds that block, in parallel (binarymos_forward scales
// its outputs there). The blocks of all calls tile y exactly once.
void binary_matmul(const PreparedBinaryMatrix& B, const float* x, int64_t M, float* y, int threads, CpuIsa isa,
                   const std::function<void(int64_t m0, int64_t m1, int64_t n0, int64_t n1)>& done,
                   LutPrecision lut = LutPrecision::kFp32);

}  // namespace bmos::kernels
