#include "modules/io/random_model.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "modules/io/hf_llama.h"
#include "modules/io/safetensors.h"

namespace bmos {

namespace fs = std::filesystem;

RandomModelReport write_random_hf_model(const nlohmann::json& config_json, const std::string& where,
                                        const std::string& dir, const RandomModelOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const LlamaConfig config = llama_config_from_hf_json(config_json, where);
  const double stddev = config_json.value("initializer_range", 0.02);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir + ": cannot create the folder: " + ec.message());

  // Tensors in HF order, cut into shards of at most shard_bytes.
  std::vector<std::vector<SafetensorsInfo>> shards(1);
  int64_t in_shard = 0;
  RandomModelReport report;
  std::map<std::string, uint64_t> position;  // a tensor's place in HF order: its generator's seed
  for (const auto& [name, shape] : hf_llama_tensor_shapes(config)) {
    position[name] = position.size();
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (in_shard > 0 && in_shard + 2 * numel > o.shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    SafetensorsInfo info;
    info.name = name;
    info.dtype = "BF16";
    info.shape = shape;
    shards.back().push_back(info);
    in_shard += 2 * numel;
    report.parameters += numel;
    report.bytes += 2 * numel;
  }
  report.shards = static_cast<int64_t>(shards.size());

  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char file[64];
    if (shards.size() == 1) std::snprintf(file, sizeof file, "model.safetensors");
    else std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    const auto& layout = shards[s];
    write_safetensors_streaming(
        (fs::path(dir) / file).string(), layout,
        [&](size_t i) {
          const SafetensorsInfo& info = layout[i];
          torch::NoGradGuard no_grad;
          if (info.name.find("norm") != std::string::npos)  // norm gains 1, LayerNorm biases 0
            return info.name.rfind(".bias") == info.name.size() - 5 ? torch::zeros(info.shape, torch::kBFloat16)
                                                                    : torch::ones(info.shape, torch::kBFloat16);
          at::Generator gen = at::detail::createCPUGenerator(o.seed * 1000003ull + position.at(info.name));
          return at::normal(0.0, stddev, info.shape, gen).to(torch::kBFloat16);
        },
        {{"format", "pt"}});
    for (const auto& info : layout) weight_map[info.name] = file;
    std::fprintf(stderr, "\r[init-model] %s: shard %zu/%zu written", dir.c_str(), s + 1, shards.size());
  }
  std::fprintf(stderr, "\n");
  if (shards.size() > 1) {
    const nlohmann::json index = {{"metadata", {{"total_size", report.bytes}}}, {"weight_map", weight_map}};
    std::ofstream(fs::path(dir) / "model.safetensors.index.json") << index.dump(2) << "\n";
  }
  nlohmann::json out = config_json;
  out["torch_dtype"] = "bfloat16";
  std::ofstream(fs::path(dir) / "config.json") << out.dump(2) << "\n";
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace bmos
