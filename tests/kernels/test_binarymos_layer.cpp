// binarymos_forward (fused layer on the fast kernels) against binarymos_forward_ref.
//
// Tolerance per output: the binary matmul bound of test_binary_matmul.cpp applied to the scaled activations
// xs = x * s_in, times |s_out|, with a factor 8 of headroom for the fp32 router softmax and expert mixing (the
// reference does those in double): |y - y_ref| <= 8 * (10 * ceil(K / 30) + 16) * u * sum_k |xs_k| * |s_out_n|
// + 4 u (|bias_n| + |y_ref|).
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "kernels/cpu/binarymos_layer.h"
#include "kernels/cpu/reference.h"

namespace bmos {
namespace {

using kernels::CpuIsa;
using kernels::PreparedBinaryMatrix;

struct Layer {
  int64_t N, K, E;
  std::vector<packed::Word> bits;
  std::vector<float> router, s_in, s_out, bias;  // (E, K), (E, K), (E, N), (N)
};

Layer make_layer(int64_t N, int64_t K, int64_t E, std::mt19937& rng) {
  Layer L{N, K, E, test::random_bits(N, K, rng), {}, {}, {}, {}};
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> scale(0.01f, 0.1f);
  L.router.resize(E * K);
  for (auto& r : L.router) r = normal(rng) / std::sqrt(static_cast<float>(K));
  L.s_in.resize(E * K);
  for (auto& s : L.s_in) s = scale(rng);
  L.s_out.resize(E * N);
  for (auto& s : L.s_out) s = scale(rng);
  L.bias.resize(N);
  for (auto& b : L.bias) b = normal(rng);
  return L;
}

// Per-output tolerance from double-precision token scales.
std::vector<double> tolerance(const Layer& L, const std::vector<float>& x, int64_t M, const std::vector<float>& want,
                              bool with_bias) {
  std::vector<double> tol(M * L.N);
  const double terms = 10.0 * ((L.K + 29) / 30) + 16.0;
  for (int64_t m = 0; m < M; ++m) {
    std::vector<double> g(L.E);
    double mx = -INFINITY, z = 0.0;
    for (int64_t e = 0; e < L.E; ++e) {
      g[e] = 0.0;
      for (int64_t k = 0; k < L.K; ++k) g[e] += static_cast<double>(L.router[e * L.K + k]) * x[m * L.K + k];
      mx = std::max(mx, g[e]);
    }
    for (auto& v : g) z += (v = std::exp(v - mx));
    double l1 = 0.0;
    for (int64_t k = 0; k < L.K; ++k) {
      double s = 0.0;
      for (int64_t e = 0; e < L.E; ++e) s += g[e] / z * L.s_in[e * L.K + k];
      l1 += std::fabs(x[m * L.K + k] * s);
    }
    for (int64_t n = 0; n < L.N; ++n) {
      double so = 0.0;
      for (int64_t e = 0; e < L.E; ++e) so += g[e] / z * L.s_out[e * L.N + n];
      tol[m * L.N + n] = 8.0 * terms * test::kFp32Eps * l1 * std::fabs(so) +
                         4.0 * test::kFp32Eps * ((with_bias ? std::fabs(L.bias[n]) : 0.0) + std::fabs(want[m * L.N + n]));
    }
  }
  return tol;
}

bool check(const Layer& L, int64_t M, bool with_bias, std::mt19937& rng, CpuIsa isa) {
  std::normal_distribution<float> normal;
  std::vector<float> x(M * L.K);
  for (auto& v : x) v = normal(rng);
  const float* bias = with_bias ? L.bias.data() : nullptr;
  std::vector<float> want(M * L.N), y(M * L.N);
  kernels::binarymos_forward_ref(L.bits.data(), L.N, L.K, L.E, L.router.data(), L.s_in.data(), L.s_out.data(), bias,
                                 x.data(), M, want.data());
  const auto tol = tolerance(L, x, M, want, with_bias);
  const PreparedBinaryMatrix B(L.bits.data(), L.N, L.K);
  for (int threads : {1, 2}) {
    std::fill(y.begin(), y.end(), NAN);
    kernels::binarymos_forward(B, L.E, L.router.data(), L.s_in.data(), L.s_out.data(), bias, x.data(), M, y.data(),
                               threads, isa);
    const auto ok = test::all_close(y, want, tol);
    EXPECT_TRUE(ok) << "N=" << L.N << " K=" << L.K << " E=" << L.E << " M=" << M << " bias=" << with_bias
                    << " isa=" << kernels::isa_name(isa) << " threads=" << threads;
    if (!ok) return false;
  }
  return true;
}

class BinaryMosLayer : public test::IsaTest {};
BMOS_INSTANTIATE_ISAS(BinaryMosLayer);

TEST_P(BinaryMosLayer, MatchesReferenceOnModelAndOddShapes) {
  std::mt19937 rng(31);
  struct Shape { int64_t N, K, E; };
  for (Shape s : {Shape{64, 64, 4}, Shape{172, 64, 4}, Shape{64, 172, 4}, Shape{7, 33, 1}, Shape{33, 7, 2},
                  Shape{1, 100, 3}, Shape{100, 1, 8}}) {
    const Layer L = make_layer(s.N, s.K, s.E, rng);
    for (int64_t M : {1, 3, 17, 130})
      for (bool with_bias : {false, true})
        if (!check(L, M, with_bias, rng, isa())) return;
  }
}

TEST_P(BinaryMosLayer, LargeDecodeStep) {
  std::mt19937 rng(32);
  check(make_layer(1024, 4096, 4, rng), 1, true, rng, isa());
}

TEST(BinaryMosLayerKernels, RejectsZeroExperts) {
  const packed::Word word = 1;
  const PreparedBinaryMatrix B(&word, 1, 1);
  float one = 1.0f, y = 0.0f;
  EXPECT_THROW(kernels::binarymos_forward(B, 0, &one, &one, &one, nullptr, &one, 1, &y), std::invalid_argument);
}

}  // namespace
}  // namespace bmos
