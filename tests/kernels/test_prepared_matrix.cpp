// PreparedBinaryMatrix: the load-time repack into 16-row tiles of 30-column words round-trips to the canonical
// layout and clears padding (rows past N, columns past K, bits 30 and 31).
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "kernels/cpu/prepared_matrix.h"

namespace bmos {
namespace {

using kernels::PreparedBinaryMatrix;

TEST(PreparedBinaryMatrix, RoundTripAndTileOrder) {
  std::mt19937 rng(11);
  for (int64_t N : {1, 7, 16, 17, 100}) {
    for (int64_t K : {1, 29, 30, 31, 32, 33, 61, 100}) {
      const auto bits = test::random_bits(N, K, rng);
      const PreparedBinaryMatrix B(bits.data(), N, K);
      ASSERT_EQ(B.rows(), N);
      ASSERT_EQ(B.cols(), K);
      ASSERT_EQ(B.tiles(), (N + 15) / 16);
      ASSERT_EQ(B.words_per_row(), (K + 29) / 30);
      // Every column in place; zeros past N, past K and in bits 30, 31.
      for (int64_t n = 0; n < B.tiles() * 16; ++n)
        for (int64_t k = 0; k < B.words_per_row() * 32; ++k) {
          const int64_t col = (k / 32) * 30 + k % 32;  // column of bit k % 32 of word k / 32
          const bool inside = n < N && (k % 32) < 30 && col < K;
          const packed::Word word = B.tile_words(n / 16)[(k / 32) * 16 + n % 16];
          const int want = inside ? static_cast<int>(packed::weight_at(bits.data(), n, col, K) > 0) : 0;
          ASSERT_EQ(static_cast<int>((word >> (k % 32)) & 1u), want)
              << "row " << n << " word " << k / 32 << " bit " << k % 32 << ", N=" << N << " K=" << K;
        }
      std::vector<packed::Word> back(bits.size(), 0xAAAAAAAAu);
      B.to_canonical(back.data());
      EXPECT_EQ(back, bits) << "N=" << N << " K=" << K;
    }
  }
}

TEST(PreparedBinaryMatrix, ClearsDirtyPaddingBits) {
  std::mt19937 rng(12);
  const int64_t N = 5, K = 37;
  const auto dirty = test::random_bits(N, K, rng, /*dirty_padding=*/true);
  const PreparedBinaryMatrix B(dirty.data(), N, K);
  std::vector<packed::Word> back(dirty.size());
  B.to_canonical(back.data());
  for (int64_t n = 0; n < N; ++n) {
    EXPECT_EQ(back[n * 2], dirty[n * 2]);
    EXPECT_EQ(back[n * 2 + 1], dirty[n * 2 + 1] & 0x1Fu) << "row " << n;  // columns 32..36 kept, padding cleared
  }
}

TEST(PreparedBinaryMatrix, RejectsEmptyShapes) {
  const packed::Word word = 0;
  EXPECT_THROW(PreparedBinaryMatrix(&word, 0, 4), std::invalid_argument);
  EXPECT_THROW(PreparedBinaryMatrix(&word, 4, 0), std::invalid_argument);
  EXPECT_THROW(PreparedBinaryMatrix(nullptr, 1, 1), std::invalid_argument);
}

}  // namespace
}  // namespace bmos
