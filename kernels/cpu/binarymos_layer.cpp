#include "kernels/cpu/binarymos_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/binary_matmul.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/target_clones.h"

#if defined(__x86_64__)
#include <immintrin.h>
// GCC 12 false positive: the intrinsics' _mm512_undefined_*() self-initialises a variable on purpose.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace bmos::kernels {

namespace {

// Scale values as stored: fp32, or the bit patterns of fp16 / bf16.
struct F16 {
  uint16_t bits;
};
struct BF16 {
  uint16_t bits;
};

inline float widen(float v) { return v; }
inline float widen(BF16 h) {
  const uint32_t u = uint32_t{h.bits} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline float widen(F16 h) { return fp16_to_float(h.bits); }

// 16-bit scales are widened a chunk at a time into a buffer that the fp32 loops then read: the same loops, in the
// same order, as fp32 scales, which they read in place in one pass (fp16 on AVX-512 has its own loops, below).
// Chunks are multiples of 16 values.
constexpr int64_t kChunk = 256;

#if defined(__x86_64__) && defined(__GNUC__)
// fp16 dot and mix on AVX-512 with the conversion in the loop (decode reads every scale once, straight from memory:
// no second pass over a widened copy). The same operations in the same order as dot_parts / axpy / times on fp32,
// lane i of the accumulator being part[i], mul and add rounded apart (this file is built without contraction).
__attribute__((target("avx512f"))) inline __m512 load_f16x16(const F16* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

__attribute__((target("avx512f"))) float dot_f16_avx512(const F16* a, const float* b, int64_t K) {
  __m512 acc = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) acc = _mm512_add_ps(acc, _mm512_mul_ps(load_f16x16(a + k), _mm512_loadu_ps(b + k)));
  alignas(64) float part[16];
  _mm512_store_ps(part, acc);
  for (; k < K; ++k) part[k % 16] += widen(a[k]) * b[k];
  float s = 0.0f;
  for (float p : part) s += p;
  return s;
}

__attribute__((target("avx512f"))) void mix_f16_avx512(const float* g, int64_t E, const F16* experts, int64_t stride,
                                                       int64_t n, const float* x, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 o = _mm512_mul_ps(_mm512_set1_ps(g[0]), load_f16x16(experts + i));
    for (int64_t e = 1; e < E; ++e)
      o = _mm512_add_ps(o, _mm512_mul_ps(_mm512_set1_ps(g[e]), load_f16x16(experts + e * stride + i)));
    if (x) o = _mm512_mul_ps(o, _mm512_loadu_ps(x + i));
    _mm512_storeu_ps(out + i, o);
  }
  for (; i < n; ++i) {
    float o = g[0] * widen(experts[i]);
    for (int64_t e = 1; e < E; ++e) o += g[e] * widen(experts[e * stride + i]);
    out[i] = x ? o * x[i] : o;
  }
}
#endif

BMOS_CLONES void widen_bf16(const BF16* __restrict p, int64_t n, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = widen(p[i]);
}

// fp16 chunks through kernels/cpu/fp16.h's conversion for the isa (F16C on the AVX2 kernels; exact on every isa).
inline const float* as_float(const float* p, int64_t, float*, CpuIsa) { return p; }
inline const float* as_float(const F16* p, int64_t n, float* buf, CpuIsa isa) {
  fp16_to_float(reinterpret_cast<const uint16_t*>(p), n, buf, isa);
  return buf;
}
inline const float* as_float(const BF16* p, int64_t n, float* buf, CpuIsa) {
  widen_bf16(p, n, buf);
  return buf;
}

// part[i % 16] += a[i] * b[i] over n floats (n a multiple of 16 except in the last chunk).
BMOS_CLONES void dot_parts(const float* a, const float* b, int64_t n, float* part_io) {
  float part[16];  // a local copy: the compiler need not assume that part_io aliases a or b
  for (int i = 0; i < 16; ++i) part[i] = part_io[i];
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int i = 0; i < 16; ++i) part[i] += a[k + i] * b[k + i];
  for (; k < n; ++k) part[k % 16] += a[k] * b[k];
  for (int i = 0; i < 16; ++i) part_io[i] = part[i];
}

// a . b over K values in 16 independent partial sums: a single running sum cannot be vectorized without
// reordering it and is add-latency bound (~14 us for E = 4 router rows of K = 4096, a quarter of the binary GEMV).
// fp32 in one pass; 16-bit values a chunk at a time, or (fp16 on AVX-512) converted in the loop.
template <typename T>
float dot(const T* a, const float* b, int64_t K, CpuIsa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if constexpr (std::is_same_v<T, F16>)
    if (isa == CpuIsa::kAvx512) return dot_f16_avx512(a, b, K);
#endif
  alignas(64) float part[16] = {};
  alignas(64) float buf[kChunk];
  const int64_t step = std::is_same_v<T, float> ? K : kChunk;
  for (int64_t k = 0; k < K; k += step) {
    const int64_t n = std::min(step, K - k);
    dot_parts(as_float(a + k, n, buf, isa), b + k, n, part);
  }
  float s = 0.0f;
  for (float p : part) s += p;
  return s;
}

// out (n) = first ? g * e : out + g * e.
BMOS_CLONES void axpy(float g, const float* __restrict e, int64_t n, bool first, float* __restrict out) {
  if (first) {
    for (int64_t i = 0; i < n; ++i) out[i] = g * e[i];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] += g * e[i];
  }
}

BMOS_CLONES void times(const float* __restrict x, int64_t n, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] *= x[i];
}

// out (n) = g (E) @ experts (E, n) (rows `stride` apart), then times x (n) when x is given. The mixed scales of a
// token: E x (K + N) reads per linear (LLaMA-2-7B: 58 MB a token as fp32, 29 as fp16), ~13 % of a decoded token's
// linear time as baseline SSE2 code on one thread. fp32 one expert at a time over all n; 16-bit values a chunk at a
// time, or (fp16 on AVX-512) all experts of 16 values at once, converted in the loop.
template <typename T>
void mix(const float* g, int64_t E, const T* experts, int64_t stride, int64_t n, const float* x, float* out,
         CpuIsa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if constexpr (std::is_same_v<T, F16>)
    if (isa == CpuIsa::kAvx512) return mix_f16_avx512(g, E, experts, stride, n, x, out);
#endif
  alignas(64) float buf[kChunk];
  const int64_t step = std::is_same_v<T, float> ? std::max<int64_t>(n, 1) : kChunk;
  for (int64_t i = 0; i < n; i += step) {
    const int64_t c = std::min(step, n - i);
    for (int64_t e = 0; e < E; ++e) axpy(g[e], as_float(experts + e * stride + i, c, buf, isa), c, e == 0, out + i);
    if (x) times(x + i, c, out + i);
  }
}

// y (n) = y * s (+ bias).
BMOS_CLONES void scale_out(const float* s, const float* bias, int64_t n, float* y) {
  if (bias) {
    for (int64_t i = 0; i < n; ++i) y[i] = y[i] * s[i] + bias[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] *= s[i];
  }
}

template <typename T>
void forward(const PreparedBinaryMatrix& B, int64_t E, const T* router, const T* s_in_experts,
             const T* s_out_experts, const float* bias, const float* x, int64_t M, float* y, int threads, CpuIsa isa,
             LutPrecision lut) {
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
        gm[e] = dot(router + e * K, xm, K, isa);
        mx = std::max(mx, gm[e]);
      }
      float z = 0.0f;
      for (int64_t e = 0; e < E; ++e) z += (gm[e] = std::exp(gm[e] - mx));
      for (int64_t e = 0; e < E; ++e) gm[e] /= z;
    }
    mix(gm, E, s_in_experts, K, K, xm, xs.data() + m * K, isa);  // xs = xm * (gm @ s_in_experts)
  }
  // y = (xs B^T) * (g @ s_out_experts) + bias, the scaling of each block on the thread that computed it.
  const float* gp = g.data();
  binary_matmul(B, xs.data(), M, y, threads, isa, [=](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    thread_local std::vector<float> s_out;  // (n1 - n0): this thread's
    s_out.resize(n1 - n0);
    for (int64_t m = m0; m < m1; ++m) {
      mix(gp + m * E, E, s_out_experts + n0, N, n1 - n0, nullptr, s_out.data(), isa);
      scale_out(s_out.data(), bias ? bias + n0 : nullptr, n1 - n0, y + m * N + n0);
    }
  }, lut);
}

}  // namespace

const char* scale_type_name(ScaleType t) {
  switch (t) {
    case ScaleType::kF16: return "fp16";
    case ScaleType::kBF16: return "bf16";
    case ScaleType::kF32: break;
  }
  return "fp32";
}

void binarymos_forward(const PreparedBinaryMatrix& B, const MosScales& s, const float* bias, const float* x,
                       int64_t M, float* y, int threads, CpuIsa isa, LutPrecision lut) {
  if (s.E < 1) throw std::invalid_argument("binarymos_forward: need E >= 1 experts, got " + std::to_string(s.E));
  if (!s.s_in || !s.s_out || (s.E > 1 && !s.router))
    throw std::invalid_argument("binarymos_forward: missing scales (s_in, s_out, or the router of E > 1 experts)");
  if (M <= 0) return;
  switch (s.type) {
    case ScaleType::kF32:
      return forward(B, s.E, static_cast<const float*>(s.router), static_cast<const float*>(s.s_in),
                     static_cast<const float*>(s.s_out), bias, x, M, y, threads, isa, lut);
    case ScaleType::kF16:
      return forward(B, s.E, static_cast<const F16*>(s.router), static_cast<const F16*>(s.s_in),
                     static_cast<const F16*>(s.s_out), bias, x, M, y, threads, isa, lut);
    case ScaleType::kBF16:
      return forward(B, s.E, static_cast<const BF16*>(s.router), static_cast<const BF16*>(s.s_in),
                     static_cast<const BF16*>(s.s_out), bias, x, M, y, threads, isa, lut);
  }
}

void binarymos_forward(const PreparedBinaryMatrix& B, int64_t E, const float* router, const float* s_in_experts,
                       const float* s_out_experts, const float* bias, const float* x, int64_t M, float* y,
                       int threads, CpuIsa isa, LutPrecision lut) {
  binarymos_forward(B, MosScales{E, ScaleType::kF32, router, s_in_experts, s_out_experts}, bias, x, M, y, threads,
                    isa, lut);
}

}  // namespace bmos::kernels
