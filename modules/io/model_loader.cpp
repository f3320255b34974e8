#include "modules/io/model_loader.h"

#include <filesystem>
#include <stdexcept>

#include <set>

#include "modules/io/hf_llama.h"
#include "modules/io/model_files.h"
#include "modules/io/model_format.h"
#include "modules/packed/packed_binarymos_linear.h"
#include "modules/packed/packed_model.h"

namespace bmos {

namespace fs = std::filesystem;

std::string find_tokenizer_near(const std::string& model_path) {
  const fs::path dir = fs::is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
  if (dir.empty() || !fs::is_directory(dir)) return "";
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer.bin", "tokenizer.byte"})
    if (fs::exists(dir / name)) return (dir / name).string();
  std::vector<std::string> found;  // e.g. tok512.model / tok512.bin beside a llama2.c file
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("tok", 0) == 0 && (e.path().extension() == ".model" || e.path().extension() == ".bin"))
      found.push_back(e.path().string());
  }
  std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
    return (fs::path(a).extension() == ".model") > (fs::path(b).extension() == ".model") || (fs::path(a).extension() == fs::path(b).extension() && a < b);
  });
  return found.empty() ? "" : found.front();
}

namespace {

// Streams a Hugging Face folder into a model built without initialisation: each parameter's storage is replaced by
// the tensor read for it (converted to the target dtype and device), strictly: every parameter once, shapes equal.
Llama load_hf_streaming(const std::string& path, const LoadOptions& o) {
  Llama model{nullptr};
  torch::OrderedDict<std::string, torch::Tensor> params;  // handles of the model's parameters
  std::set<std::string> filled;
  read_hf_llama_into(
      path, o.dtype,
      [&](const std::string& name, torch::Tensor t) {
        torch::Tensor* p = params.find(name);
        if (!p) throw std::runtime_error(path + ": tensor '" + name + "' has no place in the model");
        if (p->sizes() != t.sizes()) throw std::runtime_error(path + ": tensor '" + name + "' has the wrong shape");
        p->set_data(t.to(o.device));
        filled.insert(name);
      },
      [&](const LlamaConfig& config) {
        SkipInitGuard skip;
        model = Llama(config);
        model->to(o.device);  // buffers (rotary tables); the parameters are replaced one by one
        params = model->named_parameters();
      });
  for (const auto& p : model->named_parameters())
    if (!filled.count(p.key())) throw std::runtime_error(path + ": no tensor for parameter '" + p.key() + "'");
  return model;
}

}  // namespace

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  LoadedModel out;
  out.format = detect_model_format(path);
  // Checked before anything loads (a large model would otherwise load first, then fail).
  if (!options.map_weights && out.format != "packed")
    throw std::invalid_argument("reading the weights into huge pages instead of mapping them (--nommap) applies to an "
                                "exported packed model; " + path + " is a " + out.format +
                                " model, whose weights are always read into memory");
  if (options.prefill_tables != kernels::LutPrecision::kFp32 && (out.format != "packed" || !options.device.is_cpu()))
    throw std::invalid_argument(std::string("prefill tables ") + kernels::lut_precision_name(options.prefill_tables) +
                                " apply to an exported packed model on the CPU; " + path + " is a " + out.format +
                                " model on " + options.device.str());
  if (out.format == "hf") {
    torch::NoGradGuard no_grad;
    out.model = load_hf_streaming(path, options);
  } else if (out.format == "llama2c") {
    const LoadedCheckpoint ck = read_fp_checkpoint(path);
    out.model = Llama(ck.config);
    out.model->load_fp_state(ck.tensors);
  } else if (out.format == "checkpoint") {
    out.model = load_model_files(path);
  } else if (out.format == "packed") {
    out.model = load_packed_model(path, options.map_weights).model;
  } else {
    throw std::runtime_error(path + ": model format '" + out.format + "' cannot be loaded by this build");
  }
  if (out.format == "llama2c" || out.format == "checkpoint") out.model->to(options.device, options.dtype);
  if (out.format == "packed") out.model->to(options.device);  // its dtypes are the file's
  if (options.prefill_tables != kernels::LutPrecision::kFp32) {
    for (const auto& m : out.model->modules())
      if (auto packed = std::dynamic_pointer_cast<PackedBinaryMoSLinearImpl>(m))
        packed->set_prefill_tables(options.prefill_tables);
  }
  if (options.fp16_kv_cache) {
    LlamaRunOptions run = out.model->run_options();
    run.fp16_kv_cache = true;
    out.model->set_run_options(run);
  }
  out.model->eval();
  out.tokenizer = find_tokenizer_near(path);
  out.path = path;
  return out;
}

}  // namespace bmos
