// AVX-512 int8-table LUT matmul (LutPrecision::kInt8, see matmul_job.h), for products of 2 or more tokens.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vbmi -mavx512vnni; only called when
// cpu_supports_int8_lut().
//
// binary_matmul_int8_ref states the arithmetic; the result matches it bitwise. Each 30-column tile word splits into
// 8 groups (7 of 4 columns, one of 2), each with a 16-entry table of its signed sums rounded to int8: one scale
// per token, refined 2-128x per group whose sums are that much smaller (the group's integer weight 128 / m_g). The 4
// groups of a half word are one 64-byte table, and one vpermb (_mm512_permutexvar_epi8) looks up 4 groups x 16 rows
// = up to 256 multiply-adds; vpdpbusd multiplies each looked-up byte by its group's weight (the unsigned operand,
// the same for every row) and adds each row's 4 products into its int32 sum. Measured on this Xeon
// (experiments/isa_ceiling.c and a same-loop test), vpermb + vpdpbusd runs 2x the rate of vpermi2b + vpdpbusd
// (vpermi2b is 2 uops), so 4-column groups beat 5-column ones here.
//
// Lookup indices: byte j of a row's dword must be (its 4 weight bits of group j) | (j << 4), j = 0..3: bits 4-5
// pick the group's 16 entries in the 64-byte table. vpmultishiftqb moves each row's 4 groups to the low bits of
// its 4 bytes in one instruction (per qword: 2 rows), vpternlogd masks them and adds j << 4. The second half word
// (groups 4-7, bits 16-29) reads bits 30-31 as the last group's bits 2-3: they are zero in the tile layout. The
// indices of a row tile are computed once per word and reused by MT tokens (8 tokens x 2 tiles: 16 accumulators).
// Measured here (bmos_bench BM_PackedGemm_Int8, 128 tokens at 4096x4096, 1 thread, interleaved runs): K chunks
// that keep 8 tokens' tables in L1 (8 or 16 or 32 words) were slower, 6.9-9.2 ms against 5.3-5.8 ms without.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/matmul_job.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace bmos::kernels::detail {

namespace {

// One token's int8 tables: words x 8 groups x 16 bytes, group g of word w at byte 128w + 16g, entry i =
// round(e[g][i] * m_g * 127 / amax), and the groups' integer weights 128 / m_g at weights[8w + g]
// (binary_matmul_int8_ref); returns the token's scale amax / 127 / 128. Two passes, a word (8 groups) at a time:
// the group maxima and amax, then the refinements and the rounded entries. Before this was vectorised per word,
// the scalar group loop took a third of the kernel's time at 128 tokens of 4096 x 4096.
// work: words * kInt8BuildFloatsPerWord floats.
float build_tables(const float* x, int64_t K, int64_t words, int8_t* out, uint8_t* weights, float* work) {
  const __m512 sa = _mm512_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1);
  const __m512 sb = _mm512_setr_ps(-1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1);
  const __m512 sc = _mm512_setr_ps(-1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1);
  const __m512 sd = _mm512_setr_ps(-1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 1);
  // Column b of each of a word's 8 groups (lanes 0-7) from its 32 loaded columns: group g starts at column 4g.
  // Lanes 8-15 repeat them and are never used. Group 7 has columns 28-29 only: the loads zero columns 30-31.
  const __m512i col[4] = {
      _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28),
      _mm512_setr_epi32(1, 5, 9, 13, 17, 21, 25, 29, 1, 5, 9, 13, 17, 21, 25, 29),
      _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 2, 6, 10, 14, 18, 22, 26, 30),
      _mm512_setr_epi32(3, 7, 11, 15, 19, 23, 27, 31, 3, 7, 11, 15, 19, 23, 27, 31)};
  // Pass 1: each group's 4 inputs (0 past K), transposed to inputs[32w + 8b + g], and its largest |entry|: the
  // all-signs-matching sum |x0| + |x1| + |x2| + |x3|, added in the same order (rounding is monotonic, so no other
  // entry rounds larger): the reference's max over the 16 entries.
  float* inputs = work;               // words x 4 x 8
  float* gmax = inputs + words * 32;  // words x 8
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  __m512 amax16 = _mm512_setzero_ps();
  for (int64_t w = 0; w < words; ++w) {
    const int64_t valid = std::min<int64_t>(30, K - 30 * w);  // >= 1: words = ceil(K / 30)
    const __mmask16 ma = valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1u);
    const __mmask16 mb = valid > 16 ? __mmask16((1u << (valid - 16)) - 1u) : __mmask16(0);
    const __m512 a = _mm512_maskz_loadu_ps(ma, x + 30 * w), b = _mm512_maskz_loadu_ps(mb, x + 30 * w + 16);
    __m512 sum = _mm512_setzero_ps();
    for (int c = 0; c < 4; ++c) {
      const __m512 v = _mm512_permutex2var_ps(a, col[c], b);
      _mm256_storeu_ps(inputs + 32 * w + 8 * c, _mm512_castps512_ps256(v));
      const __m512 av = _mm512_and_ps(v, abs_mask);
      sum = c == 0 ? av : _mm512_add_ps(sum, av);
    }
    _mm256_storeu_ps(gmax + 8 * w, _mm512_castps512_ps256(sum));
    amax16 = _mm512_mask_max_ps(amax16, 0xFF, sum, amax16);  // a NaN sum is skipped, as std::max(amax, NaN) does
  }
  const float amax = _mm512_reduce_max_ps(amax16);
  const float inv = amax > 1e-30f ? 127.0f / amax : 0.0f;
  // m_g * 127 / amax for m_g = 2^k, k = 0..7, in lanes 0-7.
  const __m512 mul_by_k = _mm512_mul_ps(_mm512_setr_ps(1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0, 0),
                                        _mm512_set1_ps(inv));
  const __m256 amax8 = _mm256_set1_ps(amax);
  alignas(32) float mul[8];
  // Pass 2: per group, k = the number of j in 1..7 with gmax * 2^j <= amax (exact products, monotonic in j: the
  // reference's loop), the weight 128 >> k, and the entries, added in the order of the reference (products with +-1
  // are exact, and an FMA with +-1 rounds like the add), times m_g * 127 / amax, rounded.
  for (int64_t w = 0; w < words; ++w) {
    const __m256 gm = _mm256_loadu_ps(gmax + 8 * w);
    __m256i k = _mm256_setzero_si256();
    for (int j = 1; j <= 7; ++j) {
      const __m256 le = _mm256_cmp_ps(_mm256_mul_ps(gm, _mm256_set1_ps(static_cast<float>(1 << j))), amax8,
                                      _CMP_LE_OQ);
      k = _mm256_sub_epi32(k, _mm256_castps_si256(le));  // all-ones lanes: + 1
    }
    _mm_storel_epi64(reinterpret_cast<__m128i*>(weights + 8 * w),
                     _mm256_cvtepi32_epi8(_mm256_srlv_epi32(_mm256_set1_epi32(128), k)));
    _mm256_store_ps(mul, _mm512_castps512_ps256(_mm512_permutexvar_ps(_mm512_castsi256_si512(k), mul_by_k)));
    const float* in = inputs + 32 * w;
    for (int g = 0; g < 8; ++g) {
      __m512 e = _mm512_mul_ps(sa, _mm512_set1_ps(in[g]));
      e = _mm512_fmadd_ps(sb, _mm512_set1_ps(in[8 + g]), e);
      e = _mm512_fmadd_ps(sc, _mm512_set1_ps(in[16 + g]), e);
      e = _mm512_fmadd_ps(sd, _mm512_set1_ps(in[24 + g]), e);
      _mm_store_si128(reinterpret_cast<__m128i*>(out + 128 * w + 16 * g),
                      _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(e, _mm512_set1_ps(mul[g])))));
    }
  }
  return amax / 127.0f * (1.0f / 128.0f);
}

// The lookup indices of the half word at bits `shift` .. shift + 15 of each row's dword of v (shift 0 or 16).
template <int kShift>
inline __m512i half_word_indices(__m512i v) {
  // Per qword (rows 2q, 2q + 1): bytes 0-3 take bits s, s + 4, s + 8, s + 12 of the low dword, bytes 4-7 of the
  // high one.
  constexpr long long s = kShift;
  constexpr long long shifts = s | (s + 4) << 8 | (s + 8) << 16 | (s + 12) << 24 | (s + 32) << 32 |
                               (s + 36) << 40 | (s + 40) << 48 | (s + 44) << 56;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i group_sel = _mm512_set1_epi32(0x30201000);  // byte j: j << 4
  return _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(_mm512_set1_epi64(shifts), v), low4, group_sel,
                                   0xEA);  // (a & b) | c
}

// y rows of tiles [t0, t0 + RT) for tokens [m0, m0 + MT); tables of token t at tables + t * table_stride bytes.
template <int RT, int MT>
void tiles_kernel(const MatmulJob& job, int64_t t0, int64_t m0, const int8_t* tables, int64_t table_stride,
                  const uint8_t* weights, const float* scales) {
  __m512i acc[RT][MT];
  for (int r = 0; r < RT; ++r)
    for (int t = 0; t < MT; ++t) acc[r][t] = _mm512_setzero_si512();
  const packed::Word* base = job.tiles + t0 * job.tile_stride;
  for (int64_t w = 0; w < job.words_per_row; ++w) {
    const int8_t* T = tables + w * kLut8PerWord;
    __m512i lo[RT], hi[RT];
    for (int r = 0; r < RT; ++r) {
      const __m512i v = _mm512_load_si512(base + r * job.tile_stride + w * 16);
      lo[r] = half_word_indices<0>(v);
      hi[r] = half_word_indices<16>(v);
    }
    for (int t = 0; t < MT; ++t) {
      const __m512i tlo = _mm512_load_si512(T + t * table_stride);
      const __m512i thi = _mm512_load_si512(T + t * table_stride + 64);
      // The 4 groups' weights of each half word, the same for every row: byte j of each dword.
      int32_t wlo, whi;
      std::memcpy(&wlo, weights + t * job.words_per_row * 8 + w * 8, 4);
      std::memcpy(&whi, weights + t * job.words_per_row * 8 + w * 8 + 4, 4);
      const __m512i mlo = _mm512_set1_epi32(wlo), mhi = _mm512_set1_epi32(whi);
      for (int r = 0; r < RT; ++r) {
        acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], mlo, _mm512_permutexvar_epi8(lo[r], tlo));
        acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], mhi, _mm512_permutexvar_epi8(hi[r], thi));
      }
    }
  }
  for (int r = 0; r < RT; ++r) {
    const int64_t n = (t0 + r) * 16;
    if (n >= job.N) break;
    const __mmask16 mask = job.N - n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (job.N - n)) - 1u);
    for (int t = 0; t < MT; ++t)
      _mm512_mask_storeu_ps(job.y + (m0 + t) * job.N + n, mask,
                            _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][t]), _mm512_set1_ps(scales[t])));
  }
}

template <int MT>
void token_tile(const MatmulJob& job, int64_t m0, const int8_t* tables, int64_t table_stride, const uint8_t* weights,
                const float* scales) {
  constexpr int RT = MT > 4 ? 2 : 4;
  int64_t t = job.tile_begin;
  for (; t + RT <= job.tile_end; t += RT) tiles_kernel<RT, MT>(job, t, m0, tables, table_stride, weights, scales);
  for (; t < job.tile_end; ++t) tiles_kernel<1, MT>(job, t, m0, tables, table_stride, weights, scales);
}

}  // namespace

void matmul_int8_avx512(const MatmulJob& job) {
  const int64_t table_stride = job.words_per_row * kLut8PerWord;  // bytes per token, a multiple of 64
  int8_t* tables = reinterpret_cast<int8_t*>(job.scratch);
  uint8_t* weights = reinterpret_cast<uint8_t*>(tables + kInt8TokenTile * table_stride);  // 8 per word and token
  float* work = reinterpret_cast<float*>(weights + kInt8TokenTile * job.words_per_row * 8);  // build_tables'

  for (int64_t m0 = job.m_begin; m0 < job.m_end; m0 += kInt8TokenTile) {
    const int64_t mt = job.m_end - m0 < kInt8TokenTile ? job.m_end - m0 : kInt8TokenTile;
    float scales[kInt8TokenTile];
    for (int64_t t = 0; t < mt; ++t)
      scales[t] = build_tables(job.x + (m0 + t) * job.K, job.K, job.words_per_row, tables + t * table_stride,
                               weights + t * job.words_per_row * 8, work);
    switch (mt) {
      case 8: token_tile<8>(job, m0, tables, table_stride, weights, scales); break;
      case 7: token_tile<7>(job, m0, tables, table_stride, weights, scales); break;
      case 6: token_tile<6>(job, m0, tables, table_stride, weights, scales); break;
      case 5: token_tile<5>(job, m0, tables, table_stride, weights, scales); break;
      case 4: token_tile<4>(job, m0, tables, table_stride, weights, scales); break;
      case 3: token_tile<3>(job, m0, tables, table_stride, weights, scales); break;
      case 2: token_tile<2>(job, m0, tables, table_stride, weights, scales); break;
      default: token_tile<1>(job, m0, tables, table_stride, weights, scales); break;
    }
  }
}

}  // namespace bmos::kernels::detail
