// int8_rows_matmul (scalar, AVX2 = the scalar loop, AVX-512) against int8_rows_matmul_ref on shapes with K and N
// tails, M = 1 (GEMV) to 5, 1 and 2 threads, including a real head (LLaMA-2's 32000 x 4096).
//
// Activations are small integers, so every product and partial sum is an exact integer in fp32 (|sum| <= K * 3 *
// 127 < 2^24) whatever the order, and both sides round only the final product with the scale: results must be
// bit-identical, and any wrong code, row or tail shows. One case with real-valued activations holds the kernel to
// the first-order bound 2 K u sum_k |x_k code_k| scale (u = 2^-24) on the real LLaMA-2 head shape.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "kernels/cpu/int8_rows.h"

namespace bmos {
namespace {

using kernels::CpuIsa;

class Int8Rows : public test::IsaTest {};

struct Rows {
  std::vector<int8_t> codes;
  std::vector<float> scale;
};

Rows random_rows(int64_t N, int64_t K, std::mt19937& rng) {
  std::uniform_int_distribution<int> code(-127, 127);
  std::uniform_real_distribution<float> sc(0.5f, 2.0f);
  Rows r{std::vector<int8_t>(N * K), std::vector<float>(N)};
  for (auto& c : r.codes) c = static_cast<int8_t>(code(rng));
  for (auto& s : r.scale) s = sc(rng);
  return r;
}

void check_exact(int64_t N, int64_t K, int64_t M, CpuIsa isa, std::mt19937& rng) {
  const Rows w = random_rows(N, K, rng);
  std::uniform_int_distribution<int> xi(-3, 3);
  std::vector<float> x(M * K), want(M * N), got(M * N);
  for (auto& v : x) v = float(xi(rng));
  kernels::int8_rows_matmul_ref(w.codes.data(), w.scale.data(), N, K, x.data(), M, want.data());
  for (int threads : {1, 2}) {
    std::fill(got.begin(), got.end(), NAN);
    kernels::int8_rows_matmul(w.codes.data(), w.scale.data(), N, K, x.data(), M, got.data(), threads, isa);
    EXPECT_TRUE(test::all_close(got, want, std::vector<double>(M * N, 0.0)))
        << "N=" << N << " K=" << K << " M=" << M << " threads=" << threads;
  }
}

TEST_P(Int8Rows, MatchesReferenceOnTails) {
  std::mt19937 rng(7);
  for (int64_t K : {1, 15, 16, 17, 100, 4096})
    for (int64_t N : {1, 3, 4, 5, 17, 33})
      for (int64_t M : {1, 2, 5}) check_exact(N, K, M, isa(), rng);
}

TEST_P(Int8Rows, MatchesReferenceOnLlama2Head) {
  std::mt19937 rng(8);
  const int64_t N = 32000, K = 4096;
  const Rows w = random_rows(N, K, rng);
  const std::vector<float> x = test::random_activations(K, rng);
  std::vector<float> want(N), got(N);
  kernels::int8_rows_matmul_ref(w.codes.data(), w.scale.data(), N, K, x.data(), 1, want.data());
  std::vector<double> tol(N);
  for (int64_t n = 0; n < N; ++n) {
    double l1 = 0;
    for (int64_t k = 0; k < K; ++k) l1 += std::fabs(double(x[k]) * w.codes[n * K + k]);
    tol[n] = 2.0 * K * test::kFp32Eps * l1 * w.scale[n] + test::kFp32Eps * std::fabs(want[n]);
  }
  for (int threads : {1, 2}) {
    kernels::int8_rows_matmul(w.codes.data(), w.scale.data(), N, K, x.data(), 1, got.data(), threads, isa());
    EXPECT_TRUE(test::all_close(got, want, tol)) << "threads=" << threads;
  }
}

TEST(Int8RowsArgs, RefusesBadArguments) {
  std::vector<int8_t> c(4);
  std::vector<float> s(1), x(4), y(1);
  EXPECT_THROW(kernels::int8_rows_matmul(c.data(), s.data(), 1, 4, x.data(), 1, y.data(), 0), std::invalid_argument);
  EXPECT_THROW(kernels::int8_rows_matmul(c.data(), s.data(), -1, 4, x.data(), 1, y.data(), 1), std::invalid_argument);
}

BMOS_INSTANTIATE_ISAS(Int8Rows);

}  // namespace
}  // namespace bmos
