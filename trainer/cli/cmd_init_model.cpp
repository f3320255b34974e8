// bmos init-model --like CONFIG.json --out DIR [--seed S] [--shard_gb G]
//   a Hugging Face folder of that config's shape with random bf16 weights (modules/io/random_model.h)
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "modules/io/random_model.h"
#include "trainer/cli/cli_flags.h"
#include "trainer/cli/commands.h"

DEFINE_string(like, "", "the config.json whose shape the model takes, e.g. configs/shapes/tinyllama-1.1b.json "
                        "(LLaMA configs: other families come with their readers)");
DEFINE_double(shard_gb, 2.0, "largest safetensors shard in GiB (more than one: with model.safetensors.index.json)");

namespace bmos {

int cmd_init_model(const std::vector<std::string>& args) {
  if (!args.empty()) throw std::invalid_argument("unexpected argument '" + args[0] + "' (use --like FILE --out DIR)");
  if (FLAGS_like.empty()) throw std::invalid_argument("--like CONFIG.json is required");
  if (FLAGS_out.empty()) throw std::invalid_argument("--out DIR is required");
  if (!(FLAGS_shard_gb > 0)) throw std::invalid_argument("--shard_gb must be > 0");
  std::ifstream in(FLAGS_like);
  if (!in) throw std::invalid_argument("--like: cannot read '" + FLAGS_like + "'");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument("--like: " + FLAGS_like + " is not valid JSON: " + e.what());
  }
  RandomModelOptions o;
  o.seed = FLAGS_seed;
  o.shard_bytes = static_cast<int64_t>(FLAGS_shard_gb * double(int64_t{1} << 30));
  const RandomModelReport r = write_random_hf_model(config, FLAGS_like, FLAGS_out, o);
  std::printf("wrote %s: %lld parameters, %.3f GB of bf16 in %lld file(s), %.1f s\n", FLAGS_out.c_str(),
              static_cast<long long>(r.parameters), r.bytes / 1e9, static_cast<long long>(r.shards), r.seconds);
  return 0;
}

}  // namespace bmos
