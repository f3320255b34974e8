// y = x @ W^T for W held as int8 rows with one fp32 scale each (an exported model's embeddings/head with
// embedding_bits 8): W[n][k] = codes[n][k] * scale[n], so
//   y[m][n] = scale[n] * sum_k x[m][k] * codes[n][k]          x (M, K) fp32, codes (N, K) int8, scale (N), y (M, N)
// fp32 arithmetic, no activation quantization: the same numbers as dequantizing W and multiplying, up to summation
// order. The codes are read as they are (4x fewer bytes than fp32 rows: a 32000 x 4096 head is 131 MB, not 524).
// Rows are split across `threads` OpenMP threads; rows are independent, so results do not depend on the count.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_isa.h"

namespace bmos::kernels {

void int8_rows_matmul(const int8_t* codes, const float* scale, int64_t N, int64_t K, const float* x, int64_t M,
                      float* y, int threads = 1, CpuIsa isa = best_cpu_isa());

// The plain loop the fast path is held to (tests/kernels).
void int8_rows_matmul_ref(const int8_t* codes, const float* scale, int64_t N, int64_t K, const float* x, int64_t M,
                          float* y);

namespace detail {
// Rows [n_begin, n_end) of y for all M tokens.
void int8_rows_avx512(const int8_t* codes, const float* scale, int64_t K, const float* x, int64_t M, float* y,
                      int64_t N, int64_t n_begin, int64_t n_end);
}  // namespace detail

}  // namespace bmos::kernels
