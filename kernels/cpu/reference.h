// Plain scalar references for the packed BinaryMoS layer: the ground truth every fast kernel (AVX2, CUDA) is tested
// against. Raw pointers, row-major, fp32, no torch. Accumulation in double so the reference is the exact answer.
#pragma once

#include <cstdint>

#include "kernels/packed_format.h"

namespace bmos::kernels {

// y (M, N) = x (M, K) @ B^T, where B (N, K) is the +-1 matrix stored in `bits` (packed_format.h layout).
void binary_matmul_ref(const packed::Word* bits, int64_t N, int64_t K, const float* x, int64_t M, float* y);

// The int8-table product (LutPrecision::kInt8 of binary_matmul.h), exactly. Each 30-column word of a row splits
// into 8 groups: 7 of 4 columns (offsets 0, 4, .., 24) and one of 2 (offsets 28, 29); columns past K count as 0.
// For each token, group g gets the 16-entry table of its signed sums
//     e[g][i] = sum_{b<4} (bit b of i ? +x[c_g + b] : -x[c_g + b])      fp32, added in the order b = 0..3
// (x = 0 past the group's columns). amax = max |e| over the token's tables; each group's own max |e| gets the
// largest m_g in {1, 2, 4, .., 128} with gmax_g * m_g <= amax, its entries are rounded to
//     q = round_half_even(e * (m_g * 127 / amax))          in [-127, 127]
// and, with integer weights 128 / m_g (what vpdpbusd multiplies the looked-up bytes by),
//     y[n] = float(sum_g (128 / m_g) * q[g][weight bits of row n in group g]) * (amax / 127 / 128)
// A group whose sums are 2-128x smaller than the token's largest is rounded that much finer: an outlier activation
// no longer coarsens every other group. Integer sums, so the fast kernel matches it bitwise.
// |y - exact| <= sum_g amax / (254 m_g) plus fp32 rounding. amax <= 1e-30 counts as 0 (y = 0).
void binary_matmul_int8_ref(const packed::Word* bits, int64_t N, int64_t K, const float* x, int64_t M, float* y);

// The whole BinaryMoS layer for M tokens:
//   g     = softmax(x @ router^T)            router (E, K)      g (M, E)
//   s_in  = g @ s_in_experts                 s_in_experts (E, K)
//   s_out = g @ s_out_experts                s_out_experts (E, N)
//   y     = ((x * s_in) @ B^T) * s_out + bias          bias (N) or nullptr
// With E == 1 the router is ignored (softmax of one logit is 1): exactly OneBit.
void binarymos_forward_ref(const packed::Word* bits, int64_t N, int64_t K, int64_t E, const float* router,
                           const float* s_in_experts, const float* s_out_experts, const float* bias, const float* x,
                           int64_t M, float* y);

}  // namespace bmos::kernels
