// A model's tensors by canonical name, plus its config: what every checkpoint reader returns.
//
// Canonical names follow Meta's / llama2.c's LLaMA code (the job file's layer patterns use them):
//   tok_embeddings.weight                      (vocab, dim)
//   layers.{i}.attention_norm.weight           (dim)
//   layers.{i}.attention.wq.weight             (n_heads*head_dim, dim)   rotary pairs INTERLEAVED (llama2.c / Meta)
//   layers.{i}.attention.wk.weight             (n_kv_heads*head_dim, dim)  idem
//   layers.{i}.attention.wv.weight             (n_kv_heads*head_dim, dim)
//   layers.{i}.attention.w{q,k,v}.bias         (rows of the weight)   only with qkv_bias (Qwen2); q/k interleaved
//   layers.{i}.attention.{q,k}_norm.weight     (head_dim)   only with qk_norm (Qwen3); interleaved like one head
//   layers.{i}.attention.wo.weight             (dim, n_heads*head_dim)
//   layers.{i}.ffn_norm.weight                 (dim)
//   layers.{i}.feed_forward.w1.weight          (hidden_dim, dim)   gate
//   layers.{i}.feed_forward.w2.weight          (dim, hidden_dim)   down
//   layers.{i}.feed_forward.w3.weight          (hidden_dim, dim)   up
//   norm.weight                                (dim)
//   output.weight                              (vocab, dim)   absent when tie_embeddings
// All fp32 after loading.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

#include "modules/llama_config.h"

namespace bmos {

using StateDict = std::map<std::string, torch::Tensor>;

struct LoadedCheckpoint {
  LlamaConfig config;
  StateDict tensors;
  std::string source;  // path it was read from, for messages
};

}  // namespace bmos
