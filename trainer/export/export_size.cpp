#include "trainer/export/export_size.h"

#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace bmos {

namespace {

LlamaConfig shape(int64_t dim, int64_t hidden, int64_t layers, int64_t heads, int64_t vocab, int64_t context) {
  LlamaConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = heads;
  c.vocab_size = vocab;
  c.max_seq_len = context;
  c.tie_embeddings = false;
  return c;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

LlamaConfig llama_shape_preset(const std::string& name) {
  if (name == "llama2-7b") return shape(4096, 11008, 32, 32, 32000, 4096);
  if (name == "llama2-13b") return shape(5120, 13824, 40, 40, 32000, 4096);
  if (name == "llama-7b") return shape(4096, 11008, 32, 32, 32000, 2048);
  if (name == "llama-13b") return shape(5120, 13824, 40, 40, 32000, 2048);
  if (name == "stories260k") {
    LlamaConfig c = shape(64, 172, 5, 8, 512, 512);
    c.n_kv_heads = 4;
    c.tie_embeddings = true;
    return c;
  }
  throw std::invalid_argument("unknown model shape '" + name +
                              "'; known: llama2-7b, llama2-13b, llama-7b, llama-13b, stories260k");
}

SizeBreakdown size_breakdown(const std::vector<PackedTensor>& plan) {
  SizeBreakdown b;
  for (const auto& t : plan) {
    if (t.dtype == "U32") b.bits += t.bytes();
    else if (ends_with(t.name, ".s_in") || ends_with(t.name, ".s_out") || ends_with(t.name, ".router") ||
             ends_with(t.name, ".scale") || ends_with(t.name, ".weight_scale"))
      b.scales += t.bytes();
    else b.fp += t.bytes();
  }
  return b;
}

ShapeSize size_from_shapes(const std::string& name, const LlamaConfig& c, const PackedQuantization& q) {
  ShapeSize s;
  s.name = name;
  s.params = fp_model_params(c);
  s.fp16_bytes = 2 * s.params;
  s.packed = size_breakdown(packed_tensor_plan(c, q, all_linears_packed(c, q)));
  PackedQuantization one = q;
  one.method = "binarymos";
  one.experts = 1;
  s.onebit = size_breakdown(packed_tensor_plan(c, one, all_linears_packed(c, one)));
  return s;
}

std::string format_size_report(const std::vector<ShapeSize>& sizes, const PackedQuantization& q) {
  std::ostringstream o;
  char line[512];
  o << "exported size from shapes alone: every decoder linear " << q.method
    << (q.method == "binarymos" ? " E=" + std::to_string(q.experts) : std::string()) << ", scales/router "
    << q.scale_dtype << ", norms " << q.fp_dtype << ", embeddings/head "
    << (q.embedding_bits == 8 ? "int8 + per-row " + q.scale_dtype + " scale" : q.fp_dtype)
    << " (tensor bytes; GB = 1e9)\n";
  std::snprintf(line, sizeof line, "  %-12s %14s %10s | %14s %10s %9s %9s %9s %8s | %9s %7s\n", "model", "params",
                "fp16 GB", "packed bytes", "packed GB", "GiB", "bits GB", "scales GB", "ratio", "OneBit GB",
                "vs E=1");
  o << line;
  for (const auto& s : sizes) {
    const double gb = s.packed.total() / 1e9;
    std::snprintf(line, sizeof line,
                  "  %-12s %14lld %10.2f | %14lld %10.3f %9.3f %9.3f %9.3f %7.2fx | %9.3f %+6.1f%%\n",
                  s.name.c_str(), static_cast<long long>(s.params), s.fp16_bytes / 1e9,
                  static_cast<long long>(s.packed.total()), gb,
                  s.packed.total() / double(1LL << 30), s.packed.bits / 1e9, s.packed.scales / 1e9,
                  double(s.fp16_bytes) / s.packed.total(), s.onebit.total() / 1e9,
                  100.0 * (double(s.packed.total()) / s.onebit.total() - 1.0));
    o << line;
  }
  return o.str();
}

}  // namespace bmos
