// The packed 1-bit weight layouts of binarymos. Defined here once; the exporter, the loader, the CPU kernels and the
// CUDA kernels all include this header. Plain C++17 (no torch) and usable from nvcc device code.
//
// Two layouts of the same bits (bit set = +1):
//   canonical  row-major, 32 columns per word (below): what training packs, what the CUDA kernels read, and the
//              file layout of exported-model format_version 1;
//   tiles      the CPU kernels' order (kTileRows rows x kTileCols columns per 512-bit line, below): the file layout of
//              format_version 2, so a CPU server maps the file instead of repacking it.
//
// Canonical layout of a weight matrix W (N rows = output features, K columns = input features):
//   - row-major: row n occupies words [n * words_per_row(K), (n + 1) * words_per_row(K))
//   - 32 input columns per little-endian uint32 word: column k lives in word k / 32, bit k % 32
//   - bit set   <=> w >= 0  -> +1   (sign(0) = +1, the same rule as training's straight-through sign)
//     bit clear <=> w <  0  -> -1
//   - each row is padded with zero bits up to a multiple of 32 columns; kernels must ignore padding columns
//     (activations are never read past K).
// Bits per weight: 1 (plus at most 31 padding bits per row).
//
// Tile layout (format_version 2): rows grouped in tiles of kTileRows = 16, each row cut into words of kTileCols = 30
// columns (tile_words_per_row(K) words). Tile t holds, for each word index w, the 16 words of rows 16t .. 16t+15 side
// by side: word (t * tile_words_per_row(K) + w) * 16 + r is word w of row 16t + r, so tiles are 64-byte lines.
// Inside a word, bit c is column 30w + c (set = +1); bits 30 and 31, columns past K and rows past N are zero when
// written. Readers must not depend on them: the CPU kernels never read bits 30-31, look up zero activations past K
// and drop rows past N. Bits per weight: 32/30, plus the padding to 16 rows.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define BMOS_HD __host__ __device__ __forceinline__
#else
#define BMOS_HD inline
#endif

namespace bmos::packed {

// The exported-model format this build writes; it reads format_version 1 too.
constexpr int kFormatVersion = 2;
constexpr int kBitsPerWord = 32;
// Stored as the config.json value quantization.bit_order: format_version 1 (canonical), 2 (tiles).
constexpr const char* kBitOrderV1 = "row_major_lsb_first_u32";
constexpr const char* kBitOrder = "tiles16x30_lsb_first_u32";
constexpr int kTileRows = 16;
constexpr int kTileCols = 30;

using Word = std::uint32_t;
static_assert(sizeof(Word) * 8 == kBitsPerWord, "a packed word holds exactly 32 weights");

// Words per row for K input columns (rows padded to a multiple of 32 columns).
BMOS_HD constexpr std::int64_t words_per_row(std::int64_t K) { return (K + kBitsPerWord - 1) / kBitsPerWord; }
// Total words of an N x K matrix.
BMOS_HD constexpr std::int64_t packed_words(std::int64_t N, std::int64_t K) { return N * words_per_row(K); }
// Bytes on disk / in memory of an N x K matrix.
BMOS_HD constexpr std::int64_t packed_bytes(std::int64_t N, std::int64_t K) {
  return packed_words(N, K) * static_cast<std::int64_t>(sizeof(Word));
}
// The tile layout: 30-column words per row, tiles of 16 rows, words of a whole N x K matrix.
BMOS_HD constexpr std::int64_t tile_words_per_row(std::int64_t K) { return (K + kTileCols - 1) / kTileCols; }
BMOS_HD constexpr std::int64_t row_tiles(std::int64_t N) { return (N + kTileRows - 1) / kTileRows; }
BMOS_HD constexpr std::int64_t tiled_words(std::int64_t N, std::int64_t K) {
  return row_tiles(N) * tile_words_per_row(K) * kTileRows;
}
// Index of the word holding (n, k), and the bit inside it.
BMOS_HD constexpr std::int64_t word_index(std::int64_t n, std::int64_t k, std::int64_t K) {
  return n * words_per_row(K) + k / kBitsPerWord;
}
BMOS_HD constexpr int bit_index(std::int64_t k) { return static_cast<int>(k % kBitsPerWord); }
// The bit stored for weight w.
BMOS_HD constexpr Word sign_bit(float w) { return w >= 0.0f ? 1u : 0u; }
// +1 or -1 for a stored bit.
BMOS_HD constexpr float bit_value(Word bit) { return bit ? 1.0f : -1.0f; }
// +1 / -1 for (n, k) of a packed matrix.
BMOS_HD float weight_at(const Word* bits, std::int64_t n, std::int64_t k, std::int64_t K) {
  return bit_value((bits[word_index(n, k, K)] >> bit_index(k)) & 1u);
}

static_assert(words_per_row(1) == 1 && words_per_row(32) == 1 && words_per_row(33) == 2, "padding rule");
static_assert(packed_bytes(4096, 4096) == 4096LL * 4096 / 8, "1 bit per weight when K % 32 == 0");

// Packs a row-major float matrix W (N x K) into out (packed_words(N, K) words). Padding bits are zero.
inline void pack(const float* W, std::int64_t N, std::int64_t K, Word* out) {
  const std::int64_t wpr = words_per_row(K);
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t w = 0; w < wpr; ++w) {
      Word word = 0;
      const std::int64_t k0 = w * kBitsPerWord;
      for (int b = 0; b < kBitsPerWord && k0 + b < K; ++b) word |= sign_bit(W[n * K + k0 + b]) << b;
      out[n * wpr + w] = word;
    }
  }
}

// Unpacks into a row-major float matrix of +-1 (N x K).
inline void unpack(const Word* bits, std::int64_t N, std::int64_t K, float* out) {
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t k = 0; k < K; ++k) out[n * K + k] = weight_at(bits, n, k, K);
}

}  // namespace bmos::packed
