#include "kernels/cpu/reference.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace bmos::kernels {

void binary_matmul_ref(const packed::Word* bits, int64_t N, int64_t K, const float* x, int64_t M, float* y) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) acc += packed::weight_at(bits, n, k, K) * static_cast<double>(x[m * K + k]);
      y[m * N + n] = static_cast<float>(acc);
    }
  }
}

void binary_matmul_int8_ref(const packed::Word* bits, int64_t N, int64_t K, const float* x, int64_t M, float* y) {
  const int64_t words = (K + 29) / 30, groups = words * 8;
  // Group g: columns [first, first + count) of the row, clipped to K.
  auto first = [](int64_t g) { return g / 8 * 30 + g % 8 * 4; };
  auto count = [K, &first](int64_t g) {
    return std::max<int64_t>(0, std::min<int64_t>(g % 8 == 7 ? 2 : 4, K - first(g)));
  };
  std::vector<float> e(static_cast<std::size_t>(groups) * 16);
  std::vector<int32_t> q(e.size()), weight(static_cast<std::size_t>(groups));
  for (int64_t m = 0; m < M; ++m) {
    const float* xm = x + m * K;
    float amax = 0.0f;
    for (int64_t g = 0; g < groups; ++g) {
      for (int i = 0; i < 16; ++i) {
        float v = 0.0f;
        for (int b = 0; b < 4; ++b) {
          const float xb = b < count(g) ? xm[first(g) + b] : 0.0f;
          const float term = (i >> b) & 1 ? xb : -xb;
          v = b == 0 ? term : v + term;
        }
        e[g * 16 + i] = v;
        amax = std::max(amax, std::fabs(v));
      }
    }
    const float inv = amax > 1e-30f ? 127.0f / amax : 0.0f;
    const float scale = amax / 127.0f * (1.0f / 128.0f);
    for (int64_t g = 0; g < groups; ++g) {
      float gmax = 0.0f;
      for (int i = 0; i < 16; ++i) gmax = std::max(gmax, std::fabs(e[g * 16 + i]));
      int k = 0;
      while (k < 7 && gmax * static_cast<float>(2 << k) <= amax) ++k;
      const int mg = 1 << k;
      weight[g] = 128 / mg;
      for (int i = 0; i < 16; ++i)
        q[g * 16 + i] = static_cast<int32_t>(std::nearbyint(e[g * 16 + i] * (static_cast<float>(mg) * inv)));
    }
    for (int64_t n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (int64_t g = 0; g < groups; ++g) {
        int i = 0;
        for (int b = 0; b < count(g); ++b)
          if (packed::weight_at(bits, n, first(g) + b, K) > 0.0f) i |= 1 << b;
        acc += weight[g] * q[g * 16 + i];
      }
      y[m * N + n] = static_cast<float>(acc) * scale;
    }
  }
}

void binarymos_forward_ref(const packed::Word* bits, int64_t N, int64_t K, int64_t E, const float* router,
                           const float* s_in_experts, const float* s_out_experts, const float* bias, const float* x,
                           int64_t M, float* y) {
  std::vector<double> g(E), s_in(K), s_out(N);
  std::vector<float> xs(K);
  for (int64_t m = 0; m < M; ++m) {
    const float* xm = x + m * K;
    // g (E): softmax of the router logits, max-subtracted.
    double mx = -INFINITY;
    for (int64_t e = 0; e < E; ++e) {
      double logit = 0.0;
      for (int64_t k = 0; k < K; ++k) logit += static_cast<double>(router[e * K + k]) * xm[k];
      g[e] = logit;
      mx = std::max(mx, logit);
    }
    double z = 0.0;
    for (int64_t e = 0; e < E; ++e) z += (g[e] = std::exp(g[e] - mx));
    for (int64_t e = 0; e < E; ++e) g[e] /= z;
    for (int64_t k = 0; k < K; ++k) {
      double s = 0.0;
      for (int64_t e = 0; e < E; ++e) s += g[e] * s_in_experts[e * K + k];
      xs[k] = static_cast<float>(xm[k] * s);
    }
    for (int64_t n = 0; n < N; ++n) {
      double s = 0.0;
      for (int64_t e = 0; e < E; ++e) s += g[e] * s_out_experts[e * N + n];
      s_out[n] = s;
    }
    binary_matmul_ref(bits, N, K, xs.data(), 1, y + m * N);
    for (int64_t n = 0; n < N; ++n) y[m * N + n] = static_cast<float>(y[m * N + n] * s_out[n] + (bias ? bias[n] : 0.0f));
  }
}

}  // namespace bmos::kernels
