// An exported packed folder's config.json: the model config (llama_config_from_hf_json) and its "quantization" block
// (modules/packed/packed_layout.h: quantization_from_json), then the tensor plan load_packed_model checks files against.
#include <nlohmann/json.hpp>

#include "modules/io/hf_llama.h"
#include "modules/packed/packed_layout.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(packed_config) {
  try {
    const nlohmann::json j = nlohmann::json::parse(data, data + size);
    const bmos::PackedQuantization q =
        bmos::quantization_from_json(j.contains("quantization") ? j.at("quantization") : j, "config.json");
    bmos::quantization_from_json(bmos::quantization_to_json(q), "config.json (round trip)");
    if (j.contains("model_type")) {
      const bmos::LlamaConfig c = bmos::llama_config_from_hf_json(j, "config.json");
      if (c.n_layers <= 64 && c.dim <= 8192) bmos::payload_bytes(bmos::packed_tensor_plan(c, q, bmos::all_linears_packed(c, q)));
    }
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
