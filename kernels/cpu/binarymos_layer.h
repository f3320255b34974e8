// The fused BinaryMoS layer on the fast CPU kernels: the same computation and arguments as binarymos_forward_ref
// (kernels/cpu/reference.h), with the weight as a PreparedBinaryMatrix (N = B.rows(), K = B.cols()):
//   g     = softmax(x @ router^T)            router (E, K)      g (M, E), fp32
//   s_in  = g @ s_in_experts                 s_in_experts (E, K)
//   s_out = g @ s_out_experts                s_out_experts (E, N)
//   y     = ((x * s_in) @ B^T) * s_out + bias          bias (N) or nullptr
// The binary matmul is binary_matmul on `isa`: exact fp32 lookup tables, or with lut = kInt8 tables rounded to int8
// for M >= 2 tokens (binary_matmul.h). E == 1
// ignores the router (OneBit). x (M, K), y (M, N) row-major; y must not overlap x.
//
// The scales (router, s_in_experts, s_out_experts) may be fp32, fp16 or bf16 (MosScales): an exported model keeps the
// 16-bit values its file stores instead of widening them at load, and decode reads half the scale bytes (a LLaMA-2-7B
// token: 29 MB instead of 58). Each value is widened exactly as it is read and the arithmetic is the fp32 path's, so
// the result is bitwise the one of the same values given as fp32.
#pragma once

#include <cstdint>

#include "kernels/cpu/binary_matmul.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/prepared_matrix.h"

namespace bmos::kernels {

enum class ScaleType { kF32, kF16, kBF16 };
const char* scale_type_name(ScaleType t);  // "fp32", "fp16", "bf16"

// The E experts' scales of one layer, all three in `type` (fp16 / bf16 as their 16-bit patterns).
struct MosScales {
  int64_t E = 1;
  ScaleType type = ScaleType::kF32;
  const void* router = nullptr;  // (E, K); unused (may be null) when E == 1
  const void* s_in = nullptr;    // (E, K)
  const void* s_out = nullptr;   // (E, N)
};

void binarymos_forward(const PreparedBinaryMatrix& B, const MosScales& scales, const float* bias, const float* x,
                       int64_t M, float* y, int threads = 1, CpuIsa isa = best_cpu_isa(),
                       LutPrecision lut = LutPrecision::kFp32);
// The same with fp32 scales.
void binarymos_forward(const PreparedBinaryMatrix& B, int64_t E, const float* router, const float* s_in_experts,
                       const float* s_out_experts, const float* bias, const float* x, int64_t M, float* y,
                       int threads = 1, CpuIsa isa = best_cpu_isa(), LutPrecision lut = LutPrecision::kFp32);

}  // namespace bmos::kernels
