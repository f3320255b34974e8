// Hugging Face folders of the LLaMA-like families (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM) and OPT (OPTForCausalLM; its key table in hf_opt.cpp): config.json + model.safetensors, a sharded
// model.safetensors.index.json with its shards, or pytorch_model.bin (or its sharded index) read by torch_bin.h's
// restricted unpickler. Conversion to our
// canonical names (modules/io/state_dict.h) is the key table in hf_llama.cpp; q/k rows (and q/k biases, q/k norm
// weights) are reordered by permute_rotary_qk, the only place that knows the two layouts.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "modules/io/state_dict.h"

namespace bmos {

// Rotary embeddings rotate pairs of channels of each q/k head. Meta / llama2.c (our canonical layout) store a pair
// as adjacent rows (0,1), (2,3), ...; Hugging Face's rotate-half stores pair j as rows (j, j + head_dim/2).
enum class RotaryDirection { kHfToInterleaved, kInterleavedToHf };

// Reorders the rows of a q or k projection weight (n_heads*head_dim, in) between the two layouts; `n_heads` is the
// number of heads the rows hold (num_key_value_heads for k). The two directions are inverses of each other.
torch::Tensor permute_rotary_qk(const torch::Tensor& w, int64_t n_heads, RotaryDirection direction);

// config.json <-> LlamaConfig. `where` names the file in errors. model_type picks the family: llama (rope_scaling
// llama3 allowed), mistral (sliding_window), qwen2 (q/k/v biases; use_sliding_window must be false), qwen3 (head_dim,
// q_norm/k_norm). Keys we do not model and that change nothing in the math (initializer_range, use_cache, ...) are
// ignored; keys that would change it (another rope_scaling type, attention_bias, a sliding window outside Mistral,
// another model_type) are errors naming the key.
LlamaConfig llama_config_from_hf_json(const nlohmann::json& j, const std::string& where);
nlohmann::json llama_config_to_hf_json(const LlamaConfig& config);

// Streams a Hugging Face LLaMA folder: `prepare` gets the config (tie_embeddings resolved) before any tensor is read,
// then every tensor is read from its (mapped) shard, converted to `dtype` and our layout, and handed to `sink` one at
// a time, so memory holds one tensor beyond what the sink keeps. Unknown or missing tensors, wrong shapes and shards
// that disagree with their index are errors naming the key and the file.
using TensorSink = std::function<void(const std::string& canonical, torch::Tensor tensor)>;
LlamaConfig read_hf_llama_into(const std::string& dir, torch::Dtype dtype, const TensorSink& sink,
                               const std::function<void(const LlamaConfig&)>& prepare = {});
// The same into canonical fp32 tensors (BF16/F16 converted).
LoadedCheckpoint read_hf_llama(const std::string& dir);

// (HF name, shape) of every tensor a folder of this config holds, in our writing order.
std::vector<std::pair<std::string, std::vector<int64_t>>> hf_llama_tensor_shapes(const LlamaConfig& config);

// Writes `ck` as a Hugging Face LLaMA folder (config.json + model.safetensors, fp32) that transformers can load;
// `ck` must hold exactly the canonical tensors of its config. Creates `dir` if needed; files are replaced atomically.
void write_hf_llama(const std::string& dir, const LoadedCheckpoint& ck);

}  // namespace bmos
