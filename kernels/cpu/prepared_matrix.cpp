#include "kernels/cpu/prepared_matrix.h"

#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace bmos::kernels {

namespace {
// `count` (<= 32) bits of a canonical row starting at column c, as the low bits of a word; columns >= K read 0.
packed::Word canonical_bits(const packed::Word* row, int64_t K, int64_t c, int count) {
  if (c >= K) return 0;
  const int64_t w = c / packed::kBitsPerWord;
  const int shift = static_cast<int>(c % packed::kBitsPerWord);
  uint64_t window = row[w];
  if (shift + count > packed::kBitsPerWord && w + 1 < packed::words_per_row(K)) window |= uint64_t{row[w + 1]} << 32;
  window >>= shift;
  const int64_t valid = K - c < count ? K - c : count;  // columns of this word that exist
  return static_cast<packed::Word>(window & ((uint64_t{1} << valid) - 1));
}
void check_shape(const packed::Word* bits, int64_t N, int64_t K) {
  if (N < 1 || K < 1)
    throw std::invalid_argument("PreparedBinaryMatrix: need N >= 1 and K >= 1, got N=" + std::to_string(N) +
                                " K=" + std::to_string(K));
  if (!bits) throw std::invalid_argument("PreparedBinaryMatrix: bits is null");
}
}  // namespace

PreparedBinaryMatrix::PreparedBinaryMatrix(const packed::Word* bits, int64_t N, int64_t K) : N_(N), K_(K) {
  check_shape(bits, N, K);
  const int cpw = kColsPerWord;
  const int64_t wpr = words_per_row();
  data_.resize(static_cast<std::size_t>(tiles() * tile_stride()));
  const int64_t canonical_wpr = packed::words_per_row(K);
  for (int64_t n = 0; n < N; ++n) {
    packed::Word* dst = data_.data() + (n / kTileRows) * tile_stride() + n % kTileRows;
    const packed::Word* row = bits + n * canonical_wpr;
    for (int64_t w = 0; w < wpr; ++w) dst[w * kTileRows] = canonical_bits(row, K, w * cpw, cpw);
  }
}

PreparedBinaryMatrix PreparedBinaryMatrix::view(const packed::Word* tiles, int64_t N, int64_t K,
                                                std::shared_ptr<const void> owner) {
  check_shape(tiles, N, K);
  PreparedBinaryMatrix m;
  m.N_ = N, m.K_ = K;
  if (reinterpret_cast<std::uintptr_t>(tiles) % AlignedBuffer<packed::Word>::kAlignment == 0) {
    m.view_ = tiles;
    m.owner_ = std::move(owner);
  } else {
    m.data_.resize(static_cast<std::size_t>(packed::tiled_words(N, K)));
    std::memcpy(m.data_.data(), tiles, static_cast<std::size_t>(m.bytes()));
  }
  return m;
}

void PreparedBinaryMatrix::to_tiles(packed::Word* out) const {
  std::memcpy(out, words(), static_cast<std::size_t>(bytes()));
}

void PreparedBinaryMatrix::to_canonical(packed::Word* out) const {
  const int cpw = kColsPerWord;
  const int64_t wpr = words_per_row();
  const int64_t canonical_wpr = packed::words_per_row(K_);
  for (int64_t n = 0; n < N_; ++n) {
    const packed::Word* src = words() + (n / kTileRows) * tile_stride() + n % kTileRows;
    packed::Word* row = out + n * canonical_wpr;
    for (int64_t w = 0; w < canonical_wpr; ++w) row[w] = 0;
    for (int64_t w = 0; w < wpr; ++w) {
      const int64_t c = w * cpw;
      // Only the word's columns below K: a mapped file's padding bits are not trusted to be zero.
      const int64_t valid = K_ - c < cpw ? K_ - c : cpw;
      const uint64_t word = src[w * kTileRows] & ((uint64_t{1} << valid) - 1);
      const int shift = static_cast<int>(c % packed::kBitsPerWord);
      row[c / packed::kBitsPerWord] |= static_cast<packed::Word>(word << shift);
      if (shift + cpw > packed::kBitsPerWord && c / packed::kBitsPerWord + 1 < canonical_wpr)
        row[c / packed::kBitsPerWord + 1] |= static_cast<packed::Word>(word >> (packed::kBitsPerWord - shift));
    }
  }
}

}  // namespace bmos::kernels
