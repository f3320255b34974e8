// The fused BinaryMoS layer on the fast CPU kernels: the same computation and arguments as binarymos_forward_ref
// (kernels/cpu/reference.h), with the weight as a PreparedBinaryMatrix (N = B.rows(), K = B.cols()):
//   g     = softmax(x @ router^T)            router (E, K)      g (M, E), fp32
//   s_in  = g @ s_in_experts                 s_in_experts (E, K)
//   s_out = g @ s_out_experts                s_out_experts (E, N)
//   y     = ((x * s_in) @ B^T) * s_out + bias          bias (N) or nullptr
// The binary matmul is binary_matmul on `isa`: exact fp32 lookup tables, or with lut = kInt8 tables rounded to int8
// for M >= 2 tokens (binary_matmul.h). E == 1
// ignores the router (OneBit). x (M, K), y (M, N) row-major; y must not overlap x.
#pragma once

#include <cstdint>

#include "kernels/cpu/binary_matmul.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/prepared_matrix.h"

namespace bmos::kernels {

void binarymos_forward(const PreparedBinaryMatrix& B, int64_t E, const float* router, const float* s_in_experts,
                       const float* s_out_experts, const float* bias, const float* x, int64_t M, float* y,
                       int threads = 1, CpuIsa isa = best_cpu_isa(), LutPrecision lut = LutPrecision::kFp32);

}  // namespace bmos::kernels
