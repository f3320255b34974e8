// AVX-512 int8-row matmul (int8_rows.h): 16 codes -> 16 int32 (vpmovsxbd) -> 16 fp32 -> FMA with x, 4 rows at a time
// so each x load serves 4 rows; a row block stays in L1 while the tokens pass over it. Compiled with -mavx512f
// -mavx512bw; called only when cpu_supports(CpuIsa::kAvx512).
#include <immintrin.h>

#include "kernels/cpu/int8_rows.h"

// GCC 12 false positive: the intrinsics' _mm512_undefined_*() self-initialises a variable on purpose.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace bmos::kernels::detail {

namespace {

inline __m512 codes16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

inline __m512 codes_tail(const int8_t* p, __mmask16 mask) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, p)));
}

template <int R>
void rows_block(const int8_t* codes, const float* scale, int64_t K, const float* x, int64_t M, float* y, int64_t N,
                int64_t n0) {
  const int64_t full = K / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (K - full)) - 1u);
  for (int64_t m = 0; m < M; ++m) {
    const float* xm = x + m * K;
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    // While this block's R rows stream in, prefetch the next block's, one 64-byte line per 16 codes read: each row
    // of a 4096-wide head is one 4 KiB page, where the hardware prefetcher starts over. Measured on the LLaMA-2-7B
    // int8 head (bmos_bench BM_Decode, same-session A/B, 3 rounds each): head time / linear time 0.172-0.178 ->
    // 0.155-0.161 on 1 thread, 0.157-0.163 -> 0.135-0.144 on 2.
    const char* next = reinterpret_cast<const char*>(codes + (n0 + R) * K);
    const int64_t next_bytes = m == 0 && n0 + 2 * R <= N ? R * K : 0;
    for (int64_t k = 0; k < full; k += 16) {
      if (k * 4 < next_bytes) _mm_prefetch(next + k * 4, _MM_HINT_T0);
      const __m512 xv = _mm512_loadu_ps(xm + k);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(xv, codes16(codes + (n0 + r) * K + k), acc[r]);
    }
    if (full < K) {
      const __m512 xv = _mm512_maskz_loadu_ps(tail, xm + full);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(xv, codes_tail(codes + (n0 + r) * K + full, tail), acc[r]);
    }
    for (int r = 0; r < R; ++r) y[m * N + n0 + r] = _mm512_reduce_add_ps(acc[r]) * scale[n0 + r];
  }
}

}  // namespace

void int8_rows_avx512(const int8_t* codes, const float* scale, int64_t K, const float* x, int64_t M, float* y,
                      int64_t N, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + 4 <= n_end; n += 4) rows_block<4>(codes, scale, K, x, M, y, N, n);
  for (; n < n_end; ++n) rows_block<1>(codes, scale, K, x, M, y, N, n);
}

}  // namespace bmos::kernels::detail
