// How a Hugging Face family's tensor names and config.json map onto ours: the key table hf_llama.cpp's reader and
// writer walk, one per family (LLaMA-like in hf_llama.cpp, OPT in hf_opt.cpp). Internal to modules/io.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "modules/llama_config.h"

namespace bmos {

// Which rows a tensor's rotary reordering acts on: q heads, kv heads, or one head (Qwen3's q_norm/k_norm weights).
enum class Rotary { kNone, kQ, kK, kHead };

struct KeyRule {
  const char* hf;         // "{}" = layer index
  const char* canonical;  // idem
  Rotary rotary;
  std::function<std::vector<int64_t>(const LlamaConfig&)> shape;
  bool (*present)(const LlamaConfig&) = nullptr;  // nullptr: in every config
};

struct FamilyKeys {
  std::string layer_prefix;  // "model.layers." -> "model.layers.{}...." patterns
  std::vector<KeyRule> rules;
  std::vector<std::string> ignored;  // buffers saved beside the weights that the model recomputes
  // Names as some checkpoints spell them -> the table's spelling (OPT's original checkpoints drop "model.").
  std::function<std::string(const std::string&)> normalize;
};

// Typed reads of one config.json; every error names the file (`where`) and the key (hf_llama.cpp).
struct HfConfigKeys {
  const nlohmann::json& j;
  std::string where;
  std::string model;  // "a LLaMA", "an OPT": named when a required key is missing
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
  int64_t get_int(const char* key, const int64_t* fallback) const;  // no fallback: required
  double get_double(const char* key, double fallback) const;
  bool get_bool(const char* key, bool fallback) const;
  int64_t get_token(const char* key, int64_t fallback) const;       // a list of ids: its first
};

// OPT (modules/io/hf_opt.cpp).
const FamilyKeys& opt_keys();
LlamaConfig opt_config_from_hf_json(const nlohmann::json& j, const std::string& where);
nlohmann::json opt_config_to_hf_json(const LlamaConfig& c);

}  // namespace bmos
