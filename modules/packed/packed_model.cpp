#include "modules/packed/packed_model.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "modules/io/hf_llama.h"
#include "modules/packed/int8_rows_linear.h"
#include "modules/packed/packed_binarymos_linear.h"
#include "kernels/cpu/prepared_matrix.h"
#include "modules/io/safetensors.h"

namespace bmos {

namespace fs = std::filesystem;

torch::ScalarType torch_float_dtype(const std::string& dtype) {
  if (dtype == "F16") return torch::kFloat16;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "F32") return torch::kFloat32;
  throw std::invalid_argument("not a float safetensors dtype: '" + dtype + "'");
}

torch::Tensor round_to_dtype(const torch::Tensor& t, const std::string& dtype) {
  return t.detach().to(torch_float_dtype(dtype)).to(torch::kFloat32);
}

std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& w, const std::string& scale_dtype) {
  TORCH_CHECK(w.dim() == 2, "quantize_rows_int8: expected (rows, cols), got ", w.sizes());
  const torch::Tensor wf = w.detach().to(torch::kFloat32);
  torch::Tensor scale = round_to_dtype(wf.abs().amax(1) / 127.0, scale_dtype);  // (R)
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));                // an all-zero row: codes 0
  const torch::Tensor codes = torch::round(wf / scale.unsqueeze(1)).clamp(-127, 127).to(torch::kInt8);
  return {codes, scale};
}

torch::Tensor dequantize_rows_int8(const torch::Tensor& codes, const torch::Tensor& scale) {
  return codes.to(torch::kFloat32) * scale.to(torch::kFloat32).unsqueeze(1);
}

namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::ostringstream m;
  m << torch::IntArrayRef(s);
  return m.str();
}

}  // namespace

PackedModel load_packed_model(const std::string& dir, bool map) {
  const fs::path root(dir);
  const std::string config_path = (root / "config.json").string();
  std::ifstream in(config_path);
  if (!in) throw std::runtime_error(config_path + ": missing (an exported model folder holds config.json, "
                                                  "model.safetensors and the tokenizer; make one with `bmos export`)");
  nlohmann::json cj;
  try {
    cj = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(config_path + ": not valid JSON: " + e.what());
  }
  if (!cj.is_object() || !cj.contains("quantization"))
    throw std::runtime_error(config_path + ": no \"quantization\" section: not an exported packed model");
  PackedModel out;
  out.quantization = quantization_from_json(cj["quantization"], config_path);
  const PackedQuantization& q = out.quantization;
  const LlamaConfig config = llama_config_from_hf_json(cj, config_path);

  const SafetensorsFile file((root / "model.safetensors").string(), map);
  auto fail = [&](const std::string& what) -> void { throw std::runtime_error(file.path() + ": " + what); };

  // Which linears are packed, read from the tensors present; checked against the quantization section.
  std::map<std::string, PackedLayerSpec> packed;
  for (const auto& l : decoder_linear_shapes(config)) {
    if (!file.contains(l.name + ".qweight")) continue;
    PackedLayerSpec s;
    s.kind = file.contains(l.name + ".scale") ? "sign" : "binarymos";
    if (s.kind == "binarymos" && !file.contains(l.name + ".s_out"))
      fail("layer '" + l.name + "' has a qweight but neither s_out (BinaryMoS) nor scale (Sign)");
    s.experts = s.kind == "sign" ? 1 : file.info(l.name + ".s_out").shape.at(0);
    s.bias = file.contains(l.name + ".bias");
    if (s.kind != q.method)
      fail("layer '" + l.name + "' is stored as " + s.kind + " but config.json says quantization.method \"" +
           q.method + "\"");
    if (s.kind == "binarymos" && s.experts != q.experts)
      fail("layer '" + l.name + "' has " + std::to_string(s.experts) + " experts but config.json says " +
           std::to_string(q.experts));
    packed[l.name] = s;
  }
  const std::vector<PackedTensor> plan = packed_tensor_plan(config, q, packed);
  std::set<std::string> planned;
  for (const auto& t : plan) {
    planned.insert(t.name);
    if (!file.contains(t.name))
      fail("no tensor '" + t.name + "' (expected " + t.dtype + " " + shape_text(t.shape) + ")");
    const SafetensorsInfo& info = file.info(t.name);
    if (info.shape != t.shape || info.dtype != t.dtype)
      fail("tensor '" + t.name + "' is " + info.dtype + " " + shape_text(info.shape) + ", expected " + t.dtype + " " +
           shape_text(t.shape) + " (config: " + config.describe() + ")");
  }
  for (const auto& name : file.names())
    if (!planned.count(name)) fail("tensor '" + name + "' has no place in a packed model of this config");

  file.will_need();  // read ahead while the model is built: the mapped weights page in sooner
  torch::NoGradGuard no_grad;
  Llama model{nullptr};
  {
    SkipInitGuard skip;  // nothing resident until filled: the FP linears replaced by packed ones never are
    model = Llama(config);
  }
  auto load_opt = [&](const std::string& name) {
    return file.contains(name) ? file.load_float(name) : torch::Tensor();
  };
  for (const auto& l : decoder_linear_shapes(config)) {
    auto it = packed.find(l.name);
    if (it == packed.end()) {
      auto fp = std::dynamic_pointer_cast<FpLinearImpl>(model->get_linear(l.name));
      fp->weight.copy_(file.load_float(l.name + ".weight"));
      if (fp->bias.defined()) fp->bias.copy_(file.load_float(l.name + ".bias"));
      continue;
    }
    kernels::PreparedBinaryMatrix bits;
    if (q.format_version == 1) {  // canonical words: repacked into an owned copy
      const torch::Tensor canonical = file.load(l.name + ".qweight");  // U32 words as int32
      bits = kernels::PreparedBinaryMatrix(reinterpret_cast<const packed::Word*>(canonical.data_ptr<int32_t>()),
                                           l.out, l.in);
    } else {  // the kernels' tile order: used in place, the file's pages are the weights
      const SafetensorsFile::Mapped m = file.mapped(l.name + ".qweight");
      bits = kernels::PreparedBinaryMatrix::view(reinterpret_cast<const packed::Word*>(m.data), l.out, l.in, m.keep);
      out.mapped_bytes += static_cast<int64_t>(m.bytes);
    }
    // Scales and router stay in the file's scale_dtype (checked above to be F16, BF16 or F32): the kernels widen them
    // as they read them, bitwise as if they had been widened here, from half the memory.
    if (it->second.kind == "sign") {
      model->set_linear(l.name, PackedBinaryMoSLinearImpl::sign(std::move(bits), file.load(l.name + ".scale"),
                                                                 load_opt(l.name + ".bias")));
    } else {
      const torch::Tensor router = file.contains(l.name + ".router") ? file.load(l.name + ".router") : torch::Tensor();
      model->set_linear(l.name, std::make_shared<PackedBinaryMoSLinearImpl>(
                                    std::move(bits), router, file.load(l.name + ".s_in"), file.load(l.name + ".s_out"),
                                    load_opt(l.name + ".bias")));
    }
    ++out.packed_layers;
  }
  if (q.embedding_bits == 8) {  // int8 rows stay int8: looked up row by row, the head run by the int8 kernel
    auto rows = [&](const std::string& name) {  // the codes used in place: the file's pages (read-only)
      const SafetensorsFile::Mapped m = file.mapped(name + ".weight");
      const SafetensorsInfo& info = file.info(name + ".weight");
      const torch::Tensor codes = torch::from_blob(
          const_cast<unsigned char*>(m.data), info.shape, [keep = m.keep](void*) mutable { keep.reset(); },
          torch::TensorOptions().dtype(torch::kInt8));
      out.mapped_bytes += static_cast<int64_t>(m.bytes);
      return std::make_shared<Int8RowsLinearImpl>(codes, file.load_float(name + ".weight_scale"));
    };
    const auto tok = rows("tok_embeddings");
    model->token_rows = tok;
    model->tok_embeddings->weight.set_data(torch::empty({0, config.embedding_dim()}));
    if (model->output) {
      const auto head = rows("output");
      model->replace_module("output", head);
      model->output = head;
    } else {
      model->tied_head = tok;
    }
  } else {
    model->tok_embeddings->weight.copy_(file.load_float("tok_embeddings.weight"));
    if (model->output)
      std::dynamic_pointer_cast<FpLinearImpl>(model->output)->weight.copy_(file.load_float("output.weight"));
  }
  for (auto& p : model->named_parameters())  // norms, OPT's positions and projections
    if (stored_by_name(p.key())) p.value().copy_(file.load_float(p.key()));
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  model->eval();
  out.model = model;
  return out;
}

}  // namespace bmos
