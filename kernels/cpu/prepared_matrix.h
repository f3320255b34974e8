// A packed +-1 matrix repacked at load time into the tile order the CPU kernels read (the canonical layout of
// kernels/packed_format.h stays the file format; this is only the in-memory form).
//
// Rows are grouped in tiles of 16 (kTileRows) and cut into words of 30 columns (kColsPerWord). Tile t holds, for
// each word index w, the 16 words of rows 16t .. 16t+15 side by side:
//     tile_words(t)[w * 16 + r] == word w of row 16t + r
// so one 512-bit load gives 16 rows x 30 columns. Inside a word, bit c is column 30w + c, set for +1 (as in the
// canonical layout); bits 30 and 31 are zero. 30 columns = 6 groups of 5 (the AVX-512 and scalar kernels) or 10
// groups of 3 (the AVX2 kernel), see matmul_job.h. Rows past N are zero words; columns past K are zero bits,
// whatever the canonical input's padding held.
// Memory: 32/30 bits per weight plus the padding to 16 rows and a whole word.
#pragma once

#include <cstdint>

#include "kernels/cpu/aligned_buffer.h"
#include "kernels/packed_format.h"

namespace bmos::kernels {

class PreparedBinaryMatrix {
 public:
  static constexpr int kTileRows = 16;
  static constexpr int kColsPerWord = 30;

  PreparedBinaryMatrix() = default;
  // bits: packed::packed_words(N, K) words in the canonical layout. N, K >= 1.
  PreparedBinaryMatrix(const packed::Word* bits, int64_t N, int64_t K);

  int64_t rows() const { return N_; }  // N, output features
  int64_t cols() const { return K_; }  // K, input features
  int64_t words_per_row() const { return (K_ + kColsPerWord - 1) / kColsPerWord; }
  int64_t tiles() const { return (N_ + kTileRows - 1) / kTileRows; }
  // (words_per_row, 16) words of tile t.
  const packed::Word* tile_words(int64_t t) const { return data_.data() + t * tile_stride(); }
  // Words between consecutive tiles.
  int64_t tile_stride() const { return words_per_row() * kTileRows; }
  int64_t bytes() const { return static_cast<int64_t>(data_.size() * sizeof(packed::Word)); }

  // Writes the canonical layout back (packed::packed_words(N, K) words, padding bits zero).
  void to_canonical(packed::Word* out) const;

 private:
  int64_t N_ = 0, K_ = 0;
  AlignedBuffer<packed::Word> data_;
};

}  // namespace bmos::kernels
