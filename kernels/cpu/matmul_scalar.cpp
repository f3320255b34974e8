// Portable fallback of the LUT matmul (see matmul_job.h) for CPUs without AVX2: the AVX-512 kernel's 5-column
// tables, looked up one row at a time. Its table entries and summation order are those of matmul_avx512.cpp.
#include "kernels/cpu/matmul_job.h"

namespace bmos::kernels::detail {

namespace {
void build_lut(const float* x, int64_t K, int64_t words_per_row, float* lut) {
  for (int64_t g = 0; g < words_per_row * 6; ++g) {
    float v[5];
    for (int b = 0; b < 5; ++b) v[b] = 5 * g + b < K ? x[5 * g + b] : 0.0f;
    for (int i = 0; i < 32; ++i) {
      float s = (i & 1) ? v[0] : -v[0];
      s += (i & 2) ? v[1] : -v[1];
      s += (i & 4) ? v[2] : -v[2];
      s += (i & 8) ? v[3] : -v[3];
      s += (i & 16) ? v[4] : -v[4];
      lut[g * 32 + i] = s;
    }
  }
}
}  // namespace

void matmul_scalar(const MatmulJob& job) {
  float* lut = job.scratch;
  for (int64_t m = job.m_begin; m < job.m_end; ++m) {
    build_lut(job.x + m * job.K, job.K, job.words_per_row, lut);
    for (int64_t t = job.tile_begin; t < job.tile_end; ++t) {
      const packed::Word* tile = job.tiles + t * job.tile_stride;
      for (int r = 0; r < 16 && t * 16 + r < job.N; ++r) {
        float acc[2] = {0.0f, 0.0f};  // even and odd groups
        for (int64_t w = 0; w < job.words_per_row; ++w) {
          const packed::Word word = tile[w * 16 + r];
          const float* L = lut + w * kLut5PerWord;
          for (int g = 0; g < 6; ++g) acc[g & 1] += L[g * 32 + ((word >> (5 * g)) & 31u)];
        }
        job.y[m * job.N + t * 16 + r] = acc[0] + acc[1];
      }
    }
  }
}

}  // namespace bmos::kernels::detail
