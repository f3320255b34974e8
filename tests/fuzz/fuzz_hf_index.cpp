// A Hugging Face folder's model.safetensors.index.json (modules/io/hf_llama.cpp's folder reader): the fuzzed index
// beside stories260K-hf's real config.json and model.safetensors (linked in as the shard
// model-00001-of-00001.safetensors). The reader is stopped at `prepare`, after the index and shards are checked and
// before any tensor is converted.
#include <filesystem>
#include <stdexcept>

#include "modules/io/hf_llama.h"
#include "tests/fuzz/fuzz_target.h"

namespace {
struct Stop : std::runtime_error {
  Stop() : std::runtime_error("stop at prepare") {}
};
}  // namespace

BMOS_FUZZ_TARGET(hf_index) {
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    const fs::path d = fs::path(bmos_fuzz::temp_dir()) / "hf";
    fs::create_directories(d);
    fs::copy_file(bmos_fuzz::shared_data("models/stories260K-hf/config.json"), d / "config.json",
                  fs::copy_options::overwrite_existing);
    fs::create_symlink(fs::absolute(bmos_fuzz::shared_data("models/stories260K-hf/model.safetensors")),
                       d / "model-00001-of-00001.safetensors");
    return d;
  }();
  bmos_fuzz::write_file("hf/model.safetensors.index.json", data, size);
  try {
    bmos::read_hf_llama_into(dir.string(), torch::kFloat32, [](const std::string&, torch::Tensor) {},
                             [](const bmos::LlamaConfig&) { throw Stop(); });
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
