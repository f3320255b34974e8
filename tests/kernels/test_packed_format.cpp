// The canonical packed layout (kernels/packed_format.h): bit order, sign(0) = +1, padding, pack/unpack round trip.
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/packed_format.h"

namespace bmos {
namespace {

TEST(PackedFormat, BitOrderAndSignOfZero) {
  // Row 0: columns 0..34 with w = -1 except columns 1 (+2), 5 (0.0: +1), 32 (+0.5) and 34 (-0.0: +1, since -0 >= 0).
  std::vector<float> W(35, -1.0f);
  W[1] = 2.0f, W[5] = 0.0f, W[32] = 0.5f, W[34] = -0.0f;
  std::vector<packed::Word> bits(packed::packed_words(1, 35), 0xDEADBEEFu);
  packed::pack(W.data(), 1, 35, bits.data());
  ASSERT_EQ(bits.size(), 2u);
  EXPECT_EQ(bits[0], (1u << 1) | (1u << 5));
  EXPECT_EQ(bits[1], (1u << 0) | (1u << 2));  // columns 32 and 34; padding bits 3..31 zero
  EXPECT_EQ(packed::weight_at(bits.data(), 0, 5, 35), 1.0f);
  EXPECT_EQ(packed::weight_at(bits.data(), 0, 33, 35), -1.0f);
}

TEST(PackedFormat, RoundTripOddShapesAndPaddingIsZero) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (int64_t N : {1, 3, 17}) {
    for (int64_t K : {1, 31, 32, 33, 64, 100}) {
      std::vector<float> W(N * K);
      for (auto& w : W) w = normal(rng);
      std::vector<packed::Word> bits(packed::packed_words(N, K), 0xFFFFFFFFu);
      packed::pack(W.data(), N, K, bits.data());
      std::vector<float> back(N * K);
      packed::unpack(bits.data(), N, K, back.data());
      for (int64_t i = 0; i < N * K; ++i)
        ASSERT_EQ(back[i], W[i] >= 0.0f ? 1.0f : -1.0f) << "N=" << N << " K=" << K << " element " << i;
      // Packing the +-1 matrix again gives the same bits.
      std::vector<packed::Word> again(bits.size());
      packed::pack(back.data(), N, K, again.data());
      EXPECT_EQ(again, bits) << "N=" << N << " K=" << K;
      const int64_t wpr = packed::words_per_row(K);
      if (K % 32) {
        for (int64_t n = 0; n < N; ++n)
          EXPECT_EQ(bits[n * wpr + wpr - 1] >> (K % 32), 0u) << "padding bits of row " << n << ", N=" << N << " K=" << K;
      }
    }
  }
}

}  // namespace
}  // namespace bmos
