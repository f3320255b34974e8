// binarymos_forward (fused layer on the fast kernels) against binarymos_forward_ref.
//
// Tolerance per output: the binary matmul bound of test_binary_matmul.cpp applied to the scaled activations
// xs = x * s_in, times |s_out|, with a factor 8 of headroom for the fp32 router softmax and expert mixing (the
// reference does those in double): |y - y_ref| <= 8 * (10 * ceil(K / 30) + 16) * u * sum_k |xs_k| * |s_out_n|
// + 4 u (|bias_n| + |y_ref|).
#include <cmath>
#include <cstring>
#include <limits>
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

// fp16 bits -> value, decoded field by field (independent of the kernel's bit manipulation).
float bf16_value(uint16_t h) {
  const uint32_t u = uint32_t{h} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Every one of the 65,536 fp16 patterns as s_out of a 65,536 x 1 layer whose product is 1: y_n = s_out_n, widened
// exactly (subnormals, signed zeros, infinities; NaN stays NaN) by the conversion each isa picks.
TEST_P(BinaryMosLayer, WidensEveryFp16ScaleExactly) {
  const int64_t N = 65536;
  std::vector<packed::Word> bits(packed::packed_words(N, 1), ~packed::Word{0});  // all +1
  const PreparedBinaryMatrix B(bits.data(), N, 1);
  std::vector<uint16_t> s_out(N);
  for (int64_t n = 0; n < N; ++n) s_out[n] = static_cast<uint16_t>(n);
  const uint16_t one = 0x3c00;
  const float x = 1.0f;
  std::vector<float> y(N);
  kernels::binarymos_forward(B, kernels::MosScales{1, kernels::ScaleType::kF16, nullptr, &one, s_out.data()}, nullptr,
                             &x, 1, y.data(), 1, isa());
  int64_t wrong = 0;
  for (int64_t n = 0; n < N; ++n) {
    const float want = test::fp16_value(static_cast<uint16_t>(n));
    const bool same = std::isnan(want) ? std::isnan(y[n]) : std::memcmp(&want, &y[n], sizeof want) == 0;
    if (!same && wrong++ < 5) ADD_FAILURE() << "fp16 0x" << std::hex << n << ": got " << y[n] << ", want " << want;
  }
  EXPECT_EQ(wrong, 0);
}

// 16-bit scales (an exported model's) give bitwise the output of the same values widened to fp32, for every ISA,
// token count and thread count.
TEST_P(BinaryMosLayer, Fp16AndBf16ScalesEqualTheirFp32Values) {
  std::mt19937 rng(33);
  for (auto type : {kernels::ScaleType::kF16, kernels::ScaleType::kBF16}) {
    const Layer L = make_layer(300, 257, 4, rng);
    // The layer's scales rounded to the 16-bit type (by truncating fp32 bits: any pattern will do), and their values.
    auto to16 = [&](const std::vector<float>& v, std::vector<uint16_t>& h, std::vector<float>& back) {
      h.resize(v.size()), back.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        uint32_t u;
        std::memcpy(&u, &v[i], sizeof u);
        if (type == kernels::ScaleType::kBF16) {
          h[i] = static_cast<uint16_t>(u >> 16);
          back[i] = bf16_value(h[i]);
        } else {  // sign, 5 exponent bits rebiased, 10 mantissa bits; below fp16's normal range a signed zero
          const int exp = static_cast<int>((u >> 23) & 0xff) - 127 + 15;
          h[i] = static_cast<uint16_t>(((u >> 16) & 0x8000) | (exp > 0 ? (exp << 10) | ((u >> 13) & 0x3ff) : 0));
          back[i] = test::fp16_value(h[i]);
        }
      }
    };
    std::vector<uint16_t> hr, hi, ho;
    std::vector<float> fr, fi, fo;
    to16(L.router, hr, fr), to16(L.s_in, hi, fi), to16(L.s_out, ho, fo);
    const PreparedBinaryMatrix B(L.bits.data(), L.N, L.K);
    std::normal_distribution<float> normal;
    for (int64_t M : {1, 3, 17}) {
      std::vector<float> x(M * L.K), want(M * L.N), got(M * L.N);
      for (auto& v : x) v = normal(rng);
      for (int threads : {1, 2}) {
        kernels::binarymos_forward(B, L.E, fr.data(), fi.data(), fo.data(), L.bias.data(), x.data(), M, want.data(),
                                   threads, isa());
        kernels::binarymos_forward(B, kernels::MosScales{L.E, type, hr.data(), hi.data(), ho.data()}, L.bias.data(),
                                   x.data(), M, got.data(), threads, isa());
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
            << kernels::scale_type_name(type) << " M=" << M << " threads=" << threads;
      }
    }
  }
}

TEST(BinaryMosLayerKernels, RejectsZeroExperts) {
  const packed::Word word = 1;
  const PreparedBinaryMatrix B(&word, 1, 1);
  float one = 1.0f, y = 0.0f;
  EXPECT_THROW(kernels::binarymos_forward(B, 0, &one, &one, &one, nullptr, &one, 1, &y), std::invalid_argument);
}

}  // namespace
}  // namespace bmos
