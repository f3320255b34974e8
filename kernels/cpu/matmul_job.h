// Internal: the slice of y (M, N) = x (M, K) @ B^T that one thread computes, as plain values, and the per-ISA
// kernels that compute it. Plain data only: the ISA files are compiled with -mavx2 / -mavx512*, so they must not
// share inline functions with generic code (the linker could keep an AVX-512 copy for everyone).
//
// Every kernel uses the same lookup-table (LUT) scheme, after T-MAC / LUT-GEMM: for each group g of G input
// columns of a token, a 2^G-float table holds all the signed sums
//     lut[g][i] = sum_{b<G} (bit b of i ? +x[G*g+b] : -x[G*g+b])
// and the G weight bits of a row in that group (G consecutive bits of a 30-column tile word) index it: one lookup
// replaces G sign-selected adds, and one vpermps / vpermi2ps looks up 8 or 16 rows at once. G is 5 for AVX-512
// (32 entries = two zmm, vpermi2ps) and the scalar kernel, 3 for AVX2 (8 entries = one ymm, vpermps); both divide
// the 30 columns of a word. Tables and sums are fp32, so the result is the fp32 matmul up to summation order (no
// quantization). LutPrecision::kInt8 rounds the same tables to int8 (matmul_int8_avx512.cpp,
// binary_matmul_int8_ref). The order is fixed per kernel so that results do not depend on the thread count or M: each
// output sums the lookups of even groups and of odd groups separately, in column order, then adds the two.
#pragma once

#include <cstdint>

#include "kernels/packed_format.h"

namespace bmos::kernels::detail {

// Floats of one token's tables per 30-column word: 6 groups x 32 entries (G = 5), 10 groups x 8 entries (G = 3).
constexpr int64_t kLut5PerWord = 6 * 32;
constexpr int64_t kLut3PerWord = 10 * 8;
// Tokens whose tables are built and used together: the scratch holds this many tables of kLut5PerWord per word.
constexpr int kMaxTokenTile = 2;
// Tokens of the int8 kernel sharing each row tile's lookup indices; its scratch holds this many tables of
// kLut8PerWord bytes (8 groups x 16 int8 entries) per word.
constexpr int kInt8TokenTile = 8;
constexpr int64_t kLut8PerWord = 8 * 16;
// Floats per word of one token's table build (its transposed inputs, 4 x 8, and its group maxima, 8).
constexpr int64_t kInt8BuildFloatsPerWord = 40;

struct MatmulJob {
  const packed::Word* tiles;  // tile 0 of a PreparedBinaryMatrix
  int64_t tile_stride;        // words between tiles
  int64_t words_per_row;      // 30-column words
  int64_t N, K;
  const float* x;  // (M, K)
  float* y;        // (M, N)
  // This thread's part: tokens [m_begin, m_end) x row tiles [tile_begin, tile_end) (16 rows each, clipped to N).
  int64_t m_begin, m_end, tile_begin, tile_end;
  // 64-byte aligned, private to the thread: kMaxTokenTile * words_per_row * kLut5PerWord floats (the int8 kernel:
  // kInt8TokenTile * words_per_row * (kLut8PerWord + 8) bytes: the tables, then 8 group weights per word, then
  // words_per_row * kInt8BuildFloatsPerWord floats of table-build work).
  float* scratch;
};

void matmul_scalar(const MatmulJob& job);  // G = 5, one row at a time
void matmul_avx2(const MatmulJob& job);    // G = 3
void matmul_avx512(const MatmulJob& job);  // G = 5
void matmul_int8_avx512(const MatmulJob& job);  // G = 4, int8 tables; AVX-512 VBMI + VNNI

}  // namespace bmos::kernels::detail
