#include "trainer/plan.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "modules/io/hf_llama.h"
#include "modules/io/model_format.h"
#include "modules/packed/packed_layout.h"
#include "modules/replace.h"
#include "trainer/checkpoint/checkpoint.h"

namespace bmos {

namespace fs = std::filesystem;

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// What a bmos process holds besides the model: libtorch and its libraries (0.17 GiB: peak RSS of `bmos plan`), and
// the OpenMP/OpenBLAS thread buffers and allocator caches of a training step (fitted: tests/test_scale.cpp Plan).
constexpr double kRuntimeBytes = 0.2 * kGiB;

bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (pattern_matches(p, name)) return true;
  return false;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", bytes / kGiB);
  return buf;
}

}  // namespace

LlamaConfig read_model_config(const std::string& path_in) {
  const std::string path = resolve_model_path(path_in);
  if (fs::is_regular_file(path) && fs::path(path).extension() == ".json") {  // a config.json alone
    std::ifstream in(path);
    return llama_config_from_hf_json(nlohmann::json::parse(in), path);
  }
  const std::string format = detect_model_format(path);
  if (format == "hf") {
    const std::string cj = (fs::path(path) / "config.json").string();
    std::ifstream in(cj);
    return llama_config_from_hf_json(nlohmann::json::parse(in), cj);
  }
  if (format == "checkpoint") {
    const std::string mj = (fs::path(path) / "model.json").string();
    std::ifstream in(mj);
    if (!in) throw std::runtime_error(mj + ": missing (not a training checkpoint)");
    return llama_config_from_hf_json(nlohmann::json::parse(in).at("config"), mj);
  }
  if (format == "llama2c") return read_fp_checkpoint(path).config;  // llama2.c files are small
  throw std::runtime_error(path + ": a " + format + " model cannot be a teacher");
}

MemoryPlan plan_memory(const JobConfig& job, const LlamaConfig& c, const PlanOptions& o) {
  if (o.world < 1) throw std::invalid_argument("--world must be >= 1");
  if (job.train.batch_size % o.world != 0)
    throw std::invalid_argument("train.batch_size " + std::to_string(job.train.batch_size) +
                                " does not split over --world " + std::to_string(o.world) + " ranks");
  MemoryPlan p;
  p.teacher = c;
  const bool cuda = job.run.device != "cpu";
  const bool kd = job.quant.method != "none";
  const int64_t E = job.quant.experts, L = c.n_layers, d = c.dim, V = c.vocab_size, h = c.hidden_dim;
  const int64_t dkv = c.n_kv_heads * c.head_dim();

  // ---------------------------------------------------------------------------------------- parameters by name
  std::vector<std::pair<std::string, int64_t>> params;  // student parameters
  const int64_t de = c.embedding_dim();
  params.emplace_back("tok_embeddings.weight", V * de);
  if (!c.tie_embeddings) params.emplace_back("output.weight", V * de);
  if (c.learned_positions) params.emplace_back("pos_embeddings.weight", (c.max_seq_len + LlamaConfig::kPositionOffset) * d);
  if (c.projects_embeddings()) {
    params.emplace_back("project_in.weight", d * de);
    params.emplace_back("project_out.weight", de * d);
  }
  auto norm = [&](const std::string& name, int64_t width) {
    params.emplace_back(name + ".weight", width);
    if (c.layer_norm) params.emplace_back(name + ".bias", width);
  };
  if (c.final_norm) norm("norm", d);
  for (int64_t i = 0; i < L; ++i) {
    norm("layers." + std::to_string(i) + ".attention_norm", d);
    norm("layers." + std::to_string(i) + ".ffn_norm", d);
    for (const char* n : {"q_norm", "k_norm"})
      if (c.qk_norm) norm("layers." + std::to_string(i) + ".attention." + n, c.head_dim());
  }
  int64_t scale_params = 0;
  const std::vector<LinearShape> linears = decoder_linear_shapes(c);
  for (const auto& l : linears) {
    params.emplace_back(l.name + ".weight", l.in * l.out);
    if (l.bias) params.emplace_back(l.name + ".bias", l.out);  // Qwen2's q/k/v, OPT's: kept FP by every layer kind
    if (job.quant.method == "binarymos" && matches_any(job.quant.layers, l.name)) {
      params.emplace_back(l.name + ".s_in", E * l.in);
      params.emplace_back(l.name + ".s_out", E * l.out);
      scale_params += E * (l.in + l.out);
      if (E > 1) {
        params.emplace_back(l.name + ".router", E * l.in);
        scale_params += E * l.in;
      }
    }
  }
  for (const auto& [name, n] : params) {
    p.student_params += n;
    if (!matches_any(job.train.freeze, name)) p.trainable_params += n;
  }
  p.teacher_params = kd ? fp_model_params(c) : 0;  // the FP model the student was made from
  const std::string dtype = teacher_bf16(job.teacher.dtype, cuda) ? "bf16" : "fp32";
  const double teacher_bytes = double(p.teacher_params) * (dtype == "bf16" ? 2 : 4);

  // ------------------------------------------------------------------------------------------------ activations
  // fp32 values autograd keeps per token and layer in our block (counted op by op in llama.cpp, binarymos_linear.cpp):
  // the block input; RMSNorm's x*r and output, twice; per BinaryMoS linear u -> y: s_in and x*s_in (2 in), the
  // sign-matmul output and s_out (2 out) and the gates (E) (a sign linear: its output and scale; FP: nothing beyond
  // its input); the outputs SwiGLU keeps (w1, w3), its silu and product; the contiguous q, k, v copies attention's
  // reshapes make, and its output; the residual.
  p.micro_batch = job.train.batch_size / o.world;
  const double N = double(p.micro_batch) * job.data.seq_len, T = double(job.data.seq_len);
  double per_token = 0;
  for (size_t i = 0; i < linears.size() / size_t(L); ++i) {  // one block's
    const LinearShape& l = linears[i];
    if (job.quant.method == "none" || !matches_any(job.quant.layers, l.name)) continue;
    per_token += job.quant.method == "binarymos" ? 2.0 * l.in + 2.0 * l.out + E : 2.0 * l.out;
  }
  per_token += 1.0 * d + 2.0 * d + 2.0 * h + (d + 2.0 * dkv) + d + d + 2.0 * d + 2.0 * h;
  const bool chunked_attention = job.train.attention_chunk > 0 && job.data.seq_len > job.train.attention_chunk;
  // Attention probabilities kept for backward: all heads' (T, T) unless computed in chunks (then a log-sum-exp).
  const double attention = chunked_attention ? N * c.n_heads : N * c.n_heads * T;
  const double layer_bytes = 4.0 * (N * per_token + attention);
  const double hidden_states = job.distill.hidden_mse > 0 && kd ? 4.0 * N * d * L : 0.0;  // the teacher's, for the MSE
  p.activations_full = layer_bytes * L + hidden_states;
  p.activations_checkpointed = 4.0 * N * d * L + layer_bytes + hidden_states;  // block inputs + one block recomputed
  const double activations = job.train.activation_checkpointing ? p.activations_checkpointed : p.activations_full;

  // KD logits: teacher and student (tokens, vocab) in fp32 with their log-softmaxes, whole or per chunk.
  const int64_t chunk = logit_chunk_tokens(job.train.logit_chunk, V);
  const double logit_tokens = chunk > 0 && N > chunk && job.distill.ce == 0 ? double(chunk) : N;
  const double logits = 4.0 * logit_tokens * V * (kd ? 5 : 3);
  // The largest transient: one layer's attention scores in the forward (scores and probabilities) of the teacher
  // or a recomputed block, or the largest weight's gradient being formed.
  const double scores = chunked_attention ? 2.0 * 4.0 * p.micro_batch * c.n_heads * job.train.attention_chunk * T
                                          : 2.0 * 4.0 * p.micro_batch * c.n_heads * T * T;
  const double transient = std::max(scores, 4.0 * double(std::max(V * d, h * d)));

  p.rows = {
      {"teacher weights (" + dtype + ")", teacher_bytes, kd ? "" : "none: quant.method none trains the model itself"},
      {"student weights (fp32)", 4.0 * p.student_params, "scales + router " + gib(4.0 * scale_params) + " GiB"},
      {"gradients", 4.0 * p.trainable_params,
       std::string(job.train.freeze.empty() ? "" : "frozen parameters have none; ") +
           (job.train.shard_optimizer && o.world > 1 ? "whole until the reduce after backward, then 1/world" : "")},
      {"AdamW state (m, v)", 8.0 * p.trainable_params / (job.train.shard_optimizer ? o.world : 1),
       job.train.shard_optimizer ? "sharded over " + std::to_string(o.world) + " ranks" : ""},
      {"activations", activations,
       std::string(job.train.activation_checkpointing ? "checkpointing on" : "checkpointing off") + " (on: " +
           gib(p.activations_checkpointed) + ", off: " + gib(p.activations_full) + " GiB)"},
      {"KD logits", logits, logit_tokens < N ? "in chunks of " + std::to_string(chunk) + " tokens" : "whole batch"},
      {"largest transient", transient, chunked_attention ? "attention in chunks" : "attention scores of one layer"},
      {cuda ? "CUDA context + runtime" : "runtime (libtorch, allocator)", cuda ? 0.6 * kGiB : kRuntimeBytes, ""},
  };
  for (const auto& r : p.rows) p.total += r.bytes;

  double cap = o.device_memory_gb * kGiB;
  if (cap <= 0) cap = cuda ? 80.0 * kGiB : double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
  p.capacity = cap;
  p.fits = p.total <= cap;
  // What each switch saves, biggest first among those not already on.
  std::vector<std::pair<double, std::string>> saves;
  if (!job.train.activation_checkpointing && p.activations_full > p.activations_checkpointed)
    saves.emplace_back(p.activations_full - p.activations_checkpointed, "train.activation_checkpointing: true");
  if (kd && dtype == "fp32") saves.emplace_back(teacher_bytes / 2, "teacher.dtype: bf16");
  if (!job.train.shard_optimizer && o.world > 1)
    saves.emplace_back(8.0 * p.trainable_params * (o.world - 1) / o.world, "train.shard_optimizer: true");
  if (!matches_any(job.train.freeze, "tok_embeddings.weight"))
    saves.emplace_back(12.0 * V * d * (c.tie_embeddings ? 1 : 2),
                       c.tie_embeddings ? "train.freeze: [tok_embeddings.weight]"
                                        : "train.freeze: [tok_embeddings.weight, output.weight]");
  std::sort(saves.rbegin(), saves.rend());
  double need = p.total - cap;  // > 0: what the advice has to save
  for (const auto& [bytes, what] : saves) {
    if (p.fits ? bytes < 0.05 * p.total : need <= 0) continue;  // when it fits: only what saves a noticeable share
    p.advice.push_back(what + " saves " + gib(bytes) + " GiB");
    need -= bytes;
  }
  if (!p.fits && need > 0) {
    const double states = p.rows[0].bytes + p.rows[1].bytes + p.rows[2].bytes + p.rows[3].bytes;
    if (states > cap)
      p.advice.push_back("the teacher, weights, gradients and AdamW state alone need " + gib(states) +
                         " GiB per rank: more ranks with train.shard_optimizer, or a device with more memory");
    else
      p.advice.push_back("a smaller train.batch_size or data.seq_len");
  }

  // One checkpoint: model.safetensors (fp32 student), optimizer.pt (AdamW m, v and the step counts), small files.
  p.checkpoint_bytes = 4.0 * p.student_params + 8.0 * p.trainable_params;
  p.keep = job.checkpoint.keep;
  return p;
}

std::string format_plan(const MemoryPlan& p, const JobConfig& job, const PlanOptions& o) {
  std::ostringstream s;
  s << "bmos plan " << job.file << "\n";
  s << "teacher: " << p.teacher.describe() << ", " << p.teacher_params << " parameters\n";
  s << "student: " << job.quant.method;
  if (job.quant.method == "binarymos") s << " E=" << job.quant.experts;
  s << ", " << p.student_params << " parameters, " << p.trainable_params << " trainable\n";
  s << "per rank: " << p.micro_batch << " x " << job.data.seq_len << " tokens per micro-batch, world " << o.world
    << ", device " << job.run.device << "\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-34s %10s  %s\n", "", "GiB", "");
  s << line;
  for (const auto& r : p.rows) {
    std::snprintf(line, sizeof line, "%-34s %10s  %s\n", r.what.c_str(), gib(r.bytes).c_str(), r.note.c_str());
    s << line;
  }
  std::snprintf(line, sizeof line, "%-34s %10s  of %s GiB per rank: %s\n", "total", gib(p.total).c_str(),
                gib(p.capacity).c_str(), p.fits ? "fits" : "DOES NOT FIT");
  s << line;
  for (const auto& a : p.advice) s << (p.fits ? "  could: " : "  to fit: ") << a << "\n";
  std::snprintf(line, sizeof line, "checkpoint on disk: %s GiB each, x keep %d = %s GiB\n",
                gib(p.checkpoint_bytes).c_str(), p.keep, gib(p.checkpoint_bytes * p.keep).c_str());
  s << line;
  return s.str();
}

}  // namespace bmos
