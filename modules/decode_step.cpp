#include "modules/decode_step.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <ATen/Parallel.h>

#include "kernels/cpu/spin_pool.h"
#include "kernels/cpu/target_clones.h"

namespace bmos {

namespace {

bool cpu_fp32(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
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

// Attention of query heads [h0, h1) over key positions [s0, s1) of the cache (K, V: (KVH, max_len, hd) of batch 0):
// out[h] = softmax(scale * q[h] . K[g]) V[g] with g = h / rep. scores: s1 - s0 floats of scratch per call.
BMOS_CLONES void attend(const float* q, const float* K, const float* V, int64_t max_len, int64_t hd, int64_t rep, int64_t h0,
            int64_t h1, int64_t s0, int64_t s1, float scale, float* scores, float* out) {
  for (int64_t h = h0; h < h1; ++h) {
    const int64_t g = h / rep;
    const float* Kg = K + g * max_len * hd;
    const float* Vg = V + g * max_len * hd;
    // The next head's keys and values are requested while this head's are used: each head reads its own 2 x S rows
    // (a new stream the hardware prefetchers would only pick up after a few misses).
    const int64_t gn = (h + 1) / rep;
    const bool prefetch = h + 1 < h1 && gn != g;
    float m = -INFINITY;
    for (int64_t s = s0; s < s1; ++s) {
      if (prefetch)
        for (int64_t d = 0; d < hd; d += 16) {
          __builtin_prefetch(K + (gn * max_len + s) * hd + d);
          __builtin_prefetch(V + (gn * max_len + s) * hd + d);
        }
      scores[s - s0] = scale * dot(q + h * hd, Kg + s * hd, hd);
      m = std::max(m, scores[s - s0]);
    }
    for (int64_t s = s0; s < s1; ++s) scores[s - s0] = fast_exp(scores[s - s0] - m);
    float z = 0;
    for (int64_t s = s0; s < s1; ++s) z += scores[s - s0];
    float* o = out + h * hd;
    std::fill(o, o + hd, 0.0f);
    for (int64_t s = s0; s < s1; ++s) {
      const float p = scores[s - s0] / z;
      const float* v = Vg + s * hd;
      for (int64_t d = 0; d < hd; ++d) o[d] += p * v[d];
    }
  }
}

// Query heads x positions x head_dim above which attention is split across threads: reading the KV cache is DRAM
// bound from a few dozen positions of a 7B model on (32 heads x 16 positions x 128), and two threads read it faster.
constexpr int64_t kThreadedAttention = int64_t{1} << 16;

struct Scratch {
  std::vector<float> x, xn, q, k, v, att, o, up, gate, scores;
};

}  // namespace

std::string fast_decode_blocker(const LlamaImpl& m, const KVCache& cache) {
  const LlamaConfig& c = m.config;
  if (!m.run_options().fast_decode) return "run option fast_decode is off";
  if (torch::GradMode::is_enabled()) return "gradients are enabled (decode under torch::NoGradGuard)";
  if (c.layer_norm || c.post_norm || !c.rotary() || c.relu_mlp || c.learned_positions || c.projects_embeddings())
    return "the raw path runs pre-norm RMSNorm, rotary, SwiGLU blocks (not OPT's)";
  if (cache.k.size() != static_cast<size_t>(c.n_layers) || !cpu_fp32(cache.k[0]) || cache.k[0].size(0) != 1)
    return "the KV cache is not one fp32 CPU sequence";
  if (!cpu_fp32(m.rope_cos()) || !cpu_fp32(m.rope_sin())) return "the rotary tables are not fp32 on the CPU";
  for (size_t i = 0; i < m.layers->size(); ++i) {
    const auto b = m.block(i);
    if (!cpu_fp32(b->attention_norm->weight) || !cpu_fp32(b->ffn_norm->weight) || !cpu_fp32(cache.k[i]) ||
        !cpu_fp32(cache.v[i]))
      return "block " + std::to_string(i) + " has norms or a cache that are not fp32 on the CPU";
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
    float* K = cache.k[i].data_ptr<float>();  // (1, KVH, max_len, hd)
    float* V = cache.v[i].data_ptr<float>();
    for (int64_t g = 0; g < KVH; ++g) {
      std::copy_n(s.k.data() + g * hd, hd, K + (g * max_len + start) * hd);
      std::copy_n(s.v.data() + g * hd, hd, V + (g * max_len + start) * hd);
    }
    if (threads == 1) {
      attend(s.q.data(), K, V, max_len, hd, rep, 0, H, s0, start + 1, scale, s.scores.data(), s.att.data());
    } else {
      // (Raw pointers: inside the lambda `s` would name the worker thread's own thread_local scratch.)
      const float* q = s.q.data();
      float *scores = s.scores.data(), *att = s.att.data();
      kernels::spin_pool_run(threads, [=](int part, int parts) {
        attend(q, K, V, max_len, hd, rep, H * part / parts, H * (part + 1) / parts, s0, start + 1, scale,
               scores + part * S, att);
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
