// AVX2 + FMA LUT matmul (see matmul_job.h). Compiled with -mavx2 -mfma; only called when
// cpu_supports(CpuIsa::kAvx2).
//
// vpermps on ymm looks up 8 entries with the low 3 bits of each lane, so the groups are 3 columns: one table is
// one ymm register, 10 groups per 30-column word. Each 16-row tile is handled as two halves of 8 rows (one ymm
// each); shifting the half-tile's words right by 3g puts group g in the index bits: shift, vpermps and an FMA with
// 1.0 (the rounding of an add; vaddps competes with the shuffles for ports) per 8 rows x 3 columns. Measured on
// Zen 5 against 4-column groups (two vpermps and a blend per lookup) and against vaddps accumulation.
#include <immintrin.h>

#include "kernels/cpu/matmul_job.h"

namespace bmos::kernels::detail {

namespace {

constexpr int kGroupsPerWord = 10;
constexpr int kGroupCols = 3;

// The tables of one token (x: K floats) for words_per_row words: group g covers columns 3g .. 3g+2.
void build_lut(const float* x, int64_t K, int64_t words_per_row, float* lut) {
  const __m256 sa = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);
  const __m256 sb = _mm256_setr_ps(-1, -1, 1, 1, -1, -1, 1, 1);
  const __m256 sc = _mm256_setr_ps(-1, -1, -1, -1, 1, 1, 1, 1);
  auto store = [&](const float* v, float* out) {
    __m256 e = _mm256_mul_ps(sa, _mm256_set1_ps(v[0]));
    e = _mm256_fmadd_ps(sb, _mm256_set1_ps(v[1]), e);
    _mm256_store_ps(out, _mm256_fmadd_ps(sc, _mm256_set1_ps(v[2]), e));
  };
  const int64_t groups = words_per_row * kGroupsPerWord;
  const int64_t full = K / kGroupCols;
  for (int64_t g = 0; g < full; ++g) store(x + kGroupCols * g, lut + g * 8);
  for (int64_t g = full; g < groups; ++g) {  // the group straddling K, then groups wholly past K: x = 0 there
    float v[kGroupCols] = {0.0f, 0.0f, 0.0f};
    for (int b = 0; b < kGroupCols; ++b)
      if (kGroupCols * g + b < K) v[b] = x[kGroupCols * g + b];
    store(v, lut + g * 8);
  }
}

// y rows of half-tiles [h0, h0 + RH) (8 rows each; half h is rows 8h .. 8h+7) for tokens [m0, m0 + MT).
template <int RH, int MT>
void halves_kernel(const MatmulJob& job, int64_t h0, int64_t m0, const float* lut, int64_t lut_stride) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 acc[RH][MT][2];  // even and odd groups (matmul_job.h)
  for (int r = 0; r < RH; ++r)
    for (int t = 0; t < MT; ++t) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
  const packed::Word* src[RH];
  for (int r = 0; r < RH; ++r) src[r] = job.tiles + ((h0 + r) / 2) * job.tile_stride + ((h0 + r) % 2) * 8;
  for (int64_t w = 0; w < job.words_per_row; ++w) {
    __m256i v[RH];
    for (int r = 0; r < RH; ++r) v[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(src[r] + w * 16));
    const float* L = lut + w * kLut3PerWord;
#pragma GCC unroll 10
    for (int g = 0; g < kGroupsPerWord; ++g) {
      for (int t = 0; t < MT; ++t) {
        const __m256 table = _mm256_load_ps(L + t * lut_stride + g * 8);
        for (int r = 0; r < RH; ++r)
          acc[r][t][g & 1] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(table, v[r]), one, acc[r][t][g & 1]);
      }
      for (int r = 0; r < RH; ++r) v[r] = _mm256_srli_epi32(v[r], kGroupCols);
    }
  }
  for (int r = 0; r < RH; ++r) {
    const int64_t n = (h0 + r) * 8;
    if (n >= job.N) break;
    for (int t = 0; t < MT; ++t) {
      float* out = job.y + (m0 + t) * job.N + n;
      const __m256 sum = _mm256_add_ps(acc[r][t][0], acc[r][t][1]);
      if (job.N - n >= 8) {
        _mm256_storeu_ps(out, sum);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, sum);
        for (int64_t i = 0; i < job.N - n; ++i) out[i] = tmp[i];
      }
    }
  }
}

// All of the job's half-tiles for MT tokens: RH at a time, then the rest in halving blocks. 16 ymm registers hold
// RH * MT * 2 accumulators, RH words, a table and the constant. Measured on Zen 5 (thread CPU time): GEMV RH = 4
// (2 was 1.2x slower); GEMM 2 tokens x RH = 2 (1 token at a time was 1.35x slower).
template <int MT>
void token_tile(const MatmulJob& job, int64_t m0, const float* lut, int64_t lut_stride) {
  constexpr int RH = MT == 1 ? 4 : 2;
  const int64_t h_end = job.tile_end * 2;
  int64_t h = job.tile_begin * 2;
  for (; h + RH <= h_end; h += RH) halves_kernel<RH, MT>(job, h, m0, lut, lut_stride);
  if constexpr (RH > 2) {
    if (h + 2 <= h_end) {
      halves_kernel<2, MT>(job, h, m0, lut, lut_stride);
      h += 2;
    }
  }
  if (h < h_end) halves_kernel<1, MT>(job, h, m0, lut, lut_stride);
}

constexpr int kTokenTile = 2;
static_assert(kTokenTile <= kMaxTokenTile && kLut3PerWord <= kLut5PerWord, "the scratch holds the tables");

}  // namespace

void matmul_avx2(const MatmulJob& job) {
  const int64_t lut_stride = job.words_per_row * kLut3PerWord;
  for (int64_t m0 = job.m_begin; m0 < job.m_end; m0 += kTokenTile) {
    const int64_t mt = job.m_end - m0 < kTokenTile ? job.m_end - m0 : kTokenTile;
    for (int64_t t = 0; t < mt; ++t)
      build_lut(job.x + (m0 + t) * job.K, job.K, job.words_per_row, job.scratch + t * lut_stride);
    if (mt == 2) token_tile<2>(job, m0, job.scratch, lut_stride);
    else token_tile<1>(job, m0, job.scratch, lut_stride);
  }
}

}  // namespace bmos::kernels::detail
