#include "modules/packed/packed_layout.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "kernels/packed_format.h"

namespace bmos {

namespace {

int64_t dtype_size(const std::string& dtype) {
  if (dtype == "U32" || dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "I8") return 1;
  throw std::invalid_argument("packed layout: unknown dtype '" + dtype + "'");
}

bool is_float_dtype(const std::string& d) { return d == "F16" || d == "BF16" || d == "F32"; }

}  // namespace

std::string canonical_dtype(const std::string& text, const std::string& flag) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "f16" || t == "float16" || t == "fp16") return "F16";
  if (t == "bf16" || t == "bfloat16") return "BF16";
  if (t == "f32" || t == "float32" || t == "fp32") return "F32";
  throw std::invalid_argument(flag + " must be f16, bf16 or f32, got '" + text + "'");
}

nlohmann::json quantization_to_json(const PackedQuantization& q) {
  return {{"method", q.method},
          {"experts", q.experts},
          {"format_version", q.format_version},
          {"bit_order", q.format_version == 1 ? packed::kBitOrderV1 : packed::kBitOrder},
          {"scale_dtype", q.scale_dtype},
          {"fp_dtype", q.fp_dtype},
          {"embedding_bits", q.embedding_bits}};
}

PackedQuantization quantization_from_json(const nlohmann::json& j, const std::string& where) {
  auto fail = [&](const std::string& what) -> void {
    throw std::runtime_error(where + ": quantization." + what);
  };
  if (!j.is_object()) throw std::runtime_error(where + ": \"quantization\" must be a JSON object");
  PackedQuantization q;
  if (!j.contains("format_version") || !j["format_version"].is_number_integer())
    fail("format_version is missing or not an integer: this file was not written by `bmos export`");
  q.format_version = j["format_version"].get<int>();
  if (q.format_version != 1 && q.format_version != packed::kFormatVersion)
    fail("format_version is " + std::to_string(q.format_version) + ", but this build reads format_version 1 and " +
         std::to_string(packed::kFormatVersion) + ": re-export the checkpoint with this build's `bmos export`, or "
         "use the binarymos version that wrote it");
  const std::string bit_order = q.format_version == 1 ? packed::kBitOrderV1 : packed::kBitOrder;
  q.bit_order = j.value("bit_order", "");
  if (q.bit_order != bit_order)
    fail("bit_order is \"" + q.bit_order + "\", format_version " + std::to_string(q.format_version) + " has \"" +
         bit_order + "\"");
  q.method = j.value("method", "");
  if (q.method != "binarymos" && q.method != "sign")
    fail("method is \"" + q.method + "\"; packed models are \"binarymos\" or \"sign\"");
  if (!j.contains("experts") || !j["experts"].is_number_integer() || j["experts"].get<int64_t>() < 1)
    fail("experts must be an integer >= 1");
  q.experts = j["experts"].get<int64_t>();
  if (q.method == "sign" && q.experts != 1) fail("experts must be 1 for method \"sign\"");
  for (auto [key, value] : {std::pair<const char*, std::string*>{"scale_dtype", &q.scale_dtype},
                            std::pair<const char*, std::string*>{"fp_dtype", &q.fp_dtype}}) {
    *value = j.value(key, "");
    if (!is_float_dtype(*value)) fail(std::string(key) + " is \"" + *value + "\"; expected F16, BF16 or F32");
  }
  q.embedding_bits = j.value("embedding_bits", 16);
  if (q.embedding_bits != 16 && q.embedding_bits != 8) fail("embedding_bits must be 16 or 8");
  return q;
}

std::vector<LinearShape> decoder_linear_shapes(const LlamaConfig& c) {
  const int64_t q = c.n_heads * c.head_dim(), kv = c.n_kv_heads * c.head_dim();
  std::vector<LinearShape> out;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    out.push_back({p + "attention.wq", c.dim, q, c.linear_has_bias("wq")});
    out.push_back({p + "attention.wk", c.dim, kv, c.linear_has_bias("wk")});
    out.push_back({p + "attention.wv", c.dim, kv, c.linear_has_bias("wv")});
    out.push_back({p + "attention.wo", q, c.dim, c.linear_has_bias("wo")});
    out.push_back({p + "feed_forward.w1", c.dim, c.hidden_dim, c.linear_has_bias("w1")});
    out.push_back({p + "feed_forward.w2", c.hidden_dim, c.dim, c.linear_has_bias("w2")});
    if (!c.relu_mlp) out.push_back({p + "feed_forward.w3", c.dim, c.hidden_dim, c.linear_has_bias("w3")});
  }
  return out;
}

int64_t PackedTensor::bytes() const {
  int64_t n = dtype_size(dtype);
  for (int64_t s : shape) n *= s;
  return n;
}

namespace {
bool is_qweight(const std::string& name) {
  const std::string suffix = ".qweight";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

std::vector<PackedTensor> packed_tensor_plan(const LlamaConfig& c, const PackedQuantization& q,
                                             const std::map<std::string, PackedLayerSpec>& packed) {
  std::vector<PackedTensor> plan;
  auto embedding = [&](const std::string& name) {
    if (q.embedding_bits == 8) {
      plan.push_back({name + ".weight", {c.vocab_size, c.embedding_dim()}, "I8"});
      plan.push_back({name + ".weight_scale", {c.vocab_size}, q.scale_dtype});
    } else {
      plan.push_back({name + ".weight", {c.vocab_size, c.embedding_dim()}, q.fp_dtype});
    }
  };
  auto norm = [&](const std::string& name, int64_t width) {
    plan.push_back({name + ".weight", {width}, q.fp_dtype});
    if (c.layer_norm) plan.push_back({name + ".bias", {width}, q.fp_dtype});
  };
  const std::vector<LinearShape> linears = decoder_linear_shapes(c);
  size_t used = 0;
  auto linear = [&](const LinearShape& l) {
    auto it = packed.find(l.name);
    if (it == packed.end()) {
      plan.push_back({l.name + ".weight", {l.out, l.in}, q.fp_dtype});
      if (l.bias) plan.push_back({l.name + ".bias", {l.out}, q.fp_dtype});
      return;
    }
    ++used;
    const PackedLayerSpec& s = it->second;
    if (q.format_version == 1)
      plan.push_back({l.name + ".qweight", {l.out, packed::words_per_row(l.in)}, "U32"});
    else
      plan.push_back({l.name + ".qweight", {packed::row_tiles(l.out), packed::tile_words_per_row(l.in),
                                            packed::kTileRows}, "U32"});
    if (s.kind == "binarymos") {
      plan.push_back({l.name + ".s_in", {s.experts, l.in}, q.scale_dtype});
      plan.push_back({l.name + ".s_out", {s.experts, l.out}, q.scale_dtype});
      if (s.experts > 1) plan.push_back({l.name + ".router", {s.experts, l.in}, q.scale_dtype});
    } else if (s.kind == "sign") {
      plan.push_back({l.name + ".scale", {l.out}, q.scale_dtype});
    } else {
      throw std::invalid_argument("packed layout: layer '" + l.name + "' has unknown kind '" + s.kind + "'");
    }
    if (s.bias) plan.push_back({l.name + ".bias", {l.out}, q.fp_dtype});
  };

  embedding("tok_embeddings");
  if (c.learned_positions)
    plan.push_back({"pos_embeddings.weight", {c.max_seq_len + LlamaConfig::kPositionOffset, c.dim}, q.fp_dtype});
  if (c.projects_embeddings()) plan.push_back({"project_in.weight", {c.dim, c.embedding_dim()}, q.fp_dtype});
  size_t next = 0;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    norm(p + "attention_norm", c.dim);
    for (int k = 0; k < 4; ++k) linear(linears[next++]);
    if (c.qk_norm) {
      norm(p + "attention.q_norm", c.head_dim());
      norm(p + "attention.k_norm", c.head_dim());
    }
    norm(p + "ffn_norm", c.dim);
    for (int k = 0; k < (c.relu_mlp ? 2 : 3); ++k) linear(linears[next++]);
  }
  if (c.final_norm) norm("norm", c.dim);
  if (c.projects_embeddings()) plan.push_back({"project_out.weight", {c.embedding_dim(), c.dim}, q.fp_dtype});
  if (!c.tie_embeddings) embedding("output");
  if (q.format_version >= 2)  // every qweight is whole 64-byte lines: first, they all start 64-byte aligned
    std::stable_partition(plan.begin(), plan.end(), [](const PackedTensor& t) { return is_qweight(t.name); });
  if (used != packed.size()) {
    for (const auto& entry : packed) {  // not a structured binding: C++17 lambdas cannot capture one (clang refuses)
      const std::string& name = entry.first;
      const bool known =
          std::any_of(linears.begin(), linears.end(), [&](const LinearShape& l) { return l.name == name; });
      if (!known) throw std::invalid_argument("packed layout: '" + name + "' is not a decoder linear of this config");
    }
  }
  return plan;
}

std::map<std::string, PackedLayerSpec> all_linears_packed(const LlamaConfig& c, const PackedQuantization& q) {
  std::map<std::string, PackedLayerSpec> out;
  for (const auto& l : decoder_linear_shapes(c)) out[l.name] = {q.method, q.method == "sign" ? 1 : q.experts, l.bias};
  return out;
}

int64_t payload_bytes(const std::vector<PackedTensor>& plan) {
  int64_t n = 0;
  for (const auto& t : plan) n += t.bytes();
  return n;
}

int64_t fp_model_params(const LlamaConfig& c) {
  const int64_t norm = c.layer_norm ? 2 : 1;                                   // weight (+ bias) per channel
  int64_t n = c.vocab_size * c.embedding_dim() * (c.tie_embeddings ? 1 : 2);  // embeddings (+ head)
  if (c.final_norm) n += norm * c.dim;
  if (c.learned_positions) n += (c.max_seq_len + LlamaConfig::kPositionOffset) * c.dim;
  if (c.projects_embeddings()) n += 2 * c.dim * c.embedding_dim();            // project_in, project_out
  n += c.n_layers * 2 * norm * c.dim;                                          // attention_norm, ffn_norm
  if (c.qk_norm) n += c.n_layers * 2 * c.head_dim();                           // q_norm, k_norm
  for (const auto& l : decoder_linear_shapes(c)) n += l.in * l.out + (l.bias ? l.out : 0);
  return n;
}

bool stored_by_name(const std::string& name) {
  return name.find("norm.") != std::string::npos || name.rfind("pos_embeddings.", 0) == 0 ||
         name.rfind("project_in.", 0) == 0 || name.rfind("project_out.", 0) == 0;
}

}  // namespace bmos
