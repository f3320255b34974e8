#include "trainer/export/export_stream.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "modules/binarymos_linear.h"
#include "modules/io/hf_llama.h"
#include "modules/io/model_files.h"
#include "modules/io/safetensors.h"
#include "modules/packed/packed_binarymos_linear.h"
#include "modules/packed/packed_model.h"
#include "trainer/export/export_size.h"

namespace bmos {

namespace fs = std::filesystem;

namespace {

int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmHWM:  123456 kB"
  return 0;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Turns source tensors into the packed file's tensors as they arrive, in any order, and writes each at its place.
class PackedFileBuilder {
 public:
  PackedFileBuilder(const fs::path& file, const LlamaConfig& config, const PackedQuantization& q,
                    std::map<std::string, PackedLayerSpec> packed, const StreamExportOptions& o,
                    StreamExportReport* report)
      : q_(q), packed_(std::move(packed)), o_(o), r_(report) {
    const std::vector<PackedTensor> plan = packed_tensor_plan(config, q, packed_);
    std::vector<SafetensorsInfo> layout;
    for (const auto& t : plan) layout.push_back({t.name, t.dtype, t.shape, 0, 0});
    writer_ = std::make_unique<SafetensorsWriter>(
        file.string(), layout,
        std::map<std::string, std::string>{{"format", "bmos-packed"},
                                           {"format_version", std::to_string(q.format_version)}});
    const SizeBreakdown b = size_breakdown(plan);
    r_->bits_bytes = b.bits, r_->scale_bytes = b.scales, r_->fp_bytes = b.fp;
  }

  bool is_packed(const std::string& linear) const { return packed_.count(linear) != 0; }

  // A tensor kept full precision, under its own name: embeddings and head (int8 rows with embedding_bits 8),
  // norms, positions, projections, biases, linears left FP.
  void fp(const std::string& name, const torch::Tensor& t) {
    note(t);
    if ((name == "tok_embeddings.weight" || name == "output.weight") && q_.embedding_bits == 8) {
      auto [codes, scale] = quantize_rows_int8(t, q_.scale_dtype);
      const std::string stem = name.substr(0, name.size() - 7);  // minus ".weight"
      writer_->put(stem + ".weight", codes);
      writer_->put(stem + ".weight_scale", scale.to(torch_float_dtype(q_.scale_dtype)));
      return;
    }
    writer_->put(name, t.to(torch_float_dtype(q_.fp_dtype)));
  }

  // A packed decoder linear from its source: latent weight W (out, in) and, for BinaryMoS, s_in (E, in),
  // s_out (E, out), router (E, in) or undefined when E == 1. Its bias (if any) comes through fp().
  void linear(const std::string& name, const torch::Tensor& weight, const torch::Tensor& s_in,
              const torch::Tensor& s_out, const torch::Tensor& router) {
    const PackedLayerSpec& spec = packed_.at(name);
    note(weight);
    const torch::Tensor bits = pack_sign_bits(weight);  // (out, words) int32
    writer_->put(name + ".qweight", canonical_to_tiles(bits, weight.size(1)));
    const auto sdt = torch_float_dtype(q_.scale_dtype);
    if (spec.kind == "sign") {
      const torch::Tensor alpha = weight.abs().mean(1);  // SignLinear's alpha (out)
      writer_->put(name + ".scale", alpha.to(sdt));
      check(name, spec, weight, bits, {}, {}, alpha, {});
      progress(name);
      return;
    }
    writer_->put(name + ".s_in", s_in.to(sdt));
    writer_->put(name + ".s_out", s_out.to(sdt));
    if (router.defined()) writer_->put(name + ".router", router.to(sdt));
    check(name, spec, weight, bits, s_in, s_out, {}, router);
    progress(name);
  }

  void commit() { writer_->commit(); }

 private:
  // A line every 10 s (and at the last layer): long exports show where they are.
  void progress(const std::string& name) {
    ++done_;
    const double t = seconds_since(start_);
    if (t - last_print_ < 10.0 && done_ != static_cast<int64_t>(packed_.size())) return;
    last_print_ = t;
    std::fprintf(stderr, "[export] %lld of %zu layers packed (%s), %.0f s\n", static_cast<long long>(done_),
                 packed_.size(), name.c_str(), t);
  }

  void note(const torch::Tensor& t) {
    r_->largest_tensor_bytes = std::max<int64_t>(r_->largest_tensor_bytes, t.numel() * 4);
  }

  // The packed layer (rounded scales, CPU kernel) against the source layer (fp32) on random inputs.
  void check(const std::string& name, const PackedLayerSpec& spec, const torch::Tensor& weight,
             const torch::Tensor& bits, const torch::Tensor& s_in, const torch::Tensor& s_out,
             const torch::Tensor& alpha, const torch::Tensor& router) {
    if (o_.check_tokens <= 0) return;
    torch::NoGradGuard no_grad;
    const int64_t in = weight.size(1);
    const torch::Tensor x = torch::randn({o_.check_tokens, in});                       // (M, in)
    const torch::Tensor sw = torch::where(weight >= 0, 1.0f, -1.0f);                   // ste_sign: sign(0) = +1
    torch::Tensor want, got;
    if (spec.kind == "sign") {
      want = torch::matmul(x, sw.t()) * alpha;
      got = PackedBinaryMoSLinearImpl::sign(bits, in, round_to_dtype(alpha, q_.scale_dtype), {})->forward(x);
    } else {
      const torch::Tensor g = router.defined() ? torch::softmax(torch::matmul(x, router.t()), -1)
                                               : torch::ones({x.size(0), 1});           // (M, E)
      want = torch::matmul(x * torch::matmul(g, s_in), sw.t()) * torch::matmul(g, s_out);
      auto round = [&](const torch::Tensor& t) { return t.defined() ? round_to_dtype(t, q_.scale_dtype) : t; };
      got = PackedBinaryMoSLinearImpl(bits, in, round(router), round(s_in), round(s_out), {}).forward(x);
    }
    const torch::Tensor d = (got - want).to(torch::kDouble), w = want.to(torch::kDouble);
    LayerExportError e{name, spec.kind, in, weight.size(0), spec.kind == "sign" ? 1 : spec.experts, 0, 0};
    e.max_rel = d.abs().max().item<double>() / std::max(w.abs().max().item<double>(), 1e-30);
    e.rel_l2 = d.norm().item<double>() / std::max(w.norm().item<double>(), 1e-30);
    if (r_->layers.empty() || e.max_rel > r_->worst_max_rel) r_->worst_max_rel = e.max_rel, r_->worst_layer = name;
    r_->layers.push_back(e);
  }

  PackedQuantization q_;
  std::map<std::string, PackedLayerSpec> packed_;
  StreamExportOptions o_;
  StreamExportReport* r_;
  std::unique_ptr<SafetensorsWriter> writer_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double last_print_ = 0;
  int64_t done_ = 0;
};

PackedQuantization quantization_of(const StreamExportOptions& o, const std::string& method, int64_t experts) {
  PackedQuantization q;
  q.method = method;
  q.experts = method == "sign" ? 1 : experts;
  q.scale_dtype = canonical_dtype(o.scale_dtype, "--scale_dtype");
  q.fp_dtype = canonical_dtype(o.fp_dtype, "--fp_dtype");
  if (o.embedding_bits != 16 && o.embedding_bits != 8)
    throw std::invalid_argument("export: --embedding_bits must be 16 or 8, got " + std::to_string(o.embedding_bits));
  q.embedding_bits = o.embedding_bits;
  return q;
}

// The linear a tensor name belongs to and the tensor's role: "layers.3.attention.wq.s_in" -> {"layers.3.attention.wq",
// "s_in"}.
std::pair<std::string, std::string> split_last(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? std::make_pair(name, std::string()) : std::make_pair(name.substr(0, dot), name.substr(dot + 1));
}

// Writes the folder with `fill` (which feeds the builder), reads it back, and swaps it in.
template <typename Fill>
StreamExportReport run_export(const std::string& out_dir, const StreamExportOptions& o, StreamExportReport r,
                              Fill fill) {
  const fs::path out = fs::path(out_dir).lexically_normal();
  if (out.empty()) throw std::invalid_argument("export: --out DIR is required");
  check_export_out(out);
  if (!o.tokenizer.empty() && !fs::is_regular_file(o.tokenizer))
    throw std::invalid_argument("export: tokenizer file '" + o.tokenizer + "' not found (pass --tokenizer PATH)");
  r.out_dir = out.string();
  const fs::path tmp = out.string() + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    const auto t0 = std::chrono::steady_clock::now();
    torch::manual_seed(o.seed);  // routers of a teacher export, the check's inputs
    fill(tmp, r);
    r.write_seconds = seconds_since(t0);
    if (!o.tokenizer.empty()) {
      r.tokenizer = fs::path(o.tokenizer).filename().string();
      fs::copy_file(o.tokenizer, tmp / r.tokenizer, fs::copy_options::overwrite_existing);
    }
    const auto t1 = std::chrono::steady_clock::now();
    load_packed_model(tmp.string());  // every tensor against the layout, as bmos generate / eval will read it
    r.read_back_seconds = seconds_since(t1);
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
  r.file_bytes = static_cast<int64_t>(fs::file_size(tmp / "model.safetensors"));
  r.folder_bytes = folder_bytes(tmp);
  swap_in_folder(tmp, out);
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

}  // namespace

StreamExportReport export_checkpoint_streaming(const std::string& checkpoint_dir, const std::string& out_dir,
                                               const StreamExportOptions& o) {
  const ModelFilesMeta meta = read_model_meta(checkpoint_dir);
  std::map<std::string, PackedLayerSpec> packed;
  for (const auto& [name, l] : meta.layers) add_packed_layer(packed, name, {l.kind, l.experts, l.bias});
  if (packed.empty())
    throw std::invalid_argument("export: " + checkpoint_dir + "/model.json lists no BinaryMoS or Sign layers: a "
                                "full-precision model has nothing to pack");
  StreamExportReport r;
  r.source = checkpoint_dir;
  r.source_kind = "checkpoint";
  r.quantization = quantization_of(o, packed.begin()->second.kind, packed.begin()->second.experts);
  r.fp16_bytes = 2 * fp_model_params(meta.config);
  return run_export(out_dir, o, r, [&](const fs::path& tmp, StreamExportReport& rep) {
    write_packed_config(tmp, meta.config, rep.quantization);
    PackedFileBuilder b(tmp / "model.safetensors", meta.config, rep.quantization, packed, o, &rep);
    const SafetensorsFile file((fs::path(checkpoint_dir) / "model.safetensors").string());
    auto load_opt = [&](const std::string& n) { return file.contains(n) ? file.load_float(n) : torch::Tensor(); };
    for (const auto& name : file.names()) {
      const auto [owner, role] = split_last(name);
      if (!b.is_packed(owner)) {
        b.fp(name, file.load_float(name));
      } else if (role == "weight") {
        b.linear(owner, file.load_float(name), load_opt(owner + ".s_in"), load_opt(owner + ".s_out"),
                 load_opt(owner + ".router"));
      } else if (role == "bias") {
        b.fp(name, file.load_float(name));
      } else if (role != "s_in" && role != "s_out" && role != "router") {
        throw std::runtime_error(file.path() + ": tensor '" + name + "' has no place in a packed " +
                                 packed.at(owner).kind + " layer");
      }  // s_in, s_out, router: written with the weight
    }
    b.commit();
  });
}

StreamExportReport export_teacher_streaming(const std::string& hf_dir, const std::string& method, int64_t experts,
                                            const std::string& out_dir, const StreamExportOptions& o) {
  if (method != "binarymos" && method != "sign")
    throw std::invalid_argument("export: --method must be binarymos or sign, got '" + method + "'");
  if (method == "binarymos" && experts < 1)
    throw std::invalid_argument("export: --experts must be >= 1, got " + std::to_string(experts));
  StreamExportReport r;
  r.source = hf_dir;
  r.source_kind = "teacher";
  r.quantization = quantization_of(o, method, experts);
  return run_export(out_dir, o, r, [&](const fs::path& tmp, StreamExportReport& rep) {
    std::unique_ptr<PackedFileBuilder> b;
    const auto prepare = [&](const LlamaConfig& c) {  // before any tensor is read
      write_packed_config(tmp, c, rep.quantization);
      rep.fp16_bytes = 2 * fp_model_params(c);
      b = std::make_unique<PackedFileBuilder>(tmp / "model.safetensors", c, rep.quantization,
                                              all_linears_packed(c, rep.quantization), o, &rep);
    };
    const auto sink = [&](const std::string& name, torch::Tensor t) {
      const auto [owner, role] = split_last(name);
      if (!b->is_packed(owner) || role == "bias") return b->fp(name, t);
      if (method == "sign") return b->linear(owner, t, {}, {}, {});
      const auto layer = BinaryMoSLinearImpl::from_linear(t, {}, experts);  // rank-1 |W| init, default router
      b->linear(owner, t, layer->s_in.detach(), layer->s_out.detach(),
                layer->router.defined() ? layer->router.detach() : torch::Tensor());
    };
    torch::NoGradGuard no_grad;
    read_hf_llama_into(hf_dir, torch::kFloat32, sink, prepare);
    b->commit();
  });
}

std::string StreamExportReport::text() const {
  std::ostringstream o;
  char line[512];
  o << "exported " << layers.size() << " packed layers (" << quantization.method
    << (quantization.method == "binarymos" ? ", E=" + std::to_string(quantization.experts) : std::string())
    << ") of the " << source_kind << " " << source << " to " << out_dir << ", streaming\n";
  o << "  format_version " << quantization.format_version << ", bit order " << quantization.bit_order
    << ", scales " << quantization.scale_dtype << ", FP rest " << quantization.fp_dtype << ", embeddings "
    << (quantization.embedding_bits == 8 ? "int8 + per-row scale" : quantization.fp_dtype) << "\n";
  if (!layers.empty()) {
    std::snprintf(line, sizeof line,
                  "  per-layer error of the packed layer vs its source on random inputs: worst %s, max_rel %.3e\n",
                  worst_layer.c_str(), worst_max_rel);
    o << line;
  }
  o << "  model.safetensors " << human_bytes(file_bytes) << " (" << file_bytes << " bytes; sign bits " << bits_bytes
    << " + scales/router " << scale_bytes << " + FP rest " << fp_bytes << ")\n";
  o << "  folder " << human_bytes(folder_bytes)
    << (tokenizer.empty() ? " (NO tokenizer copied: pass --tokenizer PATH)" : " (tokenizer " + tokenizer + ")") << "\n";
  std::snprintf(line, sizeof line, "  fp16 model of the same config %s: compression %.2fx\n",
                human_bytes(fp16_bytes).c_str(), double(fp16_bytes) / std::max<int64_t>(file_bytes, 1));
  o << line;
  std::snprintf(line, sizeof line,
                "  written in %.1f s, read back in %.1f s; peak resident memory %s (largest source tensor as fp32 "
                "%s)\n",
                write_seconds, read_back_seconds, human_bytes(peak_rss_bytes).c_str(),
                human_bytes(largest_tensor_bytes).c_str());
  o << line;
  return o.str();
}

}  // namespace bmos
