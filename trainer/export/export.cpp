#include "trainer/export/export.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "modules/binarymos_linear.h"
#include "modules/generate.h"
#include "modules/io/hf_llama.h"
#include "modules/packed/packed_binarymos_linear.h"
#include "modules/packed/packed_model.h"
#include "modules/io/safetensors.h"
#include "modules/sign_linear.h"
#include "trainer/export/export_size.h"

namespace bmos {

namespace fs = std::filesystem;

namespace {

// ------------------------------------------------------------------------------------------- what the model holds
// The packed decoder linears of `model` by name; all must be of one kind and expert count.
std::map<std::string, PackedLayerSpec> quantized_layers(Llama& model, PackedQuantization* q) {
  std::map<std::string, PackedLayerSpec> out;
  for (const auto& name : model->linear_names()) {
    auto l = model->get_linear(name);
    PackedLayerSpec s;
    if (auto b = std::dynamic_pointer_cast<BinaryMoSLinearImpl>(l)) {
      s = {"binarymos", b->experts(), b->bias.defined()};
    } else if (auto g = std::dynamic_pointer_cast<SignLinearImpl>(l)) {
      s = {"sign", 1, g->bias.defined()};
    } else if (l->kind() == "fp") {
      continue;
    } else {
      throw std::invalid_argument("export: layer '" + name + "' is of kind '" + l->kind() +
                                  "'; only BinaryMoS and Sign layers of a training-graph model can be exported");
    }
    add_packed_layer(out, name, s);
  }
  if (out.empty())
    throw std::invalid_argument("export: the model has no BinaryMoS or Sign layers: a full-precision model has "
                                "nothing to pack (export a checkpoint of a quantized run: quant.method binarymos)");
  q->method = out.begin()->second.kind;
  q->experts = out.begin()->second.experts;
  return out;
}

// Every tensor the folder will hold, fp32 (or int32 words / int8 codes), by file name.
std::map<std::string, torch::Tensor> export_tensors(Llama& model, const PackedQuantization& q,
                                                    const std::map<std::string, PackedLayerSpec>& packed) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> t;
  auto embedding = [&](const std::string& name, const torch::Tensor& w) {
    if (q.embedding_bits == 8) {
      auto [codes, scale] = quantize_rows_int8(w, q.scale_dtype);
      t[name + ".weight"] = codes;
      t[name + ".weight_scale"] = scale;
    } else {
      t[name + ".weight"] = w;
    }
  };
  embedding("tok_embeddings", model->tok_embeddings->weight);
  if (model->output) {
    auto head = std::dynamic_pointer_cast<FpLinearImpl>(model->output);
    if (!head) throw std::invalid_argument("export: the output head is not a plain linear");
    embedding("output", head->weight);
  }
  for (const auto& p : model->named_parameters())
    if (stored_by_name(p.key())) t[p.key()] = p.value();
  for (const auto& name : model->linear_names()) {
    auto l = model->get_linear(name);
    if (!packed.count(name)) {
      const auto fp = std::dynamic_pointer_cast<FpLinearImpl>(l);
      t[name + ".weight"] = fp->weight;
      if (fp->bias.defined()) t[name + ".bias"] = fp->bias;
    } else if (auto b = std::dynamic_pointer_cast<BinaryMoSLinearImpl>(l)) {
      t[name + ".qweight"] = canonical_to_tiles(pack_sign_bits(b->weight), b->in_features());
      t[name + ".s_in"] = b->s_in;
      t[name + ".s_out"] = b->s_out;
      if (b->router.defined()) t[name + ".router"] = b->router;
      if (b->bias.defined()) t[name + ".bias"] = b->bias;
    } else {
      auto g = std::dynamic_pointer_cast<SignLinearImpl>(l);
      t[name + ".qweight"] = canonical_to_tiles(pack_sign_bits(g->weight), g->in_features());
      t[name + ".scale"] = g->weight.abs().mean(1);  // SignLinear's alpha
      if (g->bias.defined()) t[name + ".bias"] = g->bias;
    }
  }
  return t;
}

// The file's entries in plan order, converted to the plan's dtypes; the two sides must name the same tensors.
std::vector<SafetensorsEntry> file_entries(const std::vector<PackedTensor>& plan,
                                           const std::map<std::string, torch::Tensor>& tensors) {
  std::vector<SafetensorsEntry> entries;
  for (const auto& p : plan) {
    auto it = tensors.find(p.name);
    if (it == tensors.end()) throw std::logic_error("export: the layout expects '" + p.name + "' but none was made");
    torch::Tensor v = it->second.detach().to(torch::kCPU).contiguous();
    if (p.dtype == "U32" || p.dtype == "I8") {
      entries.push_back({p.name, v, p.dtype});
    } else {
      entries.push_back({p.name, v.to(torch_float_dtype(p.dtype)).contiguous(), p.dtype});
    }
    if (entries.back().tensor.sizes() != torch::IntArrayRef(p.shape))
      throw std::logic_error("export: tensor '" + p.name + "' does not have the layout's shape");
  }
  if (entries.size() != tensors.size()) throw std::logic_error("export: tensors made that the layout does not list");
  return entries;
}

// ---------------------------------------------------------------------------------------------------- the report
// Records the inputs (flattened to (M, in)) a decoder linear sees, then runs it.
class CaptureInputs : public LinearLike {
 public:
  explicit CaptureInputs(std::shared_ptr<LinearLike> inner) : inner_(std::move(inner)) {}
  torch::Tensor forward(const torch::Tensor& x) override {
    seen.push_back(x.detach().reshape({-1, inner_->in_features()}).clone());
    return inner_->forward(x);
  }
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  std::string kind() const override { return inner_->kind(); }
  std::vector<torch::Tensor> seen;

 private:
  std::shared_ptr<LinearLike> inner_;
};

std::pair<double, double> relative_errors(const torch::Tensor& got, const torch::Tensor& want) {
  const torch::Tensor d = (got - want).to(torch::kDouble), w = want.to(torch::kDouble);
  const double wmax = w.abs().max().item<double>(), wnorm = w.norm().item<double>();
  return {d.abs().max().item<double>() / std::max(wmax, 1e-30), d.norm().item<double>() / std::max(wnorm, 1e-30)};
}

// Sequences sampled from the model itself, BOS first.
std::vector<torch::Tensor> sample_sequences(Llama& model, const ExportOptions& o) {
  std::vector<torch::Tensor> seqs;
  for (int64_t i = 0; i < o.sample_sequences; ++i) {
    GenerateOptions g;
    g.steps = std::min<int64_t>(o.sample_len, model->config.max_seq_len);
    g.temperature = 1.0;
    g.top_p = 1.0;
    g.seed = o.seed + static_cast<uint64_t>(i);
    const auto ids = generate(model, {static_cast<int32_t>(model->config.bos_id)}, g);
    if (ids.size() < 2) continue;  // BOS then EOS at once: nothing to measure
    seqs.push_back(torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong).unsqueeze(0));
  }
  if (seqs.empty()) seqs.push_back(torch::tensor({model->config.bos_id}, torch::kLong).unsqueeze(0));
  return seqs;
}

void measure(Llama& train, Llama& packed_model, const std::map<std::string, PackedLayerSpec>& packed,
             const ExportOptions& o, ExportReport* r) {
  torch::NoGradGuard no_grad;
  const auto seqs = sample_sequences(train, o);
  std::map<std::string, std::shared_ptr<CaptureInputs>> captures;
  std::map<std::string, std::shared_ptr<LinearLike>> originals;
  for (const auto& [name, spec] : packed) {
    originals[name] = train->get_linear(name);
    captures[name] = std::make_shared<CaptureInputs>(originals[name]);
    train->set_linear(name, captures[name]);
  }
  std::vector<torch::Tensor> want_logits, got_logits;
  try {
    for (const auto& s : seqs) {
      want_logits.push_back(train->forward(s).logits.reshape({-1, train->config.vocab_size}));
      got_logits.push_back(packed_model->forward(s).logits.reshape({-1, train->config.vocab_size}));
      r->sample_tokens += s.size(1);
    }
  } catch (...) {
    for (const auto& [name, l] : originals) train->set_linear(name, l);
    throw;
  }
  for (const auto& [name, l] : originals) train->set_linear(name, l);

  for (const auto& name : train->linear_names()) {
    auto it = packed.find(name);
    if (it == packed.end()) continue;
    const torch::Tensor x = torch::cat(captures[name]->seen, 0);  // (M, in)
    const torch::Tensor want = originals[name]->forward(x), got = packed_model->get_linear(name)->forward(x);
    LayerExportError e{name, it->second.kind, x.size(1), want.size(1), it->second.experts, 0, 0};
    std::tie(e.max_rel, e.rel_l2) = relative_errors(got, want);
    if (r->layers.empty() || e.max_rel > r->worst_max_rel) r->worst_max_rel = e.max_rel, r->worst_layer = name;
    r->layers.push_back(e);
  }
  const torch::Tensor want = torch::cat(want_logits, 0), got = torch::cat(got_logits, 0);
  std::tie(r->logits_max_rel, r->logits_rel_l2) = relative_errors(got, want);
  r->argmax_agreement = got.argmax(1).eq(want.argmax(1)).to(torch::kDouble).mean().item<double>();
}

}  // namespace

// --------------------------------------------------------------------------------- shared with export_stream.cpp
// An earlier export (or an empty folder) may be replaced; anything else at `out` is refused before any work.
void check_export_out(const fs::path& out) {
  if (!fs::exists(out)) return;
  if (!fs::is_directory(out))
    throw std::invalid_argument("export: --out " + out.string() + " exists and is not a folder; choose another path");
  if (fs::is_empty(out)) return;
  bool earlier_export = false;
  if (fs::exists(out / "config.json")) {
    std::ifstream in(out / "config.json");
    const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    earlier_export = j.is_object() && j.contains("quantization");
  }
  if (!earlier_export)
    throw std::invalid_argument("export: --out " + out.string() + " exists and is not an exported model; choose "
                                "another folder or remove it");
}

int64_t folder_bytes(const fs::path& dir) {
  int64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) n += static_cast<int64_t>(e.file_size());
  return n;
}

std::string human_bytes(int64_t bytes) {
  char b[64];
  if (bytes >= 1000000000) std::snprintf(b, sizeof b, "%.3f GB", bytes / 1e9);
  else if (bytes >= 1000000) std::snprintf(b, sizeof b, "%.3f MB", bytes / 1e6);
  else std::snprintf(b, sizeof b, "%.1f kB", bytes / 1e3);
  return b;
}

void add_packed_layer(std::map<std::string, PackedLayerSpec>& packed, const std::string& name,
                      const PackedLayerSpec& spec) {
  if (!packed.empty() && (spec.kind != packed.begin()->second.kind || spec.experts != packed.begin()->second.experts))
    throw std::invalid_argument("export: layer '" + name + "' is " + spec.kind + " with " +
                                std::to_string(spec.experts) + " experts but '" + packed.begin()->first + "' is " +
                                packed.begin()->second.kind + " with " +
                                std::to_string(packed.begin()->second.experts) +
                                "; the packed format holds one method and one expert count");
  packed[name] = spec;
}

void write_packed_config(const fs::path& dir, const LlamaConfig& c, const PackedQuantization& q) {
  nlohmann::json config = llama_config_to_hf_json(c);
  config["torch_dtype"] = q.fp_dtype == "F16" ? "float16" : q.fp_dtype == "BF16" ? "bfloat16" : "float32";
  config["quantization"] = quantization_to_json(q);
  std::ofstream out(dir / "config.json");
  out << config.dump(2) << "\n";
  out.flush();
  if (!out) throw std::runtime_error("export: writing " + (dir / "config.json").string() + " failed (disk full?)");
}

void swap_in_folder(const fs::path& tmp, const fs::path& out) {
  // The earlier export (if any) moves aside, the new folder takes its name, the old one goes.
  const fs::path old = out.string() + ".old." + std::to_string(::getpid());
  if (fs::exists(out)) fs::rename(out, old);
  fs::rename(tmp, out);
  fs::remove_all(old);
}

// ------------------------------------------------------------------------------------------------------- export
ExportReport export_packed(Llama& model, const std::string& out_dir, const ExportOptions& o) {
  const fs::path out = fs::path(out_dir).lexically_normal();
  if (out.empty()) throw std::invalid_argument("export: --out DIR is required");
  check_export_out(out);
  if (!o.tokenizer.empty() && !fs::is_regular_file(o.tokenizer))
    throw std::invalid_argument("export: tokenizer file '" + o.tokenizer + "' not found (pass --tokenizer PATH)");

  ExportReport r;
  r.out_dir = out.string();
  PackedQuantization& q = r.quantization;
  q.scale_dtype = canonical_dtype(o.scale_dtype, "--scale_dtype");
  q.fp_dtype = canonical_dtype(o.fp_dtype, "--fp_dtype");
  if (o.embedding_bits != 16 && o.embedding_bits != 8)
    throw std::invalid_argument("export: --embedding_bits must be 16 or 8, got " + std::to_string(o.embedding_bits));
  q.embedding_bits = o.embedding_bits;
  model->eval();
  const auto packed = quantized_layers(model, &q);
  const auto plan = packed_tensor_plan(model->config, q, packed);
  const auto entries = file_entries(plan, export_tensors(model, q, packed));

  const fs::path tmp = out.string() + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write_packed_config(tmp, model->config, q);
    write_safetensors((tmp / "model.safetensors").string(), entries,
                      {{"format", "bmos-packed"}, {"format_version", std::to_string(q.format_version)}});
    if (!o.tokenizer.empty()) {
      r.tokenizer = fs::path(o.tokenizer).filename().string();
      fs::copy_file(o.tokenizer, tmp / r.tokenizer, fs::copy_options::overwrite_existing);
    }
    // Read back exactly as `bmos generate` / `bmos eval` will, and measure against the training graph.
    PackedModel loaded = load_packed_model(tmp.string());
    measure(model, loaded.model, packed, o, &r);
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
  r.file_bytes = static_cast<int64_t>(fs::file_size(tmp / "model.safetensors"));
  const SizeBreakdown b = size_breakdown(plan);
  r.payload_bytes = b.total();
  r.bits_bytes = b.bits;
  r.scale_bytes = b.scales;
  r.fp_bytes = b.fp;
  r.folder_bytes = folder_bytes(tmp);
  r.fp16_bytes = 2 * fp_model_params(model->config);

  swap_in_folder(tmp, out);
  return r;
}

std::string ExportReport::text() const {
  std::ostringstream o;
  char line[512];
  o << "exported " << layers.size() << " packed layers (" << quantization.method
    << (quantization.method == "binarymos" ? ", E=" + std::to_string(quantization.experts) : std::string())
    << ") to " << out_dir << "\n";
  o << "  format_version " << quantization.format_version << ", bit order " << quantization.bit_order
    << ", scales " << quantization.scale_dtype << ", FP rest " << quantization.fp_dtype << ", embeddings "
    << (quantization.embedding_bits == 8 ? "int8 + per-row scale" : quantization.fp_dtype) << "\n";
  o << "  per-layer error of the re-loaded packed layer vs the training layer on " << sample_tokens
    << " sampled tokens (max_rel = max|diff| / max|y|, rel_l2 = ||diff|| / ||y||):\n";
  for (const auto& e : layers) {
    std::snprintf(line, sizeof line, "    %-32s %-9s %5lld -> %-5lld E=%lld  max_rel %.3e  rel_l2 %.3e\n",
                  e.name.c_str(), e.kind.c_str(), static_cast<long long>(e.in), static_cast<long long>(e.out),
                  static_cast<long long>(e.experts), e.max_rel, e.rel_l2);
    o << line;
  }
  std::snprintf(line, sizeof line, "  worst layer: %s, max_rel %.3e\n", worst_layer.c_str(), worst_max_rel);
  o << line;
  std::snprintf(line, sizeof line,
                "  whole model logits: max_rel %.3e, rel_l2 %.3e, same argmax at %.2f%% of positions\n", logits_max_rel,
                logits_rel_l2, 100.0 * argmax_agreement);
  o << line;
  o << "  model.safetensors " << human_bytes(file_bytes) << " (" << file_bytes << " bytes; tensors " << payload_bytes
    << " = sign bits " << bits_bytes << " + scales/router " << scale_bytes << " + FP rest " << fp_bytes << ")\n";
  o << "  folder " << human_bytes(folder_bytes) << (tokenizer.empty() ? " (NO tokenizer copied: pass --tokenizer PATH)"
                                                                 : " (tokenizer " + tokenizer + ")")
    << "\n";
  std::snprintf(line, sizeof line, "  fp16 model of the same config %s: compression %.2fx (model.safetensors)\n",
                human_bytes(fp16_bytes).c_str(), double(fp16_bytes) / file_bytes);
  o << line;
  return o.str();
}

}  // namespace bmos
