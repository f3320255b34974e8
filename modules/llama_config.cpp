#include "modules/llama_config.h"

#include <sstream>
#include <stdexcept>

namespace bmos {

std::string LlamaConfig::describe() const {
  std::ostringstream s;
  s << (family == "opt" ? "OPT" : "LLaMA") << " dim=" << dim << " hidden_dim=" << hidden_dim << " n_layers=" << n_layers << " n_heads=" << n_heads
    << " n_kv_heads=" << n_kv_heads << " head_dim=" << (n_heads > 0 ? head_dim() : 0) << " vocab=" << vocab_size
    << " max_seq_len=" << max_seq_len << " norm_eps=" << norm_eps;
  if (rotary()) s << " rope_theta=" << rope_theta;
  s << (tie_embeddings ? " tied-head" : " untied-head") << " bos=" << bos_id << " eos=" << eos_id;
  if (family != "llama") s << " family=" << family;
  if (qkv_bias) s << " qkv-bias";
  if (qk_norm) s << " qk-norm";
  if (sliding_window > 0) s << " sliding_window=" << sliding_window;
  if (layer_norm) s << " layer-norm";
  if (learned_positions) s << " learned-positions";
  if (relu_mlp) s << " relu-mlp";
  if (linear_bias) s << " linear-bias";
  if (post_norm) s << " post-norm";
  if (!final_norm) s << " no-final-norm";
  if (projects_embeddings()) s << " embed_dim=" << embed_dim;
  if (rope_factor > 0)
    s << " rope-llama3(factor=" << rope_factor << " low=" << rope_low_freq_factor << " high=" << rope_high_freq_factor
      << " original=" << rope_original_max_positions << ")";
  return s.str();
}

namespace {
[[noreturn]] void bad(const std::string& field, const std::string& why, const LlamaConfig& c) {
  throw std::invalid_argument("LlamaConfig." + field + ": " + why + " (config: " + c.describe() + ")");
}
}  // namespace

void LlamaConfig::validate() const {
  auto positive = [this](const char* field, int64_t v) {
    if (v <= 0) bad(field, "must be > 0, got " + std::to_string(v), *this);
  };
  positive("dim", dim);
  positive("hidden_dim", hidden_dim);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("vocab_size", vocab_size);
  positive("max_seq_len", max_seq_len);
  if (explicit_head_dim < 0) bad("explicit_head_dim", "must be >= 0, got " + std::to_string(explicit_head_dim), *this);
  if (sliding_window < 0) bad("sliding_window", "must be >= 0, got " + std::to_string(sliding_window), *this);
  if (explicit_head_dim == 0 && dim % n_heads != 0)
    bad("n_heads", "dim=" + std::to_string(dim) + " is not a multiple of n_heads=" + std::to_string(n_heads), *this);
  if (n_heads % n_kv_heads != 0)
    bad("n_kv_heads",
        "n_heads=" + std::to_string(n_heads) + " is not a multiple of n_kv_heads=" + std::to_string(n_kv_heads) +
            " (grouped-query attention shares each kv head among n_heads/n_kv_heads query heads)",
        *this);
  if (embed_dim < 0) bad("embed_dim", "must be >= 0, got " + std::to_string(embed_dim), *this);
  if (rotary() && head_dim() % 2 != 0)
    bad("n_heads", "head_dim=" + std::to_string(head_dim()) + " is odd; rotary embeddings rotate pairs of channels",
        *this);
  auto positive_real = [this](const char* field, double v) {
    std::ostringstream s;
    s << "must be > 0, got " << v;
    if (!(v > 0.0)) bad(field, s.str(), *this);
  };
  positive_real("norm_eps", norm_eps);
  positive_real("rope_theta", rope_theta);
  if (rope_factor != 0.0) {
    positive_real("rope_factor", rope_factor);
    positive_real("rope_low_freq_factor", rope_low_freq_factor);
    positive("rope_original_max_positions", rope_original_max_positions);
    if (!(rope_high_freq_factor > rope_low_freq_factor))
      bad("rope_high_freq_factor", "must exceed rope_low_freq_factor (the medium band divides by their difference)",
          *this);
  }
  if (bos_id < 0 || bos_id >= vocab_size)
    bad("bos_id", std::to_string(bos_id) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")",
        *this);
  if (eos_id < 0 || eos_id >= vocab_size)
    bad("eos_id", std::to_string(eos_id) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")",
        *this);
}

}  // namespace bmos
