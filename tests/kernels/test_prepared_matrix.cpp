// PreparedBinaryMatrix: the load-time repack into 16-row tiles of 30-column words round-trips to the canonical
// layout and clears padding (rows past N, columns past K, bits 30 and 31); a view of tile words (a mapped
// format_version 2 file) is used in place, keeps its owner alive, and gives the same products and canonical bits
// whatever its padding bits hold.
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "kernels/cpu/aligned_buffer.h"
#include "kernels/cpu/binary_matmul.h"
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

TEST(PreparedBinaryMatrix, ViewOfTileWordsIsUsedInPlaceAndIgnoresPadding) {
  std::mt19937 rng(13);
  for (auto [N, K] : {std::pair<int64_t, int64_t>{5, 37}, {33, 61}, {40, 30}, {17, 100}}) {
    const auto bits = test::random_bits(N, K, rng);
    const PreparedBinaryMatrix owned(bits.data(), N, K);
    ASSERT_FALSE(owned.is_view());
    ASSERT_EQ(owned.bytes(), packed::tiled_words(N, K) * 4);
    // The words a format_version 2 file holds, then dirtied wherever a reader must not look: bits 30-31, columns
    // past K, rows past N.
    auto words = std::make_shared<kernels::AlignedBuffer<packed::Word>>(packed::tiled_words(N, K) + 16);
    owned.to_tiles(words->data());
    const int64_t wpr = owned.words_per_row();
    for (int64_t n = 0; n < owned.tiles() * 16; ++n)
      for (int64_t w = 0; w < wpr; ++w) {
        packed::Word& word = words->data()[(n / 16) * wpr * 16 + w * 16 + n % 16];
        const int64_t valid = std::min<int64_t>(30, K - 30 * w);
        const packed::Word used = n < N ? (packed::Word{1} << valid) - 1 : 0;
        word |= ~used & static_cast<packed::Word>(rng());
      }
    const PreparedBinaryMatrix view = PreparedBinaryMatrix::view(words->data(), N, K, words);
    ASSERT_TRUE(view.is_view());
    EXPECT_EQ(view.tile_words(0), words->data()) << "not used in place";
    std::vector<packed::Word> back(bits.size());
    view.to_canonical(back.data());
    EXPECT_EQ(back, bits) << "N=" << N << " K=" << K;

    const int64_t M = 3;
    std::vector<float> x(M * K), want(M * N), got(M * N);
    std::normal_distribution<float> normal;
    for (auto& v : x) v = normal(rng);
    for (kernels::CpuIsa isa : {kernels::CpuIsa::kScalar, kernels::CpuIsa::kAvx2, kernels::CpuIsa::kAvx512}) {
      if (!kernels::cpu_supports(isa)) continue;
      kernels::binary_matmul(owned, x.data(), M, want.data(), 1, isa);
      kernels::binary_matmul(view, x.data(), M, got.data(), 2, isa);
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << kernels::isa_name(isa) << " N=" << N << " K=" << K;
    }

    // Owner kept alive by the view (and its copies); a misaligned pointer is copied, not viewed.
    std::weak_ptr<kernels::AlignedBuffer<packed::Word>> alive = words;
    PreparedBinaryMatrix copy = view;
    words.reset();
    EXPECT_FALSE(alive.expired());
    const PreparedBinaryMatrix shifted = PreparedBinaryMatrix::view(copy.tile_words(0) + 1, N, K, nullptr);
    EXPECT_FALSE(shifted.is_view());
    EXPECT_EQ(std::memcmp(shifted.tile_words(0), copy.tile_words(0) + 1, shifted.bytes()), 0);
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
