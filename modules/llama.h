// The LLaMA-like and OPT families in LibTorch, one model with switches (LlamaConfig): RMSNorm or LayerNorm,
// interleaved rotary embeddings (llama2.c / Meta layout) or OPT's learned positions, grouped-query causal attention
// written by hand (libtorch 1.13 has no SDPA), SwiGLU or ReLU MLP, pre- or post-norm blocks, tied or untied output
// head. Switches: Llama-3 rotary scaling, Qwen2's q/k/v biases, Qwen3's head_dim and q/k norms, Mistral's sliding
// window, OPT's biases on every linear, post-LN (OPT-350M) and embedding projections (project_in/out).
// Module names equal the canonical checkpoint names (modules/io/state_dict.h), so job patterns such as
// "layers.*.attention.wq" address the linears directly. Every decoder linear is a LinearLike and can be swapped.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "modules/language_model.h"
#include "modules/linear_like.h"
#include "modules/llama_config.h"
#include "modules/io/state_dict.h"

namespace bmos {

// RMSNorm x * rsqrt(mean(x^2) + eps) * weight, or with layer_norm LayerNorm (x - mean) * rsqrt(var + eps) * weight
// + bias; both in fp32 for bf16/fp16 inputs, as transformers does.
class NormImpl : public torch::nn::Module {
 public:
  NormImpl(int64_t dim, double eps, bool layer_norm = false);
  torch::Tensor forward(const torch::Tensor& x);  // (..., dim)
  torch::Tensor weight;                           // (dim)
  torch::Tensor bias;                             // (dim), LayerNorm only
  double eps;
};
TORCH_MODULE(Norm);

// Keys/values of past positions for incremental decoding: per layer (B, n_kv_heads, max_len, head_dim), in the
// model's dtype or fp16 (LlamaRunOptions::fp16_kv_cache); attention reads them back in the query's dtype.
struct KVCache {
  std::vector<torch::Tensor> k, v;
  int64_t len = 0;  // positions filled
};

// How a model computes, not what it is (never saved): memory switches for training large models.
struct LlamaRunOptions {
  int64_t attention_chunk = 0;    // > 0: causal attention in query blocks of this many positions (modules/causal_attention.h)
  bool checkpoint_blocks = false;  // recompute each block in backward instead of keeping its activations
  bool fast_decode = true;         // one-token decode on the raw path when the model allows (modules/decode_step.h);
                                   // false: the torch ops, which the fast path is tested against
  bool fp16_kv_cache = false;      // new_cache() holds keys and values as fp16, each rounded to nearest, instead of in
                                   // the model's dtype: half the memory and half the cache bytes a decoded token reads
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const LlamaConfig& c);
  // x (B, T, dim), cos/sin (T, head_dim/2) for positions [start, start+T). cache: nullptr for full-sequence training.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, KVCache* cache,
                        int layer);
  std::shared_ptr<LinearLike> wq, wk, wv, wo;
  Norm q_norm{nullptr}, k_norm{nullptr};  // (head_dim) each; only with LlamaConfig::qk_norm
  int64_t n_heads, n_kv_heads, head_dim;
  bool rotary = true;  // false: cos/sin are ignored (learned positions)
  int64_t window = 0;  // LlamaConfig::sliding_window
  int64_t chunk = 0;   // LlamaRunOptions::attention_chunk
};
TORCH_MODULE(Attention);

class FeedForwardImpl : public torch::nn::Module {
 public:
  explicit FeedForwardImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // w2(silu(w1 x) * w3 x), or w2(relu(w1 x)) with relu_mlp
  std::shared_ptr<LinearLike> w1, w2, w3;          // w3 nullptr with relu_mlp
};
TORCH_MODULE(FeedForward);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, KVCache* cache,
                        int layer);
  Norm attention_norm{nullptr}, ffn_norm{nullptr};
  Attention attention{nullptr};
  FeedForward feed_forward{nullptr};
  bool post_norm = false;  // LlamaConfig::post_norm
};
TORCH_MODULE(Block);

struct LlamaOutput {
  torch::Tensor logits;               // (B, T, vocab); undefined when not asked for
  torch::Tensor normed;               // (B, T, embedding_dim) the head's input (head_input), when logits are not asked
                                      // for or hidden states are
  std::vector<torch::Tensor> hidden;  // n_layers x (B, T, dim): each block's output (when asked for)
};

class LlamaImpl : public torch::nn::Module, public LanguageModel {
 public:
  explicit LlamaImpl(const LlamaConfig& config);

  // tokens (B, T) int64 at positions [0, T). want_logits false: `normed` instead, for a loss that applies the head
  // itself in chunks (head_weight()).
  LlamaOutput forward(const torch::Tensor& tokens, bool want_hidden = false, bool want_logits = true);
  // Incremental decoding: tokens (B, T) at positions [cache.len, cache.len + T); fills the cache. Logits (B, T, V),
  // or with last_only those of the last position only, (B, 1, V): what generation needs of a prompt (the head of a
  // 7B model is ~9 % of a 140-token prefill when it runs on every position).
  torch::Tensor forward_cached(const torch::Tensor& tokens, KVCache& cache, bool last_only = false);
  KVCache new_cache(int64_t batch, int64_t max_len) const;
  torch::Dtype kv_cache_dtype() const;         // what new_cache() holds: fp16 or the model's dtype
  int64_t kv_cache_bytes_per_position() const;  // of one sequence, keys and values of every layer

  // LanguageModel
  torch::Tensor logits(const torch::Tensor& tokens) override;
  int64_t vocab_size() const override { return config.vocab_size; }
  int64_t max_seq_len() const override { return config.max_seq_len; }

  // Strict load of an FP state dict (canonical names): every tensor present with its shape, nothing extra.
  void load_fp_state(const StateDict& tensors);
  // GPT-2 style init for pretraining from scratch: N(0, 0.02), output projections scaled by 1/sqrt(2 n_layers).
  void init_random(uint64_t seed);

  // The output head's weight (vocab, embedding_dim): the tied embeddings or output.weight; undefined when the head is
  // not a plain FP linear.
  torch::Tensor head_weight() const;
  // The last block's output (B, T, dim) -> the head's input (B, T, embedding_dim): the final norm (if any), then
  // project_out (if any). HF's last hidden state.
  torch::Tensor head_input(const torch::Tensor& h);
  void set_run_options(const LlamaRunOptions& options);
  const LlamaRunOptions& run_options() const { return run_; }
  torch::Device device() const { return tok_embeddings->weight.device(); }

  // Every swappable linear by full name, e.g. "layers.3.feed_forward.w2".
  std::vector<std::string> linear_names() const;
  std::shared_ptr<LinearLike> get_linear(const std::string& name) const;
  void set_linear(const std::string& name, std::shared_ptr<LinearLike> layer);

  LlamaConfig config;
  torch::nn::Embedding tok_embeddings{nullptr};  // (vocab, embedding_dim)
  torch::nn::Embedding pos_embeddings{nullptr};  // (max_seq_len + kPositionOffset, dim), learned_positions only
  std::shared_ptr<LinearLike> project_in, project_out;  // embedding_dim <-> dim, without bias; projects_embeddings only
  torch::nn::ModuleList layers{nullptr};
  Norm norm{nullptr};                  // nullptr without final_norm
  std::shared_ptr<LinearLike> output;  // nullptr when tied to tok_embeddings
  // Serving forms the packed loader may set (modules/packed/packed_model.h; null otherwise): token rows looked up
  // instead of tok_embeddings' weight (then left empty), and the head of a tied model as a LinearLike.
  std::shared_ptr<RowTable> token_rows;
  std::shared_ptr<LinearLike> tied_head;

 // The steps of forward_cached, public for the raw decode path (modules/decode_step.h):
  torch::Tensor vocab_logits(const torch::Tensor& n);  // head input (B, T, embedding_dim) -> (B, T, vocab)
  // tokens (B, T) at positions [start, start + T) -> (B, T, dim): embeddings, project_in, learned positions
  torch::Tensor embed(const torch::Tensor& tokens, int64_t start);
  std::shared_ptr<BlockImpl> block(size_t i) const { return std::dynamic_pointer_cast<BlockImpl>(layers->ptr(i)); }
  // Rotary tables (max_seq_len, head_dim/2), fp32; undefined without rotary.
  const torch::Tensor& rope_cos() const { return rope_cos_; }
  const torch::Tensor& rope_sin() const { return rope_sin_; }

 private:
  torch::Tensor rope_cos_, rope_sin_;  // (max_seq_len, head_dim/2) buffers; undefined without rotary
  LlamaRunOptions run_;
};
TORCH_MODULE(Llama);

}  // namespace bmos
