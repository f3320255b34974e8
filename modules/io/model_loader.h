// One entry point that turns any model path into a Llama: a llama2.c .bin, a Hugging Face folder, one of our
// training checkpoints or an exported packed folder (format detected by modules/io/model_format.h).
#pragma once

#include <string>

#include <torch/types.h>

#include "kernels/cpu/binary_matmul.h"
#include "modules/llama.h"

namespace bmos {

struct LoadedModel {
  Llama model{nullptr};
  std::string format;     // llama2c | hf | checkpoint | packed
  std::string tokenizer;  // a tokenizer file found beside the model ("" if none)
  std::string path;       // what was loaded
};

// `path` names the model itself: a run folder is resolved to its newest checkpoint by the caller
// (trainer/checkpoint/checkpoint.h resolve_model_path), the one place that knows the run layout.
struct LoadOptions {
  torch::Dtype dtype = torch::kFloat32;  // parameters' dtype (a bf16 teacher: torch::kBFloat16)
  torch::Device device = torch::kCPU;    // where the parameters live
  // The packed linears' CPU products of 2 or more tokens (PackedBinaryMoSLinearImpl::set_prefill_tables): kInt8 only
  // for an exported packed model on the CPU of a machine with AVX-512 VBMI + VNNI (std::invalid_argument otherwise).
  kernels::LutPrecision prefill_tables = kernels::LutPrecision::kFp32;
  // An exported packed model's file is mapped (true: loads in a fraction of a second, pages in as it is used) or read
  // whole into memory backed by transparent huge pages (false, `--nommap`: LLaMA-2-7B decodes about 5 % faster on 2
  // threads here, 16 interleaved pairs; loading reads the whole file first, and all of it stays resident). Other
  // formats are always read into memory: std::invalid_argument when false is asked of them.
  bool map_weights = true;
  // Generation's KV cache as fp16 (LlamaRunOptions::fp16_kv_cache, `--kv_cache fp16`) instead of the model's dtype.
  bool fp16_kv_cache = false;
};

// A Hugging Face folder streams tensor by tensor into an uninitialised model of `dtype` on `device` (peak memory: the
// model in that dtype plus one tensor); the other formats load as fp32 and are converted after.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

// A tokenizer file in the model's folder (tokenizer.model, tok*.model, tokenizer.bin, tok*.bin, tokenizer.json),
// or "" when there is none.
std::string find_tokenizer_near(const std::string& model_path);

}  // namespace bmos
