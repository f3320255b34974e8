// AVX-512 LUT matmul (see matmul_job.h). Compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512dq -mfma; only called when cpu_supports(CpuIsa::kAvx512).
//
// Groups of 5 columns: a group's 32-float table is two zmm registers, and vpermi2ps (_mm512_permutex2var_ps)
// looks it up with the low 5 bits of each of 16 dword lanes. A 512-bit load of a tile gives one 30-column word of
// 16 rows; shifting it right by 5g puts group g of the 16 rows in the index bits. Per 16 rows x 5 columns that is
// 3 instructions: shift, vpermi2ps, accumulate. On Zen 5 vpermi2ps runs as fast as the 16-entry vpermps, so
// 5-column groups do 25% more work per instruction than 4-column ones. The accumulation is an FMA with 1.0 (the
// rounding of an add): vaddps competes with the shuffles and shifts for ports, FMAs do not (1.25x on the GEMV).
// RT tiles share each table load; MT tokens share each shift.
#include <immintrin.h>

#include "kernels/cpu/matmul_job.h"

// GCC 12 false positive: the intrinsics' _mm512_undefined_*() self-initialises a variable on purpose.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace bmos::kernels::detail {

namespace {

constexpr int kGroupsPerWord = 6;
// The GEMV prefetches each tile's word this many 64-byte lines ahead: with weights out of cache (decode of a real
// model) the 8 tile streams otherwise wait on DRAM. In a block's last kPrefetchLines words it also prefetches the
// first lines of the next block's 8 tiles, which would otherwise start cold. On the Xeon of sessions 5-11, 4 lines
// ahead took 11008x4096 from 587-621 to 516-549 us on 1 thread (8 no better, 16 worse). On a Zen 5 EPYC VM (out
// of cache, the 3 shapes of bmos_bench, two runs of 5 interleaved rounds in one process) 12 lines plus the next
// block's took 1 thread from 24-26 to 28-31 GB/s of weights and 2 threads from 46-51 to 55-60 GB/s (the second run,
// on a busier host: 37-39 to 40-42); 12 lines alone gained about half of that, 8 and 16 lines with the next block
// a little less; in-cache speed unchanged.
constexpr int kPrefetchLines = 12;
constexpr int kGroupCols = 5;

// The tables of one token (x: K floats) for words_per_row words: group g covers columns 5g .. 5g+4.
void build_lut(const float* x, int64_t K, int64_t words_per_row, float* lut) {
  const __m512 sa = _mm512_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1);
  const __m512 sb = _mm512_setr_ps(-1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1);
  const __m512 sc = _mm512_setr_ps(-1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1);
  const __m512 sd = _mm512_setr_ps(-1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 1);
  // Entries 0-15 have bit 4 clear (-x[4]), entries 16-31 set (+x[4]).
  auto store = [&](const float* v, float* out) {
    __m512 e = _mm512_mul_ps(sa, _mm512_set1_ps(v[0]));
    e = _mm512_fmadd_ps(sb, _mm512_set1_ps(v[1]), e);
    e = _mm512_fmadd_ps(sc, _mm512_set1_ps(v[2]), e);
    e = _mm512_fmadd_ps(sd, _mm512_set1_ps(v[3]), e);
    const __m512 last = _mm512_set1_ps(v[4]);
    _mm512_store_ps(out, _mm512_sub_ps(e, last));
    _mm512_store_ps(out + 16, _mm512_add_ps(e, last));
  };
  const int64_t groups = words_per_row * kGroupsPerWord;
  const int64_t full = K / kGroupCols;
  for (int64_t g = 0; g < full; ++g) store(x + kGroupCols * g, lut + g * 32);
  for (int64_t g = full; g < groups; ++g) {  // the group straddling K, then groups wholly past K: x = 0 there
    float v[kGroupCols] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int b = 0; b < kGroupCols; ++b)
      if (kGroupCols * g + b < K) v[b] = x[kGroupCols * g + b];
    store(v, lut + g * 32);
  }
}

// y rows of tiles [t0, t0 + RT) for tokens [m0, m0 + MT), whose tables start at lut (lut_stride floats apart).
template <int RT, int MT>
void tiles_kernel(const MatmulJob& job, int64_t t0, int64_t m0, const float* lut, int64_t lut_stride) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 acc[RT][MT][2];  // even and odd groups (matmul_job.h)
  for (int r = 0; r < RT; ++r)
    for (int t = 0; t < MT; ++t) acc[r][t][0] = acc[r][t][1] = _mm512_setzero_ps();
  const packed::Word* base = job.tiles + t0 * job.tile_stride;
  for (int64_t w = 0; w < job.words_per_row; ++w) {
    __m512i v[RT];
    for (int r = 0; r < RT; ++r) v[r] = _mm512_load_si512(base + r * job.tile_stride + w * 16);
    if constexpr (MT == 1) {  // (past a tile's last word, or the job's last tile: harmless, a prefetch never faults)
      for (int r = 0; r < RT; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(base + r * job.tile_stride + (w + kPrefetchLines) * 16),
                     _MM_HINT_T0);
      const int64_t next_line = w - (job.words_per_row - kPrefetchLines);  // of the next block's tiles
      if (next_line >= 0)
        for (int r = 0; r < RT; ++r)
          _mm_prefetch(reinterpret_cast<const char*>(base + (RT + r) * job.tile_stride + next_line * 16), _MM_HINT_T0);
    }
    const float* L = lut + w * kLut5PerWord;
#pragma GCC unroll 6
    for (int g = 0; g < kGroupsPerWord; ++g) {
      for (int t = 0; t < MT; ++t) {
        const __m512 lo = _mm512_load_ps(L + t * lut_stride + g * 32);
        const __m512 hi = _mm512_load_ps(L + t * lut_stride + g * 32 + 16);
        for (int r = 0; r < RT; ++r)
          acc[r][t][g & 1] = _mm512_fmadd_ps(_mm512_permutex2var_ps(lo, v[r], hi), one, acc[r][t][g & 1]);
      }
      for (int r = 0; r < RT; ++r) v[r] = _mm512_srli_epi32(v[r], kGroupCols);
    }
  }
  for (int r = 0; r < RT; ++r) {
    const int64_t n = (t0 + r) * 16;
    if (n >= job.N) break;
    const __mmask16 mask = job.N - n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (job.N - n)) - 1u);
    for (int t = 0; t < MT; ++t)
      _mm512_mask_storeu_ps(job.y + (m0 + t) * job.N + n, mask, _mm512_add_ps(acc[r][t][0], acc[r][t][1]));
  }
}

// All of the job's row tiles for MT tokens: RT tiles at a time, then the rest in halving blocks. Measured on
// Zen 5 (thread CPU time, 4096x4096 and 11008x4096): GEMV RT = 8 (16 accumulators; 4 was 1.5x slower, 6 1.1x),
// GEMM MT = 2 tokens x RT = 4 (16 accumulators; MT = 3 x RT = 3 and MT = 4 x RT = 2 ran 1.7-1.9x slower).
template <int MT>
void token_tile(const MatmulJob& job, int64_t m0, const float* lut, int64_t lut_stride) {
  constexpr int RT = MT == 1 ? 8 : 4;
  int64_t t = job.tile_begin;
  for (; t + RT <= job.tile_end; t += RT) tiles_kernel<RT, MT>(job, t, m0, lut, lut_stride);
  if constexpr (RT > 4) {
    if (t + 4 <= job.tile_end) {
      tiles_kernel<4, MT>(job, t, m0, lut, lut_stride);
      t += 4;
    }
  }
  if (t + 2 <= job.tile_end) {
    tiles_kernel<2, MT>(job, t, m0, lut, lut_stride);
    t += 2;
  }
  if (t < job.tile_end) tiles_kernel<1, MT>(job, t, m0, lut, lut_stride);
}

constexpr int kTokenTile = 2;
static_assert(kTokenTile <= kMaxTokenTile, "the scratch holds kMaxTokenTile tables");

}  // namespace

void matmul_avx512(const MatmulJob& job) {
  const int64_t lut_stride = job.words_per_row * kLut5PerWord;
  for (int64_t m0 = job.m_begin; m0 < job.m_end; m0 += kTokenTile) {
    const int64_t mt = job.m_end - m0 < kTokenTile ? job.m_end - m0 : kTokenTile;
    for (int64_t t = 0; t < mt; ++t)
      build_lut(job.x + (m0 + t) * job.K, job.K, job.words_per_row, job.scratch + t * lut_stride);
    if (mt == 2) token_tile<2>(job, m0, job.scratch, lut_stride);
    else token_tile<1>(job, m0, job.scratch, lut_stride);
  }
}

}  // namespace bmos::kernels::detail
