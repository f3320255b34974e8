// The CUDA kernels' own tile order for packed sign bits and scaled activations, and every index computation that
// maps between it and the canonical layout (kernels/packed_format.h). Plain C++17 with __host__ __device__ helpers:
// nvcc uses them in the kernels, g++ in the host repack and in test_tile_layout.cpp, so the arithmetic the kernels
// depend on is unit-tested on a CPU.
//
// Why this order: the kernels feed sign bits straight into the A operand of the tensor-core instruction
// mma.sync.m16n8k16 (A = 16 output rows x 16 input columns, row-major). In that instruction lane L = 4 g + t
// (g = L / 4 "group", t = L % 4 "thread in group") holds four f16x2 registers of A:
//   a0 = row g,     columns 2t, 2t+1        a2 = row g,     columns 2t+8, 2t+9
//   a1 = row g + 8, columns 2t, 2t+1        a3 = row g + 8, columns 2t+8, 2t+9
// (PTX ISA, "Matrix fragments for mma.m16n8k16 with floating point type"). The tile order gives every lane exactly
// the bits of its own registers, in an order where one shift and one LOP3 turn two bits into an f16x2 of +-1:
//
//   row tile R   = 16 output rows [16R, 16R + 16)                       (N padded to a multiple of 16)
//   chunk c      = 256 input columns [256c, 256c + 256)                 (K padded to a multiple of 256)
//   sub-tile q   = 64 columns [256c + 64q, +64) inside the chunk: one 32-bit word per lane
//   step jj      = 16 columns [.. + 16jj, +16) inside the sub-tile: one mma
//   word index   = ((R * chunks + c) * 32 + L) * 4 + q  -> a lane's 4 words of a chunk are one 128-bit load
//   bit of a word: register r (0..3, as above) of step jj uses shift s = 4 jj + r; its low half (column 2t or 2t+8)
//                  is bit 15 - s, its high half (column 2t+1 or 2t+9) is bit 31 - s. Then
//                  a_r = ((word << s) & 0x80008000) ^ (f16x2 of -1, -1)  is (+-1, +-1) with +1 where the bit is set.
// Padding bits (rows >= N or columns >= K) are zero; they meet zero activations, so they never reach an output.
//
// Activations are scaled and written by the prologue kernel into a zero-padded (M, padded_k(K)) buffer, either in
// plain column order (the GEMM loads tiles with cp.async + ldmatrix) or "lane-major" (the decode GEMV: each lane's
// 16 B-operand values of a 64-column sub-tile are contiguous, two 128-bit loads instead of eight 32-bit ones).
#pragma once

#include <cstdint>

#include "kernels/packed_format.h"

namespace bmos::kernels::tiles {

constexpr int kTileRows = 16;  // output rows per row tile (mma M)
constexpr int kStepK = 16;     // input columns per mma step (mma K)
constexpr int kSubTileK = 64;  // input columns per 32-bit lane word
constexpr int kChunkK = 256;   // input columns per 128-bit lane load
constexpr int kLanes = 32;
constexpr int kWordsPerLane = kChunkK / kSubTileK;              // 4
constexpr int kTileBytesPerChunk = kLanes * kWordsPerLane * 4;  // 512: one row tile x one chunk
static_assert(kTileRows * kChunkK / 8 == kTileBytesPerChunk, "a row tile x chunk holds exactly its bits");

// f16x2 / bf16x2 bit patterns of (-1, -1); XOR with the sign bits 0x80008000 turns a -1 into +1.
constexpr std::uint32_t kMinusOnePairF16 = 0xBC00BC00u;
constexpr std::uint32_t kMinusOnePairBF16 = 0xBF80BF80u;

// ---------------------------------------------------------------------------------------------------------- geometry
BMOS_HD constexpr std::int64_t row_tiles(std::int64_t N) { return (N + kTileRows - 1) / kTileRows; }
BMOS_HD constexpr std::int64_t chunks(std::int64_t K) { return (K + kChunkK - 1) / kChunkK; }
BMOS_HD constexpr std::int64_t padded_rows(std::int64_t N) { return row_tiles(N) * kTileRows; }
BMOS_HD constexpr std::int64_t padded_k(std::int64_t K) { return chunks(K) * kChunkK; }
// 32-bit words of the tiled matrix (1 bit per padded weight).
BMOS_HD constexpr std::int64_t tiled_words(std::int64_t N, std::int64_t K) {
  return row_tiles(N) * chunks(K) * kLanes * kWordsPerLane;
}
static_assert(tiled_words(4096, 4096) == 4096LL * 4096 / 32, "no padding for aligned shapes");
static_assert(tiled_words(1, 1) == kLanes * kWordsPerLane, "one row tile x one chunk minimum");

// Where weight (n, k) lives in the tiled matrix.
struct TileCoord {
  std::int64_t row_tile, chunk;
  int lane, word, bit;  // word = q (0..3) inside the lane's 128 bits
};

BMOS_HD constexpr TileCoord tile_coord(std::int64_t n, std::int64_t k) {
  const int r16 = static_cast<int>(n % kTileRows);
  const int g = r16 & 7, upper = r16 >> 3;  // row g or g + 8
  const int kc = static_cast<int>(k % kChunkK);
  const int q = kc / kSubTileK, jj = (kc % kSubTileK) / kStepK, kk = kc % kStepK;
  const int t = (kk & 7) >> 1, high = kk & 1, second = kk >> 3;  // column 2t + high (+ 8 when second)
  const int s = 4 * jj + upper + 2 * second;
  return TileCoord{n / kTileRows, k / kChunkK, 4 * g + t, q, high ? 31 - s : 15 - s};
}

BMOS_HD constexpr std::int64_t tile_word_index(const TileCoord& c, std::int64_t K) {
  return ((c.row_tile * chunks(K) + c.chunk) * kLanes + c.lane) * kWordsPerLane + c.word;
}

// Inverse of tile_coord: the (n, k) a bit of the tiled matrix stands for (may be padding: n >= N or k >= K).
struct RowCol {
  std::int64_t n, k;
};

BMOS_HD constexpr RowCol tile_row_col(std::int64_t word_index, int bit, std::int64_t K) {
  const int q = static_cast<int>(word_index % kWordsPerLane);
  const int lane = static_cast<int>((word_index / kWordsPerLane) % kLanes);
  const std::int64_t tile = word_index / (kWordsPerLane * kLanes);
  const std::int64_t R = tile / chunks(K), c = tile % chunks(K);
  const int high = bit >= 16 ? 1 : 0;
  const int s = high ? 31 - bit : 15 - bit;
  const int jj = s >> 2, r = s & 3, upper = r & 1, second = r >> 1;
  const int g = lane >> 2, t = lane & 3;
  return RowCol{R * kTileRows + g + 8 * upper, c * kChunkK + q * kSubTileK + jj * kStepK + 8 * second + 2 * t + high};
}

// One word of the tiled matrix built from the canonical packed matrix (N x K). Used by the host repack and the
// device repack kernel alike.
BMOS_HD std::uint32_t tiled_word(const packed::Word* canonical, std::int64_t N, std::int64_t K,
                                 std::int64_t word_index) {
  std::uint32_t w = 0;
  for (int b = 0; b < 32; ++b) {
    const RowCol rc = tile_row_col(word_index, b, K);
    if (rc.n < N && rc.k < K)
      w |= ((canonical[packed::word_index(rc.n, rc.k, K)] >> packed::bit_index(rc.k)) & 1u) << b;
  }
  return w;
}

// ------------------------------------------------------------------------------------------------- A-operand unpack
// The f16x2 (or bf16x2) register r of mma step jj from a lane's word: (+-1, +-1). minus_one_pair selects the type.
BMOS_HD constexpr std::uint32_t unpack_pair(std::uint32_t word, int jj, int r, std::uint32_t minus_one_pair) {
  return ((word << (4 * jj + r)) & 0x80008000u) ^ minus_one_pair;
}

// -------------------------------------------------------------------------------------------- activation layouts
enum class ActLayout : int { kPlain = 0, kLaneMajor = 1 };

// Position of column k (< padded_k) inside a token's row of the activation buffer.
// Lane-major: inside each 64-column sub-tile, lane t's B-operand values for steps jj = 0..3 are contiguous:
// column 16 jj + 8 second + 2 t + high  ->  16 t + 4 jj + 2 second + high, so b0 of step jj is the 32-bit word
// 2 jj and b1 the word 2 jj + 1 of the lane's 32 bytes.
BMOS_HD constexpr std::int64_t act_position(std::int64_t k, ActLayout layout) {
  if (layout == ActLayout::kPlain) return k;
  const int kc = static_cast<int>(k % kSubTileK);
  const int jj = kc / kStepK, kk = kc % kStepK;
  const int t = (kk & 7) >> 1, high = kk & 1, second = kk >> 3;
  return (k - kc) + 16 * t + 4 * jj + 2 * second + high;
}

// Inverse: the column stored at position p.
BMOS_HD constexpr std::int64_t act_column(std::int64_t p, ActLayout layout) {
  if (layout == ActLayout::kPlain) return p;
  const int pc = static_cast<int>(p % kSubTileK);
  const int t = pc / 16, jj = (pc % 16) / 4, second = (pc % 4) / 2, high = pc % 2;
  return (p - pc) + 16 * jj + 8 * second + 2 * t + high;
}

// ---------------------------------------------------------------------------------------- GEMM shared-memory tiles
// A stage of the GEMM holds kSubTileK (64) columns of BM tokens: 128-byte rows of eight 16-byte pieces, the piece
// index XOR-swizzled with the row so that both the cp.async writes (8 pieces of one row per 8 lanes) and the
// ldmatrix reads (one piece of 8 consecutive rows per 8 lanes) hit 8 distinct 16-byte bank groups.
constexpr int kActRowBytes = kSubTileK * 2;
constexpr int kPiecesPerRow = kActRowBytes / 16;  // 8

BMOS_HD constexpr int act_smem_offset(int row, int piece) { return row * kActRowBytes + ((piece ^ (row & 7)) << 4); }

// ldmatrix.x4 for mma step jj and the 16 tokens [token0, token0 + 16): the row address lane L provides.
// Matrices 0..3 = (tokens +0..7, columns 0..7), (+0..7, 8..15), (+8..15, 0..7), (+8..15, 8..15) of the step, which
// land as {b0, b1} of the first n8 token tile and {b0, b1} of the second.
BMOS_HD constexpr int ldmatrix_offset(int lane, int jj, int token0) {
  const int m = lane >> 3, row = token0 + ((m >> 1) << 3) + (lane & 7), piece = 2 * jj + (m & 1);
  return act_smem_offset(row, piece);
}

// ------------------------------------------------------------------------------------------ accumulator fragments
// mma.m16n8k16's D (16 rows x 8 tokens, fp32): lane L = 4g + t holds element i (0..3) at row g + 8 (i / 2), token
// 2t + i % 2 (PTX ISA, as for A above). The output row and token of element i of lane (g, t) for the tile whose first
// row is row0 and first token token0. I: int (shared-memory indices) or std::int64_t (global ones).
template <typename I>
BMOS_HD constexpr I acc_row(I row0, int g, int i) {
  return row0 + g + 8 * (i >> 1);
}
template <typename I>
BMOS_HD constexpr I acc_token(I token0, int t, int i) {
  return token0 + 2 * t + (i & 1);
}

// ---------------------------------------------------------------------------------------------------- split-K
// Chunks [begin, end) of split s when `total` chunks are divided into `splits` nearly equal parts. 32-bit on purpose:
// a 64-bit division is a subroutine call on the GPU (launch_plan.h keeps total * splits below 2^31).
BMOS_HD constexpr int split_begin(int total, int splits, int s) { return total * s / splits; }

}  // namespace bmos::kernels::tiles
