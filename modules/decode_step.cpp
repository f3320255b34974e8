#include "modules/decode_step.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <ATen/Parallel.h>

#include "kernels/cpu/fp16.h"
#include "kernels/cpu/spin_pool.h"
#include "kernels/cpu/target_clones.h"

namespace bmos {

namespace {

bool cpu_fp32(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
}

// A KV cache tensor the raw path reads: contiguous on the CPU, fp32 or fp16 like layer 0's keys.
bool cpu_cache(const torch::Tensor& t, const torch::Tensor& first) {
  return t.defined() && t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == first.scalar_type() &&
         (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kHalf);
}

// Sum of a[i] * b[i] with 8 independent partial sums (the compiler vectorises them; one serial sum would not).
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y = x * rsqrt(mean(x^2) + eps) * w over n values (y may be x).
BMOS_CLONES void rms_norm(const float* x, const float* w, double eps, int64_t n, float* y) {
  const float r = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dot(x, x, n)) / double(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
}

// e^x for fp32 as Cephes' expf: 2^k (built in the exponent bits) times a degree-6 polynomial of the remainder,
// relative error ~1e-7 like torch's vectorised exp, with x clamped to [-87, 88] (e^x is then 0 or a large finite
// number to fp32 precision: what silu and a max-subtracted softmax need). Plain arithmetic, so the loops of the
// BMOS_CLONES functions that call it vectorise (a loop calling std::exp does not).
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // k = round(x / ln 2): adding and subtracting 1.5 * 2^23 rounds to an integer (|x / ln 2| < 2^22).
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &bits, sizeof two_k);
  return (p * r * r + r + 1.0f) * two_k;
}

// g[i] = silu(g[i]) * u[i] = g / (1 + e^-g) * u over n values. torch::silu_ + mul_ took 44 us per 11008 values
// here (1.4 ms of a LLaMA-2-7B token); this loop 8.
BMOS_CLONES void silu_mul(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + fast_exp(-g[i])) * u[i];
}

// Interleaved rotary of `heads` vectors of hd values at one position: pair (2i, 2i+1) rotated by (cos[i], sin[i]).
void rope(float* x, int64_t heads, int64_t hd, const float* cos, const float* sin) {
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * hd;
    for (int64_t i = 0; i < hd / 2; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * cos[i] - b * sin[i];
      v[2 * i + 1] = b * cos[i] + a * sin[i];
    }
  }
}

// One layer's keys or values of batch 0, (KVH, max_len, hd), as fp32 or fp16 (LlamaRunOptions::fp16_kv_cache).
struct CacheRows {
  void* data;
  bool fp16;
  int64_t max_len, hd;

  explicit CacheRows(const torch::Tensor& t)
      : data(t.data_ptr()), fp16(t.scalar_type() == torch::kHalf), max_len(t.size(2)), hd(t.size(3)) {}
  int64_t at(int64_t g, int64_t s) const { return (g * max_len + s) * hd; }
  // Positions [s, s + n) of kv head g as fp32: in place, or widened (exactly) into buf, n * hd floats.
  const float* rows(int64_t g, int64_t s, int64_t n, float* buf) const {
    if (!fp16) return static_cast<const float*>(data) + at(g, s);
    kernels::fp16_to_float(static_cast<const uint16_t*>(data) + at(g, s), n * hd, buf);
    return buf;
  }
  // Position s of kv head g := v (hd floats), rounded to nearest for fp16.
  void store(int64_t g, int64_t s, const float* v) const {
    if (fp16) kernels::float_to_fp16(v, hd, static_cast<uint16_t*>(data) + at(g, s));
    else std::copy_n(v, hd, static_cast<float*>(data) + at(g, s));
  }
  void prefetch(int64_t g, int64_t s, int64_t n) const {
    const char* p = static_cast<const char*>(data) + at(g, s) * (fp16 ? 2 : 4);
    const int64_t bytes = n * hd * (fp16 ? 2 : 4);
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
  }
};

// Positions of the cache read (and, fp16, widened) at a time: 16 x 128 floats of scratch stay in L1.
constexpr int64_t kRowBlock = 16;

// 16 floats as one value of GCC's vector extension (a zmm in the AVX-512 clone, two ymm or four xmm in the others),
// loaded from and stored to any float address.
typedef float F32x16 __attribute__((vector_size(64), aligned(4), may_alias));

// (Forced inline, as are dot_rows and add_rows: only attend is compiled per BMOS_CLONES target, and an out-of-line
// copy of a helper would run baseline SSE2 code.)
// The sum of the 16 lanes, halving: (a[i] + a[i + 8]), then + 4, + 2, + 1.
__attribute__((always_inline)) inline float sum16(F32x16 v) {
  float a[16];
  std::memcpy(a, &v, sizeof a);
  for (int w = 8; w > 0; w /= 2)
    for (int i = 0; i < w; ++i) a[i] += a[i + w];
  return a[0];
}

// out[r] = scale * (q . k_r) for R rows k_r = k + r * hd, each in 16 partial sums (lane d % 16): R independent chains
// of vector FMAs (one row's chain alone waits on the FMA latency at every step), held in registers.
template <int R>
__attribute__((always_inline)) inline void dot_rows(const float* q, const float* k, int64_t hd, float scale,
                                                    float* out) {
  F32x16 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = F32x16{};
  int64_t d = 0;
  for (; d + 16 <= hd; d += 16) {
    const F32x16 qv = *reinterpret_cast<const F32x16*>(q + d);
    for (int r = 0; r < R; ++r) acc[r] += qv * *reinterpret_cast<const F32x16*>(k + r * hd + d);
  }
  for (; d < hd; ++d)
    for (int r = 0; r < R; ++r) acc[r][d % 16] += q[d] * k[r * hd + d];
  for (int r = 0; r < R; ++r) out[r] = scale * sum16(acc[r]);
}

// o[d] += p[j] * v_j[d] for n rows v_j = v + j * hd, row after row for each d (the order of one row at a time), 16
// values of o held in a register across the n rows.
__attribute__((always_inline)) inline void add_rows(const float* p, const float* v, int64_t n, int64_t hd, float* o) {
  int64_t d = 0;
  for (; d + 16 <= hd; d += 16) {
    F32x16 t = *reinterpret_cast<const F32x16*>(o + d);
    for (int64_t j = 0; j < n; ++j) t += p[j] * *reinterpret_cast<const F32x16*>(v + j * hd + d);
    *reinterpret_cast<F32x16*>(o + d) = t;
  }
  for (; d < hd; ++d) {
    float t = o[d];
    for (int64_t j = 0; j < n; ++j) t += p[j] * v[j * hd + d];
    o[d] = t;
  }
}

// Attention of query heads [h0, h1) over key positions [s0, s1) of the cache: out[h] = softmax(scale * q[h] . K[g])
// V[g] with g = h / rep. scores: s1 - s0 floats of scratch per call; buf: kRowBlock * hd floats.
BMOS_CLONES void attend(const float* q, const CacheRows& K, const CacheRows& V, int64_t hd, int64_t rep, int64_t h0,
                        int64_t h1, int64_t s0, int64_t s1, float scale, float* scores, float* buf, float* out) {
  for (int64_t h = h0; h < h1; ++h) {
    const int64_t g = h / rep;
    const float* qh = q + h * hd;
    // Each pass over a head's rows asks for its next block while it reads this one, and its last block asks for the
    // first of the next pass (the head's values, then the next head's keys, which a grouped-query head shares with
    // this one but read a whole pass ago): the streams start warm, and nothing is fetched so far ahead that it leaves
    // the cache before use (a whole head ahead, as once here, doubled the reads of a long context).
    const int64_t gn = (h + 1) / rep;
    for (int64_t s = s0; s < s1; s += kRowBlock) {
      const int64_t n = std::min(kRowBlock, s1 - s);
      if (s + n < s1) K.prefetch(g, s + n, std::min(kRowBlock, s1 - s - n));
      else V.prefetch(g, s0, std::min(kRowBlock, s1 - s0));
      const float* k = K.rows(g, s, n, buf);
      float* sc = scores + (s - s0);
      int64_t j = 0;
      for (; j + 4 <= n; j += 4) dot_rows<4>(qh, k + j * hd, hd, scale, sc + j);
      for (; j < n; ++j) dot_rows<1>(qh, k + j * hd, hd, scale, sc + j);
    }
    const int64_t S = s1 - s0;
    float m = -INFINITY;
    for (int64_t i = 0; i < S; ++i) m = std::max(m, scores[i]);
    for (int64_t i = 0; i < S; ++i) scores[i] = fast_exp(scores[i] - m);
    float z = 0;
    for (int64_t i = 0; i < S; ++i) z += scores[i];
    for (int64_t i = 0; i < S; ++i) scores[i] /= z;
    float* o = out + h * hd;
    std::fill(o, o + hd, 0.0f);
    for (int64_t s = s0; s < s1; s += kRowBlock) {
      const int64_t n = std::min(kRowBlock, s1 - s);
      if (s + n < s1) V.prefetch(g, s + n, std::min(kRowBlock, s1 - s - n));
      else if (h + 1 < h1) K.prefetch(gn, s0, std::min(kRowBlock, s1 - s0));
      add_rows(scores + (s - s0), V.rows(g, s, n, buf), n, hd, o);
    }
  }
}

// Query heads x positions x head_dim above which attention is split across threads: reading the KV cache is DRAM
// bound from a few dozen positions of a 7B model on (32 heads x 16 positions x 128), and two threads read it faster.
constexpr int64_t kThreadedAttention = int64_t{1} << 16;

struct Scratch {
  std::vector<float> x, xn, q, k, v, att, o, up, gate, scores, rows;
};

}  // namespace

std::string fast_decode_blocker(const LlamaImpl& m, const KVCache& cache) {
  const LlamaConfig& c = m.config;
  if (!m.run_options().fast_decode) return "run option fast_decode is off";
  if (torch::GradMode::is_enabled()) return "gradients are enabled (decode under torch::NoGradGuard)";
  if (c.layer_norm || c.post_norm || !c.rotary() || c.relu_mlp || c.learned_positions || c.projects_embeddings())
    return "the raw path runs pre-norm RMSNorm, rotary, SwiGLU blocks (not OPT's)";
  if (cache.k.size() != static_cast<size_t>(c.n_layers) || !cpu_cache(cache.k[0], cache.k[0]) ||
      cache.k[0].size(0) != 1)
    return "the KV cache is not one fp32 or fp16 CPU sequence";
  if (!cpu_fp32(m.rope_cos()) || !cpu_fp32(m.rope_sin())) return "the rotary tables are not fp32 on the CPU";
  for (size_t i = 0; i < m.layers->size(); ++i) {
    const auto b = m.block(i);
    if (!cpu_fp32(b->attention_norm->weight) || !cpu_fp32(b->ffn_norm->weight) ||
        !cpu_cache(cache.k[i], cache.k[0]) || !cpu_cache(cache.v[i], cache.k[0]))
      return "block " + std::to_string(i) + " has norms that are not fp32, or a cache unlike layer 0's, on the CPU";
    const auto& a = *b->attention;
    const auto& f = *b->feed_forward;
    for (const auto* l : {&a.wq, &a.wk, &a.wv, &a.wo, &f.w1, &f.w2, &f.w3})
      if (!*l || !(*l)->has_raw_forward()) return "block " + std::to_string(i) + " has a linear without a raw forward";
    if (a.q_norm && (!cpu_fp32(a.q_norm->weight) || !cpu_fp32(a.k_norm->weight)))
      return "block " + std::to_string(i) + " has q/k norms that are not fp32 on the CPU";
  }
  if (m.norm && !cpu_fp32(m.norm->weight)) return "the final norm is not fp32 on the CPU";
  return "";
}

torch::Tensor fast_decode_token(LlamaImpl& m, const torch::Tensor& tokens, KVCache& cache) {
  const LlamaConfig& c = m.config;
  const int64_t start = cache.len, max_len = cache.k[0].size(2);
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(0) == 1 && tokens.size(1) == 1, "fast_decode_token: tokens must be "
              "(1, 1), got ", tokens.sizes());
  TORCH_CHECK(start < max_len, "KV cache too short for position ", start + 1);
  TORCH_CHECK(start < m.rope_cos().size(0), "position ", start + 1, " beyond the rotary table (", m.rope_cos().size(0),
              ")");
  const int64_t dim = c.dim, H = c.n_heads, KVH = c.n_kv_heads, hd = c.head_dim(), rep = H / KVH;
  thread_local Scratch s;
  s.xn.resize(dim), s.q.resize(H * hd), s.k.resize(KVH * hd), s.v.resize(KVH * hd), s.att.resize(H * hd);
  s.o.resize(dim), s.up.resize(c.hidden_dim), s.gate.resize(c.hidden_dim);
  const torch::Tensor x0 = m.embed(tokens, start).to(torch::kFloat).contiguous();  // (1, 1, dim)
  s.x.assign(x0.data_ptr<float>(), x0.data_ptr<float>() + dim);
  float* x = s.x.data();
  const float* cos = m.rope_cos().data_ptr<float>() + start * (hd / 2);
  const float* sin = m.rope_sin().data_ptr<float>() + start * (hd / 2);
  // Visible keys: [s0, start] (a sliding window hides j <= start - window).
  const int64_t s0 = c.sliding_window > 0 ? std::max<int64_t>(0, start - c.sliding_window + 1) : 0, S = start + 1 - s0;
  const float scale = static_cast<float>(1.0 / std::sqrt(double(hd)));
  const int threads = H * S * hd >= kThreadedAttention ? std::max(at::get_num_threads(), 1) : 1;
  s.scores.resize(static_cast<size_t>(threads * S));
  s.rows.resize(static_cast<size_t>(threads * kRowBlock * hd));

  for (size_t i = 0; i < m.layers->size(); ++i) {
    BlockImpl& b = *m.block(i);
    AttentionImpl& a = *b.attention;
    rms_norm(x, b.attention_norm->weight.data_ptr<float>(), b.attention_norm->eps, dim, s.xn.data());
    a.wq->forward_raw(s.xn.data(), 1, s.q.data());
    a.wk->forward_raw(s.xn.data(), 1, s.k.data());
    a.wv->forward_raw(s.xn.data(), 1, s.v.data());
    if (a.q_norm) {  // Qwen3: per-head RMSNorm before the rotary
      for (int64_t h = 0; h < H; ++h)
        rms_norm(s.q.data() + h * hd, a.q_norm->weight.data_ptr<float>(), a.q_norm->eps, hd, s.q.data() + h * hd);
      for (int64_t h = 0; h < KVH; ++h)
        rms_norm(s.k.data() + h * hd, a.k_norm->weight.data_ptr<float>(), a.k_norm->eps, hd, s.k.data() + h * hd);
    }
    rope(s.q.data(), H, hd, cos, sin);
    rope(s.k.data(), KVH, hd, cos, sin);
    const CacheRows K(cache.k[i]), V(cache.v[i]);  // (1, KVH, max_len, hd)
    for (int64_t g = 0; g < KVH; ++g) {
      K.store(g, start, s.k.data() + g * hd);
      V.store(g, start, s.v.data() + g * hd);
    }
    if (threads == 1) {
      attend(s.q.data(), K, V, hd, rep, 0, H, s0, start + 1, scale, s.scores.data(), s.rows.data(), s.att.data());
    } else {
      // (Raw pointers: inside the lambda `s` would name the worker thread's own thread_local scratch.)
      const float* q = s.q.data();
      float *scores = s.scores.data(), *rows = s.rows.data(), *att = s.att.data();
      kernels::spin_pool_run(threads, [=, &K, &V](int part, int parts) {
        attend(q, K, V, hd, rep, H * part / parts, H * (part + 1) / parts, s0, start + 1, scale, scores + part * S,
               rows + part * kRowBlock * hd, att);
      });
    }
    a.wo->forward_raw(s.att.data(), 1, s.o.data());
    for (int64_t d = 0; d < dim; ++d) x[d] += s.o[d];

    FeedForwardImpl& f = *b.feed_forward;
    rms_norm(x, b.ffn_norm->weight.data_ptr<float>(), b.ffn_norm->eps, dim, s.xn.data());
    f.w1->forward_raw(s.xn.data(), 1, s.gate.data());
    f.w3->forward_raw(s.xn.data(), 1, s.up.data());
    silu_mul(s.gate.data(), s.up.data(), c.hidden_dim);
    f.w2->forward_raw(s.gate.data(), 1, s.o.data());
    for (int64_t d = 0; d < dim; ++d) x[d] += s.o[d];
  }
  cache.len += 1;

  if (m.norm) rms_norm(x, m.norm->weight.data_ptr<float>(), m.norm->eps, dim, x);
  const std::shared_ptr<LinearLike> head = m.output ? m.output : m.tied_head;
  if (head && head->has_raw_forward()) {
    torch::Tensor logits = torch::empty({1, 1, c.vocab_size}, torch::kFloat);
    head->forward_raw(x, 1, logits.data_ptr<float>());
    return logits;
  }
  return m.vocab_logits(torch::from_blob(x, {1, 1, dim}, torch::kFloat).clone());
}

}  // namespace bmos
