#include "modules/io/hf_llama.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>

#include <glog/logging.h>
#include <nlohmann/json.hpp>

#include "modules/io/hf_key_table.h"
#include "modules/io/safetensors.h"
#include "modules/io/tensor_file.h"

namespace bmos {

namespace fs = std::filesystem;

// ------------------------------------------------------------------------------------------------ rotary permutation
torch::Tensor permute_rotary_qk(const torch::Tensor& w, int64_t n_heads, RotaryDirection direction) {
  TORCH_CHECK(w.dim() == 2, "permute_rotary_qk: expected a 2-D weight (rows, in), got shape ", w.sizes());
  const int64_t rows = w.size(0), in = w.size(1);
  TORCH_CHECK(n_heads > 0 && rows % n_heads == 0, "permute_rotary_qk: ", rows, " rows do not split into ", n_heads,
              " heads");
  const int64_t half = rows / n_heads / 2;
  TORCH_CHECK(half * 2 * n_heads == rows, "permute_rotary_qk: head_dim ", rows / n_heads, " is odd");
  // Per head, HF row (a, j) [a = which half, j = pair] holds interleaved row (j, a).
  if (direction == RotaryDirection::kHfToInterleaved)
    return w.reshape({n_heads, 2, half, in}).transpose(1, 2).reshape({rows, in}).contiguous();
  return w.reshape({n_heads, half, 2, in}).transpose(1, 2).reshape({rows, in}).contiguous();
}

// -------------------------------------------------------------------------------------------------------- key table
namespace {

bool has_qkv_bias(const LlamaConfig& c) { return c.qkv_bias; }
bool has_qk_norm(const LlamaConfig& c) { return c.qk_norm; }

// A weight (rows, in) or bias/norm weight (rows) between HF's rotate-half and our interleaved layout.
torch::Tensor rotary_layout(const torch::Tensor& t, Rotary rotary, const LlamaConfig& c, RotaryDirection direction) {
  if (rotary == Rotary::kNone) return t;
  const int64_t heads = rotary == Rotary::kQ ? c.n_heads : rotary == Rotary::kK ? c.n_kv_heads : 1;
  if (t.dim() == 1) return permute_rotary_qk(t.unsqueeze(1), heads, direction).squeeze(1);
  return permute_rotary_qk(t, heads, direction);
}

const FamilyKeys& llama_keys() {
  using C = LlamaConfig;
  static const FamilyKeys keys{"model.layers.", {
      {"model.embed_tokens.weight", "tok_embeddings.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.vocab_size, c.dim}; }},
      {"model.layers.{}.input_layernorm.weight", "layers.{}.attention_norm.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.dim}; }},
      {"model.layers.{}.self_attn.q_proj.weight", "layers.{}.attention.wq.weight", Rotary::kQ,
       [](const C& c) { return std::vector<int64_t>{c.n_heads * c.head_dim(), c.dim}; }},
      {"model.layers.{}.self_attn.k_proj.weight", "layers.{}.attention.wk.weight", Rotary::kK,
       [](const C& c) { return std::vector<int64_t>{c.n_kv_heads * c.head_dim(), c.dim}; }},
      {"model.layers.{}.self_attn.v_proj.weight", "layers.{}.attention.wv.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.n_kv_heads * c.head_dim(), c.dim}; }},
      {"model.layers.{}.self_attn.q_proj.bias", "layers.{}.attention.wq.bias", Rotary::kQ,
       [](const C& c) { return std::vector<int64_t>{c.n_heads * c.head_dim()}; }, has_qkv_bias},
      {"model.layers.{}.self_attn.k_proj.bias", "layers.{}.attention.wk.bias", Rotary::kK,
       [](const C& c) { return std::vector<int64_t>{c.n_kv_heads * c.head_dim()}; }, has_qkv_bias},
      {"model.layers.{}.self_attn.v_proj.bias", "layers.{}.attention.wv.bias", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.n_kv_heads * c.head_dim()}; }, has_qkv_bias},
      {"model.layers.{}.self_attn.q_norm.weight", "layers.{}.attention.q_norm.weight", Rotary::kHead,
       [](const C& c) { return std::vector<int64_t>{c.head_dim()}; }, has_qk_norm},
      {"model.layers.{}.self_attn.k_norm.weight", "layers.{}.attention.k_norm.weight", Rotary::kHead,
       [](const C& c) { return std::vector<int64_t>{c.head_dim()}; }, has_qk_norm},
      {"model.layers.{}.self_attn.o_proj.weight", "layers.{}.attention.wo.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.dim, c.n_heads * c.head_dim()}; }},
      {"model.layers.{}.post_attention_layernorm.weight", "layers.{}.ffn_norm.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.dim}; }},
      {"model.layers.{}.mlp.gate_proj.weight", "layers.{}.feed_forward.w1.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.hidden_dim, c.dim}; }},
      {"model.layers.{}.mlp.down_proj.weight", "layers.{}.feed_forward.w2.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.dim, c.hidden_dim}; }},
      {"model.layers.{}.mlp.up_proj.weight", "layers.{}.feed_forward.w3.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.hidden_dim, c.dim}; }},
      {"model.norm.weight", "norm.weight", Rotary::kNone, [](const C& c) { return std::vector<int64_t>{c.dim}; }},
      {"lm_head.weight", "output.weight", Rotary::kNone,
       [](const C& c) { return std::vector<int64_t>{c.vocab_size, c.dim}; }},
  },
  // Buffers older transformers versions saved beside the weights; recomputed by the model, so skipped.
  {"model.layers.{}.self_attn.rotary_emb.inv_freq"},
  [](const std::string& key) { return key; }};
  return keys;
}

const FamilyKeys& family_keys(const LlamaConfig& c) { return c.family == "opt" ? opt_keys() : llama_keys(); }

// "model.layers.12.mlp.up_proj.weight" -> ("model.layers.{}.mlp.up_proj.weight", 12); layer -1 when there is none.
std::pair<std::string, int64_t> split_layer(const std::string& key, const std::string& prefix) {
  if (key.compare(0, prefix.size(), prefix) != 0) return {key, -1};
  size_t end = prefix.size();
  while (end < key.size() && std::isdigit(static_cast<unsigned char>(key[end]))) ++end;
  if (end == prefix.size() || end - prefix.size() > 9 || end >= key.size() || key[end] != '.') return {key, -1};
  return {prefix + "{}" + key.substr(end), std::stoll(key.substr(prefix.size(), end - prefix.size()))};
}

std::string with_layer(const std::string& pattern, int64_t layer) {
  const size_t at = pattern.find("{}");
  return at == std::string::npos ? pattern : pattern.substr(0, at) + std::to_string(layer) + pattern.substr(at + 2);
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// Every (hf key, canonical key, rule) the config calls for, in model order.
struct ExpectedKey {
  std::string hf, canonical;
  const KeyRule* rule;
};
std::vector<ExpectedKey> expected_keys(const LlamaConfig& c) {
  std::vector<ExpectedKey> out;
  for (const auto& r : family_keys(c).rules) {
    if (std::string(r.canonical) == "output.weight" && c.tie_embeddings) continue;
    if (r.present && !r.present(c)) continue;
    if (std::string(r.hf).find("{}") == std::string::npos) {
      out.push_back({r.hf, r.canonical, &r});
    } else {
      for (int64_t i = 0; i < c.n_layers; ++i) out.push_back({with_layer(r.hf, i), with_layer(r.canonical, i), &r});
    }
  }
  return out;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot open '" + p.string() + "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + p.string() + "' is not valid JSON: " + e.what());
  }
}

void write_text_atomically(const fs::path& p, const std::string& text) {
  const std::string tmp = p.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("cannot write '" + tmp + "' (disk full or no permission?)");
  }
  fs::rename(tmp, p);
}

}  // namespace

// ------------------------------------------------------------------------------------------------------ config.json
void HfConfigKeys::fail(const std::string& key, const std::string& what) const {
  throw std::runtime_error(where + ": key '" + key + "' " + what);
}

int64_t HfConfigKeys::get_int(const char* key, const int64_t* fallback) const {
  if (!j.contains(key) || j[key].is_null()) {
    if (!fallback) fail(key, "is missing (" + model + " config.json needs it)");
    return *fallback;
  }
  if (!j[key].is_number_integer()) fail(key, "must be an integer, got " + j[key].dump());
  return j[key].get<int64_t>();
}

double HfConfigKeys::get_double(const char* key, double fallback) const {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail(key, "must be a number, got " + j[key].dump());
  return j[key].get<double>();
}

bool HfConfigKeys::get_bool(const char* key, bool fallback) const {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) fail(key, "must be true or false, got " + j[key].dump());
  return j[key].get<bool>();
}

int64_t HfConfigKeys::get_token(const char* key, int64_t fallback) const {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const auto& v = j[key].is_array() && !j[key].empty() ? j[key][0] : j[key];  // several stop tokens: the first
  if (!v.is_number_integer()) fail(key, "must be a token id, got " + j[key].dump());
  return v.get<int64_t>();
}

LlamaConfig llama_config_from_hf_json(const nlohmann::json& j, const std::string& where) {
  const HfConfigKeys cfg{j, where, "a LLaMA"};
  if (!j.is_object()) throw std::runtime_error(where + ": expected a JSON object (a Hugging Face config.json)");
  if (j.contains("model_type") && j["model_type"] == "opt") return opt_config_from_hf_json(j, where);

  // The family: model_type picks which switches of LlamaConfig config.json may turn on.
  LlamaConfig c;
  if (j.contains("model_type")) {
    const auto& t = j["model_type"];
    if (!t.is_string() || (t != "llama" && t != "mistral" && t != "qwen2" && t != "qwen3"))
      cfg.fail("model_type", "is " + t.dump() + "; supported: \"llama\", \"mistral\", \"qwen2\", \"qwen3\", \"opt\"");
    c.family = t.get<std::string>();
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    cfg.fail("hidden_act", "is " + j["hidden_act"].dump() + "; our LLaMA uses SwiGLU (\"silu\")");
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& r = j["rope_scaling"];
    const std::string type_key = r.is_object() && r.contains("rope_type") ? "rope_type" : "type";
    if (!r.is_object() || !r.contains(type_key) || r[type_key] != "llama3")
      cfg.fail("rope_scaling", "is " + r.dump() + "; only rope_type \"llama3\" (Llama-3.1/3.2) or null is supported");
    for (auto it = r.begin(); it != r.end(); ++it) {
      const std::string k = it.key();
      if (k == "rope_type" || k == "type") continue;
      if (k != "factor" && k != "low_freq_factor" && k != "high_freq_factor" && k != "original_max_position_embeddings")
        cfg.fail("rope_scaling." + k, "is not part of llama3 rotary scaling (it would change the model)");
      if (!it.value().is_number()) cfg.fail("rope_scaling." + k, "must be a number, got " + it.value().dump());
    }
    for (const char* k : {"factor", "original_max_position_embeddings"})
      if (!r.contains(k)) cfg.fail(std::string("rope_scaling.") + k, "is missing (llama3 rotary scaling needs it)");
    c.rope_factor = r["factor"].get<double>();
    c.rope_low_freq_factor = r.value("low_freq_factor", 1.0);
    c.rope_high_freq_factor = r.value("high_freq_factor", 4.0);
    if (!r["original_max_position_embeddings"].is_number_integer())
      cfg.fail("rope_scaling.original_max_position_embeddings", "must be an integer");
    c.rope_original_max_positions = r["original_max_position_embeddings"].get<int64_t>();
  }
  if (j.contains("mlp_bias") && j["mlp_bias"] == true) cfg.fail("mlp_bias", "is true; our MLP has no biases");
  // attention_bias (LLaMA, Mistral, Qwen3) would put a bias on o_proj too; Qwen2 always has q/k/v biases.
  if (j.contains("attention_bias") && j["attention_bias"] == true)
    cfg.fail("attention_bias", "is true; biases on all four attention projections are not supported");
  c.qkv_bias = c.family == "qwen2";
  c.qk_norm = c.family == "qwen3";
  // Sliding window: Mistral's sliding_window (null = none); Qwen's only with use_sliding_window, which we refuse.
  if (c.family == "qwen2" || c.family == "qwen3") {
    if (j.contains("use_sliding_window") && j["use_sliding_window"] != false)
      cfg.fail("use_sliding_window", "is " + j["use_sliding_window"].dump() +
                                     "; Qwen's per-layer sliding window (max_window_layers) is not supported");
    if (j.contains("use_mrope") && j["use_mrope"] != false)
      cfg.fail("use_mrope", "is " + j["use_mrope"].dump() + "; multimodal rotary embeddings are not supported");
  } else {
    for (const char* key : {"use_sliding_window", "max_window_layers"})
      if (j.contains(key)) cfg.fail(key, "is a Qwen key; model_type is " + j.value("model_type", std::string("llama")));
    if (j.contains("sliding_window") && !j["sliding_window"].is_null()) {
      if (c.family != "mistral") cfg.fail("sliding_window", "is set; only model_type \"mistral\" has a sliding window");
      if (!j["sliding_window"].is_number_integer() || j["sliding_window"].get<int64_t>() <= 0)
        cfg.fail("sliding_window", "must be a positive integer or null, got " + j["sliding_window"].dump());
      c.sliding_window = j["sliding_window"].get<int64_t>();
    }
  }
  // Newer transformers list each layer's attention kind; all "full_attention" is the model above.
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    if (!j["layer_types"].is_array()) cfg.fail("layer_types", "must be a list, got " + j["layer_types"].dump());
    for (const auto& t : j["layer_types"])
      if (t != "full_attention")
        cfg.fail("layer_types", "holds " + t.dump() + "; only \"full_attention\" layers are supported");
  }

  c.dim = cfg.get_int("hidden_size", nullptr);
  c.hidden_dim = cfg.get_int("intermediate_size", nullptr);
  c.n_layers = cfg.get_int("num_hidden_layers", nullptr);
  c.n_heads = cfg.get_int("num_attention_heads", nullptr);
  c.n_kv_heads = cfg.get_int("num_key_value_heads", &c.n_heads);
  c.vocab_size = cfg.get_int("vocab_size", nullptr);
  const int64_t hf_default_positions = 2048;  // transformers' LlamaConfig default
  c.max_seq_len = cfg.get_int("max_position_embeddings", &hf_default_positions);
  c.norm_eps = cfg.get_double("rms_norm_eps", 1e-6);  // transformers' default
  c.rope_theta = cfg.get_double("rope_theta", 10000.0);
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_boolean())
    cfg.fail("tie_word_embeddings", "must be true or false, got " + j["tie_word_embeddings"].dump());
  c.tie_embeddings = j.value("tie_word_embeddings", false);  // transformers' default
  c.bos_id = cfg.get_token("bos_token_id", 1);
  c.eos_id = cfg.get_token("eos_token_id", 2);
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    const int64_t hd = cfg.get_int("head_dim", nullptr);
    if (c.n_heads <= 0 || c.dim % c.n_heads != 0 || hd != c.dim / c.n_heads) c.explicit_head_dim = hd;
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(where + ": " + e.what());
  }
  return c;
}

nlohmann::json llama_config_to_hf_json(const LlamaConfig& c) {
  if (c.family == "opt") return opt_config_to_hf_json(c);
  const char* architecture = c.family == "mistral" ? "MistralForCausalLM"
                             : c.family == "qwen2" ? "Qwen2ForCausalLM"
                             : c.family == "qwen3" ? "Qwen3ForCausalLM"
                                                   : "LlamaForCausalLM";
  nlohmann::json j = {
      {"architectures", {architecture}},
      {"model_type", c.family},
      {"hidden_act", "silu"},
      {"hidden_size", c.dim},
      {"intermediate_size", c.hidden_dim},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_seq_len},
      {"rms_norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"tie_word_embeddings", c.tie_embeddings},
      {"bos_token_id", c.bos_id},
      {"eos_token_id", c.eos_id},
      {"torch_dtype", "float32"},
  };
  if (c.explicit_head_dim > 0) j["head_dim"] = c.explicit_head_dim;
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  if (c.family == "qwen2" || c.family == "qwen3") j["use_sliding_window"] = false;
  if (c.rope_factor > 0)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_factor},
                         {"low_freq_factor", c.rope_low_freq_factor},
                         {"high_freq_factor", c.rope_high_freq_factor},
                         {"original_max_position_embeddings", c.rope_original_max_positions}};
  return j;
}

// ----------------------------------------------------------------------------------------------------------- reader
LlamaConfig read_hf_llama_into(const std::string& dir, torch::Dtype dtype, const TensorSink& sink,
                               const std::function<void(const LlamaConfig&)>& prepare) {
  const fs::path root(dir);
  auto fail = [&](const std::string& what) -> void {
    throw std::runtime_error("Hugging Face model folder '" + dir + "': " + what);
  };
  if (!fs::is_directory(root))
    fail(fs::exists(root) ? "is not a folder (expected a folder with config.json and model.safetensors)"
                          : "does not exist (expected a folder with config.json and model.safetensors)");
  const fs::path config_path = root / "config.json";
  if (!fs::exists(config_path)) fail("has no config.json (expected a Hugging Face model folder)");
  const nlohmann::json cj = read_json(config_path);
  if (cj.contains("quantization"))
    fail("config.json has a 'quantization' section: this is an exported packed 1-bit model, not a full-precision "
         "Hugging Face folder");

  LlamaConfig config = llama_config_from_hf_json(cj, config_path.string());
  const bool config_tied = config.tie_embeddings;

  // ----------------------------------------------------------------------------- which file holds which tensor
  // model.safetensors, or its sharded index; else pytorch_model.bin (torch.save zip, restricted unpickler), or its
  // sharded index (same weight_map format). Safetensors first, as transformers prefers them.
  std::vector<std::unique_ptr<TensorFileReader>> files;
  std::map<std::string, const TensorFileReader*> where;  // hf key -> file
  auto read_index = [&](const fs::path& index_path) {
    const std::string index_name = index_path.filename().string();
    const nlohmann::json index = read_json(index_path);
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      fail(index_name + " has no \"weight_map\" object");
    std::map<std::string, std::string> weight_map;  // key -> shard file name
    std::set<std::string> shards;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail("index weight_map['" + it.key() + "'] is not a file name");
      weight_map[it.key()] = it.value().get<std::string>();
      shards.insert(it.value().get<std::string>());
    }
    for (const auto& shard : shards)
      if (!fs::exists(root / shard)) fail("shard '" + shard + "' named in " + index_name + " is missing");
    for (const auto& shard : shards) {
      files.push_back(open_tensor_file((root / shard).string()));
      for (const auto& name : files.back()->names()) {
        auto wm = weight_map.find(name);
        if (wm == weight_map.end() || wm->second != shard)
          fail("shard '" + shard + "' holds tensor '" + name + "', which the index " +
               (wm == weight_map.end() ? std::string("does not list") : "places in '" + wm->second + "'"));
        where[name] = files.back().get();
      }
    }
    for (const auto& [name, shard] : weight_map)
      if (!where.count(name)) fail("index lists tensor '" + name + "' in shard '" + shard + "', which lacks it");
  };
  auto read_single = [&](const fs::path& path) {
    files.push_back(open_tensor_file(path.string()));
    for (const auto& name : files.back()->names()) where[name] = files.back().get();
  };
  if (fs::exists(root / "model.safetensors")) {
    read_single(root / "model.safetensors");
  } else if (fs::exists(root / "model.safetensors.index.json")) {
    read_index(root / "model.safetensors.index.json");
  } else if (fs::exists(root / "pytorch_model.bin")) {
    read_single(root / "pytorch_model.bin");
  } else if (fs::exists(root / "pytorch_model.bin.index.json")) {
    read_index(root / "pytorch_model.bin.index.json");
  } else {
    std::string found;
    for (const auto& e : fs::directory_iterator(root)) found += (found.empty() ? "" : ", ") + e.path().filename().string();
    fail("has none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json "
         "(found: " + found + ")");
  }

  // -------------------------------------------------------------------------------------------- tied or untied head
  // Decided from the key list, before any tensor is read, so the sink can be given a model of the right shape.
  const FamilyKeys& keys = family_keys(config);
  const bool has_head = where.count("lm_head.weight") != 0;
  if (!config_tied && !has_head) {
    LOG(WARNING) << dir << ": config.json has tie_word_embeddings=false (or absent) but there is no lm_head.weight; "
                 << "tying the output head to model.embed_tokens.weight, as transformers does";
    config.tie_embeddings = true;
  }
  if (prepare) prepare(config);

  // ----------------------------------------------------------------------------------- every key through the table
  std::set<std::string> seen;
  torch::Tensor embeddings, tied_head;  // compared when the config ties them but the file has both
  for (const auto& [key, file] : where) {
    const auto [pattern, layer] = split_layer(keys.normalize(key), keys.layer_prefix);
    bool ignored = false;
    for (const auto& ig : keys.ignored) ignored |= pattern == ig;
    if (ignored) continue;
    const KeyRule* rule = nullptr;
    for (const auto& r : keys.rules)
      if (pattern == r.hf && (!r.present || r.present(config))) rule = &r;
    if (!rule)
      fail("unknown tensor '" + key + "' in '" + file->path() +
           "' (not in the key table of model_type \"" + config.family +
           "\": a different architecture, or biases/adapters we do not model)");
    if ((layer >= 0) != (std::string(rule->hf).find("{}") != std::string::npos) || layer >= config.n_layers)
      fail("tensor '" + key + "' names layer " + std::to_string(layer) + " but config.json has num_hidden_layers=" +
           std::to_string(config.n_layers));
    const std::string canonical = with_layer(rule->canonical, layer);
    const SafetensorsInfo& info = file->info(key);
    const std::vector<int64_t> want = rule->shape(config);
    if (info.shape != want)
      fail("tensor '" + key + "' in '" + file->path() + "' has shape " + shape_text(info.shape) + ", config.json " +
           "implies " + shape_text(want));
    if (info.dtype != "F32" && info.dtype != "F16" && info.dtype != "BF16")
      fail("tensor '" + key + "' in '" + file->path() + "' has dtype " + info.dtype +
           " (expected F32, F16 or BF16)");
    torch::Tensor t = rotary_layout(file->load(key).to(dtype), rule->rotary, config, RotaryDirection::kHfToInterleaved);
    seen.insert(canonical);
    if (canonical == "output.weight" && config_tied) {
      tied_head = t;
    } else {
      if (canonical == "tok_embeddings.weight" && config_tied && has_head) embeddings = t;
      sink(canonical, std::move(t));
    }
    if (tied_head.defined() && embeddings.defined()) {
      if (!torch::equal(tied_head, embeddings))
        fail("config.json sets tie_word_embeddings=true but lm_head.weight differs from model.embed_tokens.weight; "
             "set tie_word_embeddings to false to use the separate head");
      tied_head = embeddings = torch::Tensor();
    }
  }

  std::string missing;
  size_t n_missing = 0;
  for (const auto& e : expected_keys(config))
    if (!seen.count(e.canonical) && n_missing++ < 8) missing += (missing.empty() ? "" : ", ") + e.hf;
  if (n_missing)
    fail(std::to_string(n_missing) + " tensor(s) missing: " + missing + (n_missing > 8 ? ", ..." : ""));
  return config;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> hf_llama_tensor_shapes(const LlamaConfig& config) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& e : expected_keys(config)) out.emplace_back(e.hf, e.rule->shape(config));
  return out;
}

LoadedCheckpoint read_hf_llama(const std::string& dir) {
  LoadedCheckpoint ck;
  ck.source = dir;
  ck.config = read_hf_llama_into(dir, torch::kFloat32,
                                 [&](const std::string& name, torch::Tensor t) { ck.tensors[name] = std::move(t); });
  return ck;
}

// ----------------------------------------------------------------------------------------------------------- writer
void write_hf_llama(const std::string& dir, const LoadedCheckpoint& ck) {
  auto fail = [&](const std::string& what) -> void {
    throw std::runtime_error("writing Hugging Face model folder '" + dir + "': " + what);
  };
  try {
    ck.config.validate();
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }
  std::vector<SafetensorsEntry> entries;
  for (const auto& e : expected_keys(ck.config)) {
    auto it = ck.tensors.find(e.canonical);
    if (it == ck.tensors.end()) fail("tensor '" + e.canonical + "' is missing from the state dict");
    const std::vector<int64_t> want = e.rule->shape(ck.config);
    if (it->second.sizes().vec() != want)
      fail("tensor '" + e.canonical + "' has shape " + shape_text(it->second.sizes().vec()) + ", the config implies " +
           shape_text(want));
    torch::Tensor t = it->second.detach().to(torch::kCPU, torch::kFloat32);
    t = rotary_layout(t, e.rule->rotary, ck.config, RotaryDirection::kInterleavedToHf);
    entries.push_back({e.hf, t, ""});
  }
  if (entries.size() != ck.tensors.size()) {
    std::set<std::string> known;
    for (const auto& e : expected_keys(ck.config)) known.insert(e.canonical);
    for (const auto& [name, t] : ck.tensors)
      if (!known.count(name))
        fail("tensor '" + name + "' has no Hugging Face name (a quantized layer? export it with bmos export)");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create the folder: " + ec.message());
  // transformers refuses safetensors files whose metadata lacks format=pt.
  write_safetensors((fs::path(dir) / "model.safetensors").string(), entries, {{"format", "pt"}});
  write_text_atomically(fs::path(dir) / "config.json", llama_config_to_hf_json(ck.config).dump(2) + "\n");
}

}  // namespace bmos
