#include "kernels/cpu/binarymos_layer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/binary_matmul.h"
#include "kernels/cpu/target_clones.h"

namespace bmos::kernels {

namespace {
// a . b over K floats in 16 independent partial sums: a single running sum cannot be vectorized without
// reordering it and is add-latency bound (~14 us for E = 4 router rows of K = 4096, a quarter of the binary GEMV).
BMOS_CLONES float dot(const float* a, const float* b, int64_t K) {
  float part[16] = {};
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int i = 0; i < 16; ++i) part[i] += a[k + i] * b[k + i];
  for (; k < K; ++k) part[k % 16] += a[k] * b[k];
  float s = 0.0f;
  for (float p : part) s += p;
  return s;
}

// out (n) = g (E) @ experts (E, n) (rows `stride` apart), then times x (n) when x is given. The mixed scales of a
// token: E x (K + N) reads per linear (LLaMA-2-7B: ~70 MB a token), ~13 % of a decoded token's linear time as
// baseline SSE2 code on one thread.
BMOS_CLONES void mix(const float* g, int64_t E, const float* experts, int64_t stride, int64_t n, const float* x,
                     float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[0] * experts[i];
  for (int64_t e = 1; e < E; ++e)
    for (int64_t i = 0; i < n; ++i) out[i] += g[e] * experts[e * stride + i];
  if (x)
    for (int64_t i = 0; i < n; ++i) out[i] *= x[i];
}

// y (n) = y * s (+ bias).
BMOS_CLONES void scale_out(const float* s, const float* bias, int64_t n, float* y) {
  if (bias) {
    for (int64_t i = 0; i < n; ++i) y[i] = y[i] * s[i] + bias[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] *= s[i];
  }
}
}  // namespace

void binarymos_forward(const PreparedBinaryMatrix& B, int64_t E, const float* router, const float* s_in_experts,
                       const float* s_out_experts, const float* bias, const float* x, int64_t M, float* y,
                       int threads, CpuIsa isa, LutPrecision lut) {
  if (E < 1) throw std::invalid_argument("binarymos_forward: need E >= 1 experts, got " + std::to_string(E));
  if (M <= 0) return;
  const int64_t N = B.rows(), K = B.cols();
  thread_local std::vector<float> g, xs;  // (M, E), (M, K): reused across calls
  g.resize(M * E);
  xs.resize(M * K);
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
    mix(gm, E, s_in_experts, K, K, xm, xs.data() + m * K);  // xs = xm * (gm @ s_in_experts)
  }
  // y = (xs B^T) * (g @ s_out_experts) + bias, the scaling of each block on the thread that computed it.
  const float* gp = g.data();
  binary_matmul(B, xs.data(), M, y, threads, isa, [=](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    thread_local std::vector<float> s_out;  // (n1 - n0): this thread's
    s_out.resize(n1 - n0);
    for (int64_t m = m0; m < m1; ++m) {
      mix(gp + m * E, E, s_out_experts + n0, N, n1 - n0, nullptr, s_out.data());
      scale_out(s_out.data(), bias ? bias + n0 : nullptr, n1 - n0, y + m * N + n0);
    }
  }, lut);
}

}  // namespace bmos::kernels
