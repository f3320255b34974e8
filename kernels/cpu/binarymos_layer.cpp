#include "kernels/cpu/binarymos_layer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/binary_matmul.h"

namespace bmos::kernels {

namespace {
// a . b over K floats in 16 independent partial sums: a single running sum cannot be vectorized without
// reordering it and is add-latency bound (~14 us for E = 4 router rows of K = 4096, a quarter of the binary GEMV).
float dot(const float* a, const float* b, int64_t K) {
  float part[16] = {};
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int i = 0; i < 16; ++i) part[i] += a[k + i] * b[k + i];
  for (; k < K; ++k) part[k % 16] += a[k] * b[k];
  float s = 0.0f;
  for (float p : part) s += p;
  return s;
}
}  // namespace

void binarymos_forward(const PreparedBinaryMatrix& B, int64_t E, const float* router, const float* s_in_experts,
                       const float* s_out_experts, const float* bias, const float* x, int64_t M, float* y,
                       int threads, CpuIsa isa) {
  if (E < 1) throw std::invalid_argument("binarymos_forward: need E >= 1 experts, got " + std::to_string(E));
  if (M <= 0) return;
  const int64_t N = B.rows(), K = B.cols();
  thread_local std::vector<float> g, xs, s_out;  // (M, E), (M, K), (M, N): reused across calls
  g.resize(M * E);
  xs.resize(M * K);
  s_out.resize(M * N);
  for (int64_t m = 0; m < M; ++m) {
    const float* xm = x + m * K;
    float* gm = g.data() + m * E;
    // gm (E) = softmax(router @ xm), max-subtracted; a single expert has weight 1.
    if (E == 1) {
      gm[0] = 1.0f;
    } else {
      float mx = -INFINITY;
      for (int64_t e = 0; e < E; ++e) {
        gm[e] = dot(router + e * K, xm, K);
        mx = std::max(mx, gm[e]);
      }
      float z = 0.0f;
      for (int64_t e = 0; e < E; ++e) z += (gm[e] = std::exp(gm[e] - mx));
      for (int64_t e = 0; e < E; ++e) gm[e] /= z;
    }
    // xs = xm * (gm @ s_in_experts); s_out = gm @ s_out_experts.
    float* xsm = xs.data() + m * K;
    for (int64_t k = 0; k < K; ++k) xsm[k] = gm[0] * s_in_experts[k];
    for (int64_t e = 1; e < E; ++e)
      for (int64_t k = 0; k < K; ++k) xsm[k] += gm[e] * s_in_experts[e * K + k];
    for (int64_t k = 0; k < K; ++k) xsm[k] *= xm[k];
    float* so = s_out.data() + m * N;
    for (int64_t n = 0; n < N; ++n) so[n] = gm[0] * s_out_experts[n];
    for (int64_t e = 1; e < E; ++e)
      for (int64_t n = 0; n < N; ++n) so[n] += gm[e] * s_out_experts[e * N + n];
  }
  binary_matmul(B, xs.data(), M, y, threads, isa);
  for (int64_t m = 0; m < M; ++m) {
    float* ym = y + m * N;
    const float* so = s_out.data() + m * N;
    if (bias) {
      for (int64_t n = 0; n < N; ++n) ym[n] = ym[n] * so[n] + bias[n];
    } else {
      for (int64_t n = 0; n < N; ++n) ym[n] *= so[n];
    }
  }
}

}  // namespace bmos::kernels
