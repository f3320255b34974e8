// Our own model files: a (possibly quantized) training-graph Llama as two files in a folder.
//   model.json         {"format": "bmos-model", "version": 1, "config": {HF-style LLaMA config},
//                       "layers": {"layers.0.attention.wq": {"kind": "binarymos", "experts": 4, "bias": false}, ...}}
//                      (only the replaced decoder linears are listed; the rest are FP)
//   model.safetensors  every parameter, fp32, under its module path (e.g. layers.0.attention.wq.s_in)
// Training checkpoints hold these two files beside the optimiser state.
#pragma once

#include <map>
#include <string>

#include "modules/llama.h"

namespace bmos {

constexpr int kModelFilesVersion = 1;

void save_model_files(const std::string& dir, Llama& model);
// model.json alone: the config and the replaced linears (errors name the file and the key).
struct ModelFilesLayer {
  std::string kind;      // binarymos | sign
  int64_t experts = 1;   // binarymos only
  bool bias = false;
};
struct ModelFilesMeta {
  LlamaConfig config;
  std::map<std::string, ModelFilesLayer> layers;  // by linear name; the others are FP
};
ModelFilesMeta read_model_meta(const std::string& dir);
// Rebuilds the model from model.json (layer kinds) and loads model.safetensors strictly.
Llama load_model_files(const std::string& dir);

}  // namespace bmos
