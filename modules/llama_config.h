// Hyper-parameters of a LLaMA-family decoder (no torch here).
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

  int64_t head_dim() const { return dim / n_heads; }
  std::string describe() const;  // one line for logs
  void validate() const;         // throws std::invalid_argument naming the bad field
};

}  // namespace bmos
