// A Hugging Face config.json of any family (model_type llama, mistral, qwen2, qwen3, opt): the JSON text, then
// llama_config_from_hf_json (modules/io/hf_llama.h); a config it accepts must survive the round trip back to JSON.
#include <nlohmann/json.hpp>

#include "modules/io/hf_llama.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(hf_config) {
  try {
    const nlohmann::json j = nlohmann::json::parse(data, data + size);
    const bmos::LlamaConfig config = bmos::llama_config_from_hf_json(j, "config.json");
    bmos::llama_config_from_hf_json(bmos::llama_config_to_hf_json(config), "config.json (round trip)");
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
