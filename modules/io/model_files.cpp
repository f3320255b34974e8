#include "modules/io/model_files.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "modules/binarymos_linear.h"
#include "modules/io/hf_llama.h"
#include "modules/io/safetensors.h"
#include "modules/sign_linear.h"

namespace bmos {

namespace fs = std::filesystem;
using nlohmann::json;

void save_model_files(const std::string& dir, Llama& model) {
  fs::create_directories(dir);
  json layers = json::object();
  for (const auto& name : model->linear_names()) {
    auto l = model->get_linear(name);
    if (l->kind() == "fp") continue;
    json e = {{"kind", l->kind()}};
    if (auto b = std::dynamic_pointer_cast<BinaryMoSLinearImpl>(l)) {
      e["experts"] = b->experts();
      e["bias"] = b->bias.defined();
    } else if (auto s = std::dynamic_pointer_cast<SignLinearImpl>(l)) {
      e["bias"] = s->bias.defined();
    } else {
      throw std::runtime_error("save_model_files: cannot save layer '" + name + "' of kind " + l->kind());
    }
    layers[name] = e;
  }
  const json meta = {{"format", "bmos-model"},
                     {"version", kModelFilesVersion},
                     {"config", llama_config_to_hf_json(model->config)},
                     {"layers", layers}};
  std::vector<SafetensorsEntry> tensors;
  for (const auto& p : model->named_parameters())
    tensors.push_back({p.key(), p.value().detach().contiguous(), "F32"});
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors);
  const std::string tmp = (fs::path(dir) / "model.json.tmp").string();
  std::ofstream(tmp) << meta.dump(2) << "\n";
  fs::rename(tmp, fs::path(dir) / "model.json");
}

ModelFilesMeta read_model_meta(const std::string& dir) {
  const std::string meta_path = (fs::path(dir) / "model.json").string();
  std::ifstream in(meta_path);
  if (!in) throw std::runtime_error(meta_path + ": missing (not a binarymos model/checkpoint folder)");
  json meta;
  try {
    meta = json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(meta_path + ": not valid JSON: " + e.what());
  }
  if (!meta.is_object() || meta.value("format", "") != "bmos-model")
    throw std::runtime_error(meta_path + ": \"format\" is not \"bmos-model\"");
  if (meta.value("version", -1) != kModelFilesVersion) {
    throw std::runtime_error(meta_path + ": version " + meta.value("version", json(-1)).dump() +
                             " is not supported by this build (it reads version " +
                             std::to_string(kModelFilesVersion) + ")");
  }
  ModelFilesMeta out;
  try {
    out.config = llama_config_from_hf_json(meta.at("config"), meta_path);
    for (const auto& [name, e] : meta.at("layers").items()) {
      ModelFilesLayer l;
      l.kind = e.at("kind").get<std::string>();
      l.bias = e.value("bias", false);
      if (l.kind == "binarymos") l.experts = e.at("experts").get<int64_t>();
      else if (l.kind != "sign")
        throw std::runtime_error(meta_path + ": layer '" + name + "' has unknown kind '" + l.kind + "'");
      out.layers[name] = l;
    }
  } catch (const json::exception& e) {
    throw std::runtime_error(meta_path + ": " + e.what());
  }
  return out;
}

Llama load_model_files(const std::string& dir) {
  const ModelFilesMeta meta = read_model_meta(dir);
  Llama model(meta.config);
  for (const auto& [name, e] : meta.layers) {
    auto old = model->get_linear(name);
    if (e.kind == "binarymos") {
      model->set_linear(name, std::make_shared<BinaryMoSLinearImpl>(
                                  BinaryMoSLinearOptions(old->in_features(), old->out_features())
                                      .experts(e.experts)
                                      .bias(e.bias)));
    } else {
      model->set_linear(name, std::make_shared<SignLinearImpl>(old->in_features(), old->out_features(), e.bias));
    }
  }
  const SafetensorsFile file((fs::path(dir) / "model.safetensors").string());
  torch::NoGradGuard no_grad;
  size_t n = 0;
  for (auto& p : model->named_parameters()) {
    if (!file.contains(p.key())) throw std::runtime_error(file.path() + ": no tensor '" + p.key() + "'");
    const torch::Tensor t = file.load_float(p.key());
    if (t.sizes() != p.value().sizes())
      throw std::runtime_error(file.path() + ": tensor '" + p.key() + "' has the wrong shape");
    p.value().copy_(t);
    ++n;
  }
  if (n != file.names().size())
    throw std::runtime_error(file.path() + ": holds tensors the model described by model.json does not have");
  model->eval();
  return model;
}

}  // namespace bmos
