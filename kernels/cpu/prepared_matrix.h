// A packed +-1 matrix in the tile order the CPU kernels read: the tile layout of kernels/packed_format.h
// (packed::kTileRows = 16 rows x packed::kTileCols = 30 columns per 512-bit line):
//     tile_words(t)[w * 16 + r] == word w of row 16t + r
// 30 columns = 6 groups of 5 (the AVX-512 and scalar kernels) or 10 groups of 3 (the AVX2 kernel), see matmul_job.h.
// Either owned (repacked from the canonical layout: a format_version 1 file, a training layer) or a view of words
// that live elsewhere (a format_version 2 file mapped in memory), kept alive by a shared owner.
// Memory: 32/30 bits per weight plus the padding to 16 rows and a whole word.
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/cpu/aligned_buffer.h"
#include "kernels/packed_format.h"

namespace bmos::kernels {

class PreparedBinaryMatrix {
 public:
  static constexpr int kTileRows = packed::kTileRows;
  static constexpr int kColsPerWord = packed::kTileCols;

  PreparedBinaryMatrix() = default;
  // bits: packed::packed_words(N, K) words in the canonical layout, repacked into an owned copy. N, K >= 1.
  // Rows past N are zero words; columns past K and bits 30-31 are zero, whatever the input's padding held.
  PreparedBinaryMatrix(const packed::Word* bits, int64_t N, int64_t K);
  // tiles: packed::tiled_words(N, K) words already in the tile layout, used in place while `owner` (what keeps
  // them alive, e.g. a file mapping) lives. Copied instead when not 64-byte aligned (the kernels' aligned loads).
  static PreparedBinaryMatrix view(const packed::Word* tiles, int64_t N, int64_t K, std::shared_ptr<const void> owner);

  int64_t rows() const { return N_; }  // N, output features
  int64_t cols() const { return K_; }  // K, input features
  int64_t words_per_row() const { return packed::tile_words_per_row(K_); }
  int64_t tiles() const { return packed::row_tiles(N_); }
  // (words_per_row, 16) words of tile t.
  const packed::Word* tile_words(int64_t t) const { return words() + t * tile_stride(); }
  // Words between consecutive tiles.
  int64_t tile_stride() const { return words_per_row() * kTileRows; }
  int64_t bytes() const { return tiles() * tile_stride() * static_cast<int64_t>(sizeof(packed::Word)); }
  // Whether the words are a view of memory this object does not own (a mapped file).
  bool is_view() const { return view_ != nullptr; }

  // Writes the canonical layout back (packed::packed_words(N, K) words, padding bits zero).
  void to_canonical(packed::Word* out) const;
  // Writes the tile layout (packed::tiled_words(N, K) words): what a format_version 2 file stores.
  void to_tiles(packed::Word* out) const;

 private:
  const packed::Word* words() const { return view_ ? view_ : data_.data(); }

  int64_t N_ = 0, K_ = 0;
  AlignedBuffer<packed::Word> data_;    // owned words (empty for a view)
  const packed::Word* view_ = nullptr;  // a view's words; null when owned
  std::shared_ptr<const void> owner_;   // keeps a view's words alive (may be null: kept alive elsewhere)
};

}  // namespace bmos::kernels
