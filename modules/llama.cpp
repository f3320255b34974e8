#include "modules/llama.h"

#include "modules/activation_checkpoint.h"
#include "modules/causal_attention.h"
#include "modules/decode_step.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace bmos {
namespace {

using torch::indexing::Slice;

// Interleaved rotary embedding (llama2.c / Meta): pairs (x[2i], x[2i+1]) rotated by angle pos * theta^(-2i/hd):
//   out = x * [c, c] + swap(x) * [-s, s], swap(x)[2i] = x[2i+1], swap(x)[2i+1] = x[2i].
// x (B, T, H, hd), cos/sin (T, hd/2). (Selecting the halves and stacking them costs 2x in the backward pass: every
// select's gradient is a zero tensor filled in place.)
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const auto s = x.sizes();
  const int64_t T = s[1], half = s[3] / 2;
  const torch::Tensor c = cos.to(x.scalar_type()).unsqueeze(-1).expand({T, half, 2}).reshape({T, 1, s[3]});  // (T, 1, hd)
  const torch::Tensor si = torch::stack({-sin, sin}, -1).to(x.scalar_type()).reshape({T, 1, s[3]});           // (T, 1, hd)
  const torch::Tensor swapped = x.reshape({s[0], T, s[2], half, 2}).flip(-1).reshape(s);           // (B, T, H, hd)
  return x * c + swapped * si;
}

std::shared_ptr<LinearLike> fp_linear(int64_t in, int64_t out, bool bias = false) {
  return std::make_shared<FpLinearImpl>(in, out, bias);
}

// Rotary angles (T, head_dim/2) of positions [0, T). Inverse frequencies theta^(-2i/hd), in double; with Llama-3
// scaling they are rescaled as transformers' _compute_llama3_parameters does: wavelengths longer than
// original/low_freq_factor are divided by factor, shorter than original/high_freq_factor kept, and the band between
// interpolated smoothly.
torch::Tensor rope_angles(const LlamaConfig& c, int64_t T) {
  const int64_t hd = c.head_dim(), half = hd / 2;
  torch::Tensor inv = torch::pow(c.rope_theta, -torch::arange(0, half, torch::kDouble) * 2.0 / hd);  // (hd/2)
  if (c.rope_factor > 0) {
    const double old_len = double(c.rope_original_max_positions), factor = c.rope_factor;
    const double low_wavelen = old_len / c.rope_low_freq_factor, high_wavelen = old_len / c.rope_high_freq_factor;
    const torch::Tensor wavelen = 2.0 * M_PI / inv;
    torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv / factor, inv);
    const torch::Tensor smooth = (old_len / wavelen - c.rope_low_freq_factor) /
                                 (c.rope_high_freq_factor - c.rope_low_freq_factor);
    const torch::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    const torch::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = torch::where(medium, smoothed, scaled);
  }
  return torch::outer(torch::arange(0, T, torch::kDouble), inv);
}

}  // namespace

NormImpl::NormImpl(int64_t dim, double eps_, bool layer_norm) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
  if (layer_norm) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
  if (bias.defined()) {  // LayerNorm
    if (x.scalar_type() == torch::kFloat) return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
    return torch::layer_norm(x.to(torch::kFloat), {weight.size(0)}, weight.to(torch::kFloat), bias.to(torch::kFloat),
                             eps)
        .to(x.scalar_type());
  }
  if (x.scalar_type() != torch::kFloat) {  // bf16/fp16 models normalise in fp32, as transformers does
    const torch::Tensor xf = x.to(torch::kFloat);
    return (xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps)).to(x.scalar_type()) * weight;
  }
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

AttentionImpl::AttentionImpl(const LlamaConfig& c)
    : n_heads(c.n_heads), n_kv_heads(c.n_kv_heads), head_dim(c.head_dim()), rotary(c.rotary()),
      window(c.sliding_window) {
  wq = register_module("wq", fp_linear(c.dim, n_heads * head_dim, c.linear_has_bias("wq")));
  wk = register_module("wk", fp_linear(c.dim, n_kv_heads * head_dim, c.linear_has_bias("wk")));
  wv = register_module("wv", fp_linear(c.dim, n_kv_heads * head_dim, c.linear_has_bias("wv")));
  wo = register_module("wo", fp_linear(n_heads * head_dim, c.dim, c.linear_has_bias("wo")));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", Norm(head_dim, c.norm_eps));
    k_norm = register_module("k_norm", Norm(head_dim, c.norm_eps));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     KVCache* cache, int layer) {
  const int64_t B = x.size(0), T = x.size(1);
  torch::Tensor q = wq->forward(x).view({B, T, n_heads, head_dim});     // (B, T, H, hd)
  torch::Tensor k = wk->forward(x).view({B, T, n_kv_heads, head_dim});  // (B, T, KVH, hd)
  if (q_norm) {  // Qwen3: per-head RMSNorm before RoPE (its weight is stored in our interleaved order)
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }
  if (rotary) {
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);
  }
  q = q.transpose(1, 2);  // (B, H, T, hd)
  k = k.transpose(1, 2);  // (B, KVH, T, hd)
  torch::Tensor v = wv->forward(x).view({B, T, n_kv_heads, head_dim}).transpose(1, 2);  // (B, KVH, T, hd)
  int64_t start = 0;
  if (cache) {
    start = cache->len;
    const auto dtype = cache->k[layer].scalar_type();  // an fp16 cache rounds k, v here and widens them back below
    cache->k[layer].index_put_({Slice(), Slice(), Slice(start, start + T)}, k.to(dtype));
    cache->v[layer].index_put_({Slice(), Slice(), Slice(start, start + T)}, v.to(dtype));
    k = cache->k[layer].index({Slice(), Slice(), Slice(0, start + T)}).to(q.scalar_type());
    v = cache->v[layer].index({Slice(), Slice(), Slice(0, start + T)}).to(q.scalar_type());
  }
  // Grouped-query attention without copying keys/values: query head h reads kv head h / rep, so the rep query heads
  // of one kv head are stacked: q (B*KVH, rep, T, hd) against k, v (B*KVH, S, hd).
  const int64_t rep = n_heads / n_kv_heads, S = k.size(2);
  const torch::Tensor out = causal_attention(q.reshape({B * n_kv_heads, rep, T, head_dim}),
                                             k.reshape({B * n_kv_heads, S, head_dim}),
                                             v.reshape({B * n_kv_heads, S, head_dim}), start,
                                             1.0 / std::sqrt(double(head_dim)), chunk, window)
                                .view({B, n_heads, T, head_dim});  // (B, H, T, hd)
  return wo->forward(out.transpose(1, 2).reshape({B, T, n_heads * head_dim}));
}

FeedForwardImpl::FeedForwardImpl(const LlamaConfig& c) {
  w1 = register_module("w1", fp_linear(c.dim, c.hidden_dim, c.linear_has_bias("w1")));
  w2 = register_module("w2", fp_linear(c.hidden_dim, c.dim, c.linear_has_bias("w2")));
  if (!c.relu_mlp) w3 = register_module("w3", fp_linear(c.dim, c.hidden_dim, c.linear_has_bias("w3")));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  if (!w3) return w2->forward(torch::relu(w1->forward(x)));
  return w2->forward(torch::silu(w1->forward(x)) * w3->forward(x));
}

BlockImpl::BlockImpl(const LlamaConfig& c) : post_norm(c.post_norm) {
  attention_norm = register_module("attention_norm", Norm(c.dim, c.norm_eps, c.layer_norm));
  attention = register_module("attention", Attention(c));
  ffn_norm = register_module("ffn_norm", Norm(c.dim, c.norm_eps, c.layer_norm));
  feed_forward = register_module("feed_forward", FeedForward(c));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                 KVCache* cache, int layer) {
  if (post_norm) {
    const torch::Tensor h = attention_norm->forward(x + attention->forward(x, cos, sin, cache, layer));
    return ffn_norm->forward(h + feed_forward->forward(h));
  }
  const torch::Tensor h = x + attention->forward(attention_norm->forward(x), cos, sin, cache, layer);
  return h + feed_forward->forward(ffn_norm->forward(h));
}

LlamaImpl::LlamaImpl(const LlamaConfig& c) : config(c) {
  config.validate();
  auto embedding = [](int64_t rows, int64_t width) {
    return SkipInitGuard::active()
               ? torch::nn::Embedding(torch::nn::EmbeddingOptions(rows, width)._weight(torch::empty({rows, width})))
               : torch::nn::Embedding(rows, width);
  };
  tok_embeddings = register_module("tok_embeddings", embedding(c.vocab_size, c.embedding_dim()));
  if (c.learned_positions)
    pos_embeddings = register_module("pos_embeddings", embedding(c.max_seq_len + LlamaConfig::kPositionOffset, c.dim));
  if (c.projects_embeddings()) project_in = register_module("project_in", fp_linear(c.embedding_dim(), c.dim));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layers; ++i) layers->push_back(Block(c));
  if (c.final_norm) norm = register_module("norm", Norm(c.dim, c.norm_eps, c.layer_norm));
  if (c.projects_embeddings()) project_out = register_module("project_out", fp_linear(c.dim, c.embedding_dim()));
  if (!c.tie_embeddings) output = register_module("output", fp_linear(c.embedding_dim(), c.vocab_size));
  if (c.rotary()) {  // rotary table for max_seq_len positions (extended on demand for longer inputs)
    const torch::Tensor ang = rope_angles(c, std::max<int64_t>(c.max_seq_len, 1));
    rope_cos_ = register_buffer("rope_cos", ang.cos().to(torch::kFloat));
    rope_sin_ = register_buffer("rope_sin", ang.sin().to(torch::kFloat));
  }
}

torch::Tensor LlamaImpl::head_input(const torch::Tensor& h) {
  torch::Tensor n = norm ? norm->forward(h) : h;
  return project_out ? project_out->forward(n) : n;
}

torch::Tensor LlamaImpl::vocab_logits(const torch::Tensor& n) {
  if (output) return output->forward(n);
  return tied_head ? tied_head->forward(n) : torch::matmul(n, tok_embeddings->weight.t());
}

torch::Tensor LlamaImpl::embed(const torch::Tensor& tokens, int64_t start) {
  torch::Tensor h = token_rows ? token_rows->rows(tokens) : tok_embeddings->forward(tokens);  // (B, T, embedding_dim)
  if (project_in) h = project_in->forward(h);          // (B, T, dim)
  if (pos_embeddings) {
    const int64_t T = tokens.size(1);
    TORCH_CHECK(start + T <= config.max_seq_len, "position ", start + T, " is beyond the learned position table (",
                config.max_seq_len, " positions: max_position_embeddings)");
    h = h + pos_embeddings->weight.narrow(0, start + LlamaConfig::kPositionOffset, T);
  }
  return h;
}

LlamaOutput LlamaImpl::forward(const torch::Tensor& tokens, bool want_hidden, bool want_logits) {
  TORCH_CHECK(tokens.dim() == 2, "Llama: tokens must be (B, T), got ", tokens.sizes());
  const int64_t T = tokens.size(1);
  torch::Tensor cos, sin;  // undefined without rotary
  if (config.rotary()) {
    if (T > rope_cos_.size(0)) {  // longer than the trained context: extend the rotary table
      const torch::Tensor ang = rope_angles(config, T);
      rope_cos_.set_data(ang.cos().to(torch::kFloat).to(rope_cos_.device()));
      rope_sin_.set_data(ang.sin().to(torch::kFloat).to(rope_sin_.device()));
    }
    cos = rope_cos_.narrow(0, 0, T);
    sin = rope_sin_.narrow(0, 0, T);
  }
  LlamaOutput out;
  torch::Tensor h = embed(tokens, 0);  // (B, T, dim)
  const bool grad = torch::GradMode::is_enabled() && is_training();
  for (size_t i = 0; i < layers->size(); ++i) {
    if (grad && run_.checkpoint_blocks) h = checkpointed_block(*block(i), h, cos, sin);
    else h = block(i)->forward(grad ? block_boundary(h) : h, cos, sin, nullptr, int(i));
    if (want_hidden) out.hidden.push_back(h);
  }
  const torch::Tensor n = head_input(h);
  if (want_hidden || !want_logits) out.normed = n;
  if (want_logits) out.logits = vocab_logits(n);
  return out;
}

torch::Tensor LlamaImpl::head_weight() const {
  if (!output) return tied_head ? torch::Tensor() : tok_embeddings->weight;
  const auto fp = std::dynamic_pointer_cast<FpLinearImpl>(output);
  return fp && !fp->bias.defined() ? fp->weight : torch::Tensor();
}

void LlamaImpl::set_run_options(const LlamaRunOptions& options) {
  run_ = options;
  for (size_t i = 0; i < layers->size(); ++i) block(i)->attention->chunk = options.attention_chunk;
}

torch::Dtype LlamaImpl::kv_cache_dtype() const {
  return run_.fp16_kv_cache ? torch::kHalf : tok_embeddings->weight.scalar_type();
}

int64_t LlamaImpl::kv_cache_bytes_per_position() const {
  return 2 * config.n_layers * config.n_kv_heads * config.head_dim() *
         static_cast<int64_t>(c10::elementSize(kv_cache_dtype()));
}

KVCache LlamaImpl::new_cache(int64_t batch, int64_t max_len) const {
  KVCache c;
  const auto opts = tok_embeddings->weight.options().requires_grad(false).dtype(kv_cache_dtype());
  for (int64_t i = 0; i < config.n_layers; ++i) {
    c.k.push_back(torch::zeros({batch, config.n_kv_heads, max_len, config.head_dim()}, opts));
    c.v.push_back(torch::zeros({batch, config.n_kv_heads, max_len, config.head_dim()}, opts));
  }
  return c;
}

torch::Tensor LlamaImpl::forward_cached(const torch::Tensor& tokens, KVCache& cache, bool last_only) {
  const int64_t T = tokens.size(1), start = cache.len;
  TORCH_CHECK(!cache.k.empty() && start + T <= cache.k[0].size(2), "KV cache too short for position ", start + T);
  if (T == 1 && tokens.size(0) == 1 && fast_decode_blocker(*this, cache).empty())
    return fast_decode_token(*this, tokens, cache);
  torch::Tensor cos, sin;  // undefined without rotary
  if (config.rotary()) {
    TORCH_CHECK(start + T <= rope_cos_.size(0), "position ", start + T, " beyond the rotary table (",
                rope_cos_.size(0), ")");
    cos = rope_cos_.narrow(0, start, T);
    sin = rope_sin_.narrow(0, start, T);
  }
  torch::Tensor h = embed(tokens, start);
  for (size_t i = 0; i < layers->size(); ++i) h = block(i)->forward(h, cos, sin, &cache, int(i));
  cache.len += T;
  return vocab_logits(head_input(last_only ? h.narrow(1, T - 1, 1) : h));
}

torch::Tensor LlamaImpl::logits(const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  return forward(tokens.to(device())).logits;
}

void LlamaImpl::load_fp_state(const StateDict& tensors) {
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (auto& kv : named_parameters()) {
    auto it = tensors.find(kv.key());
    if (it == tensors.end()) throw std::runtime_error("checkpoint has no tensor '" + kv.key() + "'");
    if (it->second.sizes() != kv.value().sizes()) {
      std::ostringstream m;
      m << "tensor '" << kv.key() << "' has shape " << it->second.sizes() << ", the model expects "
        << kv.value().sizes() << " (config: " << config.describe() << ")";
      throw std::runtime_error(m.str());
    }
    kv.value().copy_(it->second);
    ++used;
  }
  if (used != tensors.size()) {
    const auto params = named_parameters();
    for (const auto& kv : tensors)
      if (!params.contains(kv.first)) throw std::runtime_error("checkpoint tensor '" + kv.first + "' has no place in "
                                                               "the model (config: " + config.describe() + ")");
  }
}

void LlamaImpl::init_random(uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  const double out_std = 0.02 / std::sqrt(2.0 * config.n_layers);
  for (auto& kv : named_parameters()) {
    const std::string& n = kv.key();
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0) kv.value().zero_();
    else if (n.find("norm") != std::string::npos) kv.value().fill_(1.0);
    else if (n.find(".wo.") != std::string::npos || n.find(".w2.") != std::string::npos) kv.value().normal_(0, out_std);
    else kv.value().normal_(0, 0.02);
  }
}

std::vector<std::string> LlamaImpl::linear_names() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < layers->size(); ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    for (const char* n : {"attention.wq", "attention.wk", "attention.wv", "attention.wo"}) names.push_back(p + n);
    for (const char* n : {"feed_forward.w1", "feed_forward.w2"}) names.push_back(p + n);
    if (!config.relu_mlp) names.push_back(p + "feed_forward.w3");
  }
  return names;
}

namespace {

// The slot holding linear `name` and its parent module.
std::shared_ptr<LinearLike>* linear_slot(const LlamaImpl& m, const std::string& name, torch::nn::Module** parent,
                                         std::string* leaf) {
  // name = layers.<i>.<attention|feed_forward>.<leaf>
  std::istringstream ss(name);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  if (parts.size() != 4 || parts[0] != "layers") throw std::invalid_argument("not a decoder linear: '" + name + "'");
  size_t i = 0;
  try {
    i = std::stoul(parts[1]);
  } catch (...) {
    throw std::invalid_argument("not a decoder linear: '" + name + "'");
  }
  if (i >= m.layers->size()) throw std::invalid_argument("no layer " + parts[1] + " in '" + name + "'");
  auto blk = std::dynamic_pointer_cast<BlockImpl>(m.layers->ptr(i));
  *leaf = parts[3];
  if (parts[2] == "attention") {
    auto* a = blk->attention.get();
    *parent = a;
    if (*leaf == "wq") return &a->wq;
    if (*leaf == "wk") return &a->wk;
    if (*leaf == "wv") return &a->wv;
    if (*leaf == "wo") return &a->wo;
  } else if (parts[2] == "feed_forward") {
    auto* f = blk->feed_forward.get();
    *parent = f;
    if (*leaf == "w1") return &f->w1;
    if (*leaf == "w2") return &f->w2;
    if (*leaf == "w3" && f->w3) return &f->w3;
  }
  throw std::invalid_argument("not a decoder linear: '" + name + "'");
}

}  // namespace

std::shared_ptr<LinearLike> LlamaImpl::get_linear(const std::string& name) const {
  torch::nn::Module* parent;
  std::string leaf;
  return *linear_slot(*this, name, &parent, &leaf);
}

void LlamaImpl::set_linear(const std::string& name, std::shared_ptr<LinearLike> layer) {
  torch::nn::Module* parent;
  std::string leaf;
  std::shared_ptr<LinearLike>* slot = linear_slot(*this, name, &parent, &leaf);
  TORCH_CHECK(layer->in_features() == (*slot)->in_features() && layer->out_features() == (*slot)->out_features(),
              "set_linear: ", name, " shape mismatch");
  parent->replace_module(leaf, layer);
  *slot = std::move(layer);
}

}  // namespace bmos
