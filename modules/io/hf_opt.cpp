// OPT (transformers' OPTForCausalLM): config.json and tensor names. What differs from the LLaMA-like families only;
// the folder reader and writer are hf_llama.cpp's.
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "modules/io/hf_key_table.h"

namespace bmos {

namespace {

using Shape = std::vector<int64_t>;
bool has_bias(const LlamaConfig& c) { return c.linear_bias; }
bool has_final_norm(const LlamaConfig& c) { return c.final_norm; }
bool projects(const LlamaConfig& c) { return c.projects_embeddings(); }

}  // namespace

const FamilyKeys& opt_keys() {
  using C = LlamaConfig;
  auto dim = [](const C& c) { return Shape{c.dim}; };
  auto square = [](const C& c) { return Shape{c.dim, c.dim}; };
  static const FamilyKeys keys{
      "model.decoder.layers.",
      {
          {"model.decoder.embed_tokens.weight", "tok_embeddings.weight", Rotary::kNone,
           [](const C& c) { return Shape{c.vocab_size, c.embedding_dim()}; }},
          {"model.decoder.embed_positions.weight", "pos_embeddings.weight", Rotary::kNone,
           [](const C& c) { return Shape{c.max_seq_len + LlamaConfig::kPositionOffset, c.dim}; }},
          {"model.decoder.project_in.weight", "project_in.weight", Rotary::kNone,
           [](const C& c) { return Shape{c.dim, c.embedding_dim()}; }, projects},
          {"model.decoder.layers.{}.self_attn_layer_norm.weight", "layers.{}.attention_norm.weight", Rotary::kNone, dim},
          {"model.decoder.layers.{}.self_attn_layer_norm.bias", "layers.{}.attention_norm.bias", Rotary::kNone, dim},
          {"model.decoder.layers.{}.self_attn.q_proj.weight", "layers.{}.attention.wq.weight", Rotary::kNone, square},
          {"model.decoder.layers.{}.self_attn.q_proj.bias", "layers.{}.attention.wq.bias", Rotary::kNone, dim, has_bias},
          {"model.decoder.layers.{}.self_attn.k_proj.weight", "layers.{}.attention.wk.weight", Rotary::kNone, square},
          {"model.decoder.layers.{}.self_attn.k_proj.bias", "layers.{}.attention.wk.bias", Rotary::kNone, dim, has_bias},
          {"model.decoder.layers.{}.self_attn.v_proj.weight", "layers.{}.attention.wv.weight", Rotary::kNone, square},
          {"model.decoder.layers.{}.self_attn.v_proj.bias", "layers.{}.attention.wv.bias", Rotary::kNone, dim, has_bias},
          {"model.decoder.layers.{}.self_attn.out_proj.weight", "layers.{}.attention.wo.weight", Rotary::kNone, square},
          {"model.decoder.layers.{}.self_attn.out_proj.bias", "layers.{}.attention.wo.bias", Rotary::kNone, dim,
           has_bias},
          {"model.decoder.layers.{}.final_layer_norm.weight", "layers.{}.ffn_norm.weight", Rotary::kNone, dim},
          {"model.decoder.layers.{}.final_layer_norm.bias", "layers.{}.ffn_norm.bias", Rotary::kNone, dim},
          {"model.decoder.layers.{}.fc1.weight", "layers.{}.feed_forward.w1.weight", Rotary::kNone,
           [](const C& c) { return Shape{c.hidden_dim, c.dim}; }},
          {"model.decoder.layers.{}.fc1.bias", "layers.{}.feed_forward.w1.bias", Rotary::kNone,
           [](const C& c) { return Shape{c.hidden_dim}; }, has_bias},
          {"model.decoder.layers.{}.fc2.weight", "layers.{}.feed_forward.w2.weight", Rotary::kNone,
           [](const C& c) { return Shape{c.dim, c.hidden_dim}; }},
          {"model.decoder.layers.{}.fc2.bias", "layers.{}.feed_forward.w2.bias", Rotary::kNone, dim, has_bias},
          {"model.decoder.final_layer_norm.weight", "norm.weight", Rotary::kNone, dim, has_final_norm},
          {"model.decoder.final_layer_norm.bias", "norm.bias", Rotary::kNone, dim, has_final_norm},
          {"model.decoder.project_out.weight", "project_out.weight", Rotary::kNone,
           [](const C& c) { return Shape{c.embedding_dim(), c.dim}; }, projects},
          {"lm_head.weight", "output.weight", Rotary::kNone,
           [](const C& c) { return Shape{c.vocab_size, c.embedding_dim()}; }},
      },
      {},
      // facebook/opt-* were saved from OPTModel: "decoder.layers.0..." without the "model." of OPTForCausalLM.
      [](const std::string& key) { return key.rfind("decoder.", 0) == 0 ? "model." + key : key; },
  };
  return keys;
}

LlamaConfig opt_config_from_hf_json(const nlohmann::json& j, const std::string& where) {
  const HfConfigKeys cfg{j, where, "an OPT"};
  LlamaConfig c;
  c.family = "opt";
  c.layer_norm = c.learned_positions = c.relu_mlp = true;
  if (j.contains("activation_function") && j["activation_function"] != "relu")
    cfg.fail("activation_function", "is " + j["activation_function"].dump() + "; OPT's MLP here is ReLU (\"relu\")");
  if (!cfg.get_bool("layer_norm_elementwise_affine", true))
    cfg.fail("layer_norm_elementwise_affine", "is false; LayerNorms without weight and bias are not supported");
  for (const char* key : {"rope_scaling", "sliding_window", "rope_theta"})
    if (j.contains(key) && !j[key].is_null()) cfg.fail(key, "is set; OPT has learned positions, no rotary embeddings");
  c.dim = cfg.get_int("hidden_size", nullptr);
  c.hidden_dim = cfg.get_int("ffn_dim", nullptr);
  c.n_layers = cfg.get_int("num_hidden_layers", nullptr);
  c.n_heads = c.n_kv_heads = cfg.get_int("num_attention_heads", nullptr);
  c.vocab_size = cfg.get_int("vocab_size", nullptr);
  const int64_t default_positions = 2048;  // transformers' OPTConfig default
  c.max_seq_len = cfg.get_int("max_position_embeddings", &default_positions);
  c.embed_dim = cfg.get_int("word_embed_proj_dim", &c.dim);
  c.norm_eps = 1e-5;  // nn.LayerNorm's default, which OPT uses
  c.linear_bias = cfg.get_bool("enable_bias", true);
  c.post_norm = !cfg.get_bool("do_layer_norm_before", true);
  c.final_norm = !c.post_norm && !cfg.get_bool("_remove_final_layer_norm", false);
  c.tie_embeddings = cfg.get_bool("tie_word_embeddings", true);  // PretrainedConfig's default; OPT ties its head
  c.bos_id = cfg.get_token("bos_token_id", 2);
  c.eos_id = cfg.get_token("eos_token_id", 2);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(where + ": " + e.what());
  }
  return c;
}

nlohmann::json opt_config_to_hf_json(const LlamaConfig& c) {
  nlohmann::json j = {
      {"architectures", {"OPTForCausalLM"}},
      {"model_type", "opt"},
      {"activation_function", "relu"},
      {"hidden_size", c.dim},
      {"ffn_dim", c.hidden_dim},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_seq_len},
      {"word_embed_proj_dim", c.embedding_dim()},
      {"do_layer_norm_before", !c.post_norm},
      {"enable_bias", c.linear_bias},
      {"layer_norm_elementwise_affine", true},
      {"tie_word_embeddings", c.tie_embeddings},
      {"bos_token_id", c.bos_id},
      {"eos_token_id", c.eos_id},
      {"torch_dtype", "float32"},
  };
  if (!c.post_norm && !c.final_norm) j["_remove_final_layer_norm"] = true;
  return j;
}

}  // namespace bmos
