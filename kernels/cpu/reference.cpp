#include "kernels/cpu/reference.h"

#include <cmath>
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
