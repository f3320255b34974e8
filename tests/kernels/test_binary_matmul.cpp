// binary_matmul (LUT kernels: scalar, AVX2, AVX-512) against binary_matmul_ref on odd, real-model and large shapes,
// M = 1 (GEMV) to 130 (GEMM), 1 and 2 threads.
//
// Tolerance per output (rigorous, first order): the kernels sum G activations into a table entry (G - 1 <= 4
// roundings) and then the 30 / G table entries per 30-column word of a row (at most 10 * ceil(K / 30), AVX2) in
// fp32, so |y - y_ref| <= (10 * ceil(K / 30) + 8) * u * sum_k |x_k| plus an ulp of y_ref for the reference's own
// rounding (u = 2^-24). With |x_k| in [0.5, 1.5] one wrong weight moves y by >= 1, above this tolerance for every
// K tested here (0.5 at K = 4096), so the test can fail.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "kernels/cpu/binary_matmul.h"
#include "kernels/cpu/reference.h"

namespace bmos {
namespace {

using kernels::CpuIsa;
using kernels::PreparedBinaryMatrix;

struct Case {
  int64_t N, K, M;
  std::vector<packed::Word> bits;
  std::vector<float> x, want;  // (M, K), (M, N) from binary_matmul_ref
  std::vector<double> tol;     // (M, N)
};

Case make_case(int64_t N, int64_t K, int64_t M, std::mt19937& rng) {
  Case c{N, K, M, test::random_bits(N, K, rng), test::random_activations(M * K, rng), {}, {}};
  c.want.resize(M * N);
  kernels::binary_matmul_ref(c.bits.data(), N, K, c.x.data(), M, c.want.data());
  c.tol.resize(M * N);
  const double terms = 10.0 * ((K + 29) / 30) + 8.0;
  for (int64_t m = 0; m < M; ++m) {
    double l1 = 0.0;
    for (int64_t k = 0; k < K; ++k) l1 += std::fabs(c.x[m * K + k]);
    for (int64_t n = 0; n < N; ++n)
      c.tol[m * N + n] = terms * test::kFp32Eps * l1 + test::kFp32Eps * std::fabs(c.want[m * N + n]);
  }
  return c;
}

// Runs the case on one ISA with 1 and 2 threads; returns false after the first failure. `verbose` prints the
// differences of passing runs too.
bool check(const Case& c, CpuIsa isa, bool verbose = false) {
  const PreparedBinaryMatrix B(c.bits.data(), c.N, c.K);
  std::vector<float> y(c.M * c.N);
  for (int threads : {1, 2}) {
    std::fill(y.begin(), y.end(), NAN);
    kernels::binary_matmul(B, c.x.data(), c.M, y.data(), threads, isa);
    const auto ok = test::all_close(y, c.want, c.tol);
    EXPECT_TRUE(ok) << "N=" << c.N << " K=" << c.K << " M=" << c.M << " isa=" << kernels::isa_name(isa)
                    << " threads=" << threads;
    if (!ok) return false;
    if (verbose)
      std::printf("%lldx%lld M=%lld %s threads=%d: %s\n", static_cast<long long>(c.N), static_cast<long long>(c.K),
                  static_cast<long long>(c.M), kernels::isa_name(isa), threads, ok.message());
  }
  return true;
}

class BinaryMatmul : public test::IsaTest {};
BMOS_INSTANTIATE_ISAS(BinaryMatmul);

TEST_P(BinaryMatmul, OddShapes) {
  std::mt19937 rng(21);
  for (int64_t N : {1, 7, 15, 16, 17, 33, 100})
    for (int64_t K : {1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65, 100})
      for (int64_t M : {1, 2, 5})
        if (!check(make_case(N, K, M, rng), isa())) return;
}

TEST_P(BinaryMatmul, ModelShapesAllTokenCounts) {
  // stories260K's linears: dim 64, hidden 172; M covers every token-tile remainder (tiles of 4) up to 130.
  std::mt19937 rng(22);
  for (auto [N, K] : {std::pair<int64_t, int64_t>{64, 64}, {172, 64}, {64, 172}})
    for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 127, 128, 129, 130})
      if (!check(make_case(N, K, M, rng), isa())) return;
}

TEST_P(BinaryMatmul, ThreadSplitsByRowsAndByTokens) {
  std::mt19937 rng(23);
  check(make_case(300, 200, 37, rng), isa());  // 19 row tiles: threads take rows
  check(make_case(20, 50, 9, rng), isa());     // 2 row tiles: threads take tokens
  check(make_case(513, 96, 2, rng), isa());    // rows split at a 4-tile boundary, one partial tile at the end
}

TEST_P(BinaryMatmul, Gemv4096x4096) {
  std::mt19937 rng(24);
  check(make_case(4096, 4096, 1, rng), isa(), /*verbose=*/true);
}

TEST_P(BinaryMatmul, IgnoresPaddingBitsAndIsBitwiseStableAcrossThreadsAndM) {
  std::mt19937 rng(25);
  const int64_t N = 45, K = 70, M = 6;
  const auto dirty = test::random_bits(N, K, rng, /*dirty_padding=*/true);
  auto clean = dirty;
  for (int64_t n = 0; n < N; ++n) clean[n * 3 + 2] &= 0x3Fu;  // K % 32 == 6 columns in the last word
  const auto x = test::random_activations(M * K, rng);
  const PreparedBinaryMatrix Bd(dirty.data(), N, K), Bc(clean.data(), N, K);
  const CpuIsa isa = this->isa();
  std::vector<float> yd(M * N), yc(M * N), y2(M * N), y1(M * N);
  kernels::binary_matmul(Bd, x.data(), M, yd.data(), 1, isa);
  kernels::binary_matmul(Bc, x.data(), M, yc.data(), 1, isa);
  kernels::binary_matmul(Bc, x.data(), M, y2.data(), 2, isa);
  for (int64_t m = 0; m < M; ++m) kernels::binary_matmul(Bc, x.data() + m * K, 1, y1.data() + m * N, 1, isa);
  EXPECT_EQ(yd, yc) << kernels::isa_name(isa) << ": padding bits changed the result";
  EXPECT_EQ(y2, yc) << kernels::isa_name(isa) << ": 2 threads differ from 1";
  EXPECT_EQ(y1, yc) << kernels::isa_name(isa) << ": token by token (GEMV) differs from the GEMM";
}

TEST(BinaryMatmulKernels, ScalarAndAvx512AreBitwiseEqual) {
  // Same 5-column tables and summation order (matmul_job.h): the portable kernel is an exact model of AVX-512.
  if (!kernels::cpu_supports(CpuIsa::kAvx512)) GTEST_SKIP() << "SKIPPED: this CPU has no AVX-512";
  std::mt19937 rng(26);
  const int64_t N = 70, K = 301, M = 3;
  const auto bits = test::random_bits(N, K, rng);
  const auto x = test::random_activations(M * K, rng);
  const PreparedBinaryMatrix B(bits.data(), N, K);
  std::vector<float> ys(M * N), yv(M * N);
  kernels::binary_matmul(B, x.data(), M, ys.data(), 1, CpuIsa::kScalar);
  kernels::binary_matmul(B, x.data(), M, yv.data(), 1, CpuIsa::kAvx512);
  EXPECT_EQ(ys, yv);
}

// The int8-table kernel (LutPrecision::kInt8) against its exact model binary_matmul_int8_ref: bitwise, for odd and
// model shapes (odd and even word counts, rows past N), 1 and 2 threads, token counts below and past the kernel's
// 8-token tile (1-7 tokens in the last one), padding bits set, activations of every group refinement.
TEST(BinaryMatmulInt8, MatchesItsReferenceBitwise) {
  if (!kernels::cpu_supports_int8_lut()) GTEST_SKIP() << "SKIPPED: this CPU has no AVX-512 VBMI + VNNI";
  std::mt19937 rng(27);
  struct Shape { int64_t N, K, M; };
  for (const Shape s : {Shape{1, 1, 2}, Shape{17, 5, 3}, Shape{33, 29, 5}, Shape{16, 30, 2}, Shape{45, 31, 6},
                        Shape{64, 60, 7}, Shape{70, 61, 9}, Shape{100, 301, 4}, Shape{130, 688, 11},
                        Shape{256, 4096, 5}}) {
    const auto bits = test::random_bits(s.N, s.K, rng, /*dirty_padding=*/true);
    auto x = test::random_activations(s.M * s.K, rng);
    x[0] *= 30.0f;  // an outlier: the token's scale follows it
    const PreparedBinaryMatrix B(bits.data(), s.N, s.K);
    std::vector<float> want(s.M * s.N), y(s.M * s.N);
    // Then the same with activations 2^0 .. 2^-9 times smaller from one 4 columns to the next, so groups take every
    // refinement (m_g = 1 .. 128), and exact zeros.
    for (const bool spread : {false, true}) {
      if (spread)
        for (int64_t i = 0; i < s.M * s.K; ++i) x[i] = i % 13 == 5 ? 0.0f : std::ldexp(x[i], -int(i / 4 % 10));
      kernels::binary_matmul_int8_ref(bits.data(), s.N, s.K, x.data(), s.M, want.data());
      for (int threads : {1, 2}) {
        std::fill(y.begin(), y.end(), NAN);
        kernels::binary_matmul(B, x.data(), s.M, y.data(), threads, CpuIsa::kAvx512, {},
                               kernels::LutPrecision::kInt8);
        ASSERT_EQ(y, want) << "N=" << s.N << " K=" << s.K << " M=" << s.M << " threads=" << threads
                           << " spread=" << spread;
      }
    }
  }
}

// The rounding the int8 tables add, against the exact product: within the bound of one scale per token (amax / 254
// per group, amax = the token's largest table entry, plus fp32 rounding), and large enough to show (it is not
// the exact product). One token (decode) stays the exact fp32 kernel.
TEST(BinaryMatmulInt8, ErrorWithinItsBoundAndDecodeStaysExact) {
  std::mt19937 rng(28);
  const int64_t N = 300, K = 4096, M = 3;
  const auto bits = test::random_bits(N, K, rng);
  const auto x = test::random_activations(M * K, rng);
  std::vector<float> exact(M * N), q(M * N);
  kernels::binary_matmul_ref(bits.data(), N, K, x.data(), M, exact.data());
  kernels::binary_matmul_int8_ref(bits.data(), N, K, x.data(), M, q.data());
  double worst = 0.0, err2 = 0.0, ref2 = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    // The largest table entry: sum of |x| over a group (4 columns, the last of each 30-column word 2).
    const int64_t groups = (K + 29) / 30 * 8;
    double amax = 0.0;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t first = g / 8 * 30 + g % 8 * 4, last = std::min(K, first + (g % 8 == 7 ? 2 : 4));
      double s = 0.0;
      for (int64_t k = first; k < last; ++k) s += std::fabs(x[m * K + k]);
      amax = std::max(amax, s);
    }
    const double bound = amax / 254.0 * groups * 1.001;
    for (int64_t n = 0; n < N; ++n) {
      const double d = std::fabs(double(q[m * N + n]) - exact[m * N + n]);
      EXPECT_LE(d, bound) << "m=" << m << " n=" << n;
      worst = std::max(worst, d / bound);
      err2 += d * d;
      ref2 += double(exact[m * N + n]) * exact[m * N + n];
    }
  }
  const double rel = std::sqrt(err2 / ref2);
  std::printf("int8 tables, K=%lld: relative rms error %.4f, worst error %.3f of the bound\n",
              static_cast<long long>(K), rel, worst);
  EXPECT_GT(rel, 1e-4);  // rounded, not exact
  EXPECT_LT(rel, 0.02);  // activations in [0.5, 1.5]: about 0.5 %
  // One outlier activation (500x the others' typical size) sets the token's scale; the per-group refinement (up to
  // 128x) keeps every other group's rounding fine (one scale per token alone would round them ~100x coarser).
  auto xo = x;
  xo[1000] = 500.0f;
  std::vector<float> exact_o(N), q_o(N);
  kernels::binary_matmul_ref(bits.data(), N, K, xo.data(), 1, exact_o.data());
  kernels::binary_matmul_int8_ref(bits.data(), N, K, xo.data(), 1, q_o.data());
  double e2 = 0.0, r2 = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    e2 += (double(q_o[n]) - exact_o[n]) * (double(q_o[n]) - exact_o[n]);
    r2 += double(exact_o[n]) * exact_o[n];
  }
  std::printf("int8 tables with an outlier activation: relative rms error %.4f\n", std::sqrt(e2 / r2));
  EXPECT_LT(std::sqrt(e2 / r2), 0.012);
  const PreparedBinaryMatrix B(bits.data(), N, K);
  std::vector<float> y1(N), f1(N);
  kernels::binary_matmul(B, x.data(), 1, f1.data(), 1, kernels::best_cpu_isa());
  if (kernels::cpu_supports_int8_lut()) {
    kernels::binary_matmul(B, x.data(), 1, y1.data(), 1, kernels::best_cpu_isa(), {}, kernels::LutPrecision::kInt8);
    EXPECT_EQ(y1, f1) << "one token must use the exact kernel";
  }
}

TEST(BinaryMatmulKernels, RejectsBadArguments) {
  const packed::Word word = 1;
  const PreparedBinaryMatrix B(&word, 1, 1);
  float x = 1.0f, y = 0.0f;
  EXPECT_THROW(kernels::binary_matmul(B, &x, 1, &y, 0), std::invalid_argument);
  EXPECT_THROW(kernels::binary_matmul(B, &x, -1, &y, 1), std::invalid_argument);
  EXPECT_THROW(kernels::binary_matmul(PreparedBinaryMatrix(), &x, 1, &y, 1), std::invalid_argument);
  EXPECT_THROW(kernels::parse_lut_precision("int4"), std::invalid_argument);
  EXPECT_EQ(kernels::parse_lut_precision("int8"), kernels::LutPrecision::kInt8);
  kernels::binary_matmul(B, &x, 0, &y, 1);  // M == 0: nothing to do
  EXPECT_EQ(y, 0.0f);
  std::printf("binary_matmul runs on %s by default\n", kernels::isa_name(kernels::best_cpu_isa()));
}

}  // namespace
}  // namespace bmos
