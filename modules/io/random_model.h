// Real-shape models without downloads: a Hugging Face model folder of a given config.json with random weights, so
// memory and speed claims can be tested at 1B-8B shapes (`bmos init-model --like CONFIG.json --out DIR`).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace bmos {

struct RandomModelOptions {
  uint64_t seed = 0;
  int64_t shard_bytes = int64_t{2} << 30;  // safetensors files of at most this size (+ one tensor); an index when > 1
};

struct RandomModelReport {
  int64_t parameters = 0, bytes = 0, shards = 0;
  double seconds = 0;
};

// Writes dir/config.json (the given config, torch_dtype bfloat16) and bf16 weights drawn from N(0, std) with std =
// config's initializer_range (default 0.02), norms at 1. Each tensor is drawn from a generator seeded by (seed, its
// place in the file order), one at a time: memory holds one tensor, and the same seed gives the same files. `where` names the config in
// errors; an unsupported config is refused as the HF reader would refuse it.
RandomModelReport write_random_hf_model(const nlohmann::json& config, const std::string& where, const std::string& dir,
                                        const RandomModelOptions& options);

}  // namespace bmos
