// Hyper-parameters of a decoder of the LLaMA-like and OPT families (no torch here).
#pragma once

#include <cstdint>
#include <string>

namespace bmos {

struct LlamaConfig {
  int64_t dim = 64;            // hidden size                       (HF hidden_size)
  int64_t hidden_dim = 172;    // SwiGLU inner size                 (HF intermediate_size)
  int64_t n_layers = 5;        //                                   (HF num_hidden_layers)
  int64_t n_heads = 8;         //                                   (HF num_attention_heads)
  int64_t n_kv_heads = 4;      // grouped-query attention           (HF num_key_value_heads)
  int64_t vocab_size = 512;
  int64_t max_seq_len = 512;   // rotary table length               (HF max_position_embeddings)
  double norm_eps = 1e-5;      //                                   (HF rms_norm_eps)
  double rope_theta = 10000.0;
  bool tie_embeddings = true;  // output head shares tok_embeddings (HF tie_word_embeddings)
  int64_t bos_id = 1;
  int64_t eos_id = 2;
  // The LLaMA-like families (HF model_type) are this one model with switches; all off is LLaMA-2.
  std::string family = "llama";     // llama, mistral, qwen2, qwen3, opt: names the HF architecture when written back
  int64_t explicit_head_dim = 0;    // > 0: head width independent of dim/n_heads (HF head_dim; Qwen3-0.6B: 128)
  bool qkv_bias = false;            // biases on wq, wk, wv (not wo)        (Qwen2)
  bool qk_norm = false;             // RMSNorm over head_dim on q and k before RoPE (Qwen3)
  int64_t sliding_window = 0;       // > 0: query i sees keys i-window < j <= i (Mistral); 0 = unlimited
  // Llama-3 rotary scaling (HF rope_scaling rope_type "llama3"); rope_factor 0 = none.
  double rope_factor = 0.0;         // 32 (Llama-3.2), 8 (Llama-3.1)
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_positions = 8192;
  // OPT (model_type "opt"): all on, with pre-LN (OPT-125M, 1.3B) or post-LN and projected embeddings (OPT-350M).
  bool layer_norm = false;          // norms are LayerNorm with a bias, not RMSNorm
  bool learned_positions = false;   // no rotary: a learned (max_seq_len + kPositionOffset, dim) table added to the
                                    // embeddings, position p in row p + kPositionOffset (HF's OPT offset)
  bool relu_mlp = false;            // feed_forward = w2(relu(w1 x)), no w3       (OPT fc1, fc2)
  bool linear_bias = false;         // every decoder linear has a bias              (OPT enable_bias)
  bool post_norm = false;           // x = norm(x + f(x)) instead of x + f(norm(x)) (OPT-350M do_layer_norm_before false)
  bool final_norm = true;           // a norm before the head (OPT-350M has none)
  int64_t embed_dim = 0;            // > 0 and != dim: embeddings this wide, project_in/out around the blocks
                                    // (OPT word_embed_proj_dim)
  static constexpr int64_t kPositionOffset = 2;

  int64_t embedding_dim() const { return embed_dim > 0 ? embed_dim : dim; }
  bool projects_embeddings() const { return embedding_dim() != dim; }
  bool rotary() const { return !learned_positions; }
  // Whether decoder linear `leaf` (wq, wk, wv, wo, w1, w2, w3) has a bias.
  bool linear_has_bias(const std::string& leaf) const {
    return linear_bias || (qkv_bias && (leaf == "wq" || leaf == "wk" || leaf == "wv"));
  }

  int64_t head_dim() const { return explicit_head_dim > 0 ? explicit_head_dim : dim / n_heads; }
  std::string describe() const;  // one line for logs
  void validate() const;         // throws std::invalid_argument naming the bad field
};

}  // namespace bmos
