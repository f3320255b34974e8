#include "modules/io/model_format.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "modules/io/hf_llama.h"
#include "modules/io/llama2c_reader.h"

namespace bmos {

namespace fs = std::filesystem;

namespace {

const char* const kExpected =
    "expected one of: a llama2.c .bin file (legacy or version 1), a Hugging Face model folder (config.json + "
    "model.safetensors or pytorch_model.bin, or their sharded indexes), a training checkpoint folder (with checkpoint.json) or an exported packed model folder "
    "(config.json with a 'quantization' section)";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("model path '" + path + "': " + what + "; " + kExpected);
}

}  // namespace

std::string detect_model_format(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (!fs::exists(st)) fail(path, "does not exist");

  if (fs::is_directory(st)) {
    if (fs::exists(p / kCheckpointMarker)) return "checkpoint";
    if (!fs::exists(p / "config.json")) fail(path, "is a folder without config.json or " + std::string(kCheckpointMarker));
    std::ifstream in(p / "config.json");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error("model path '" + path + "': config.json is not valid JSON: " + e.what());
    }
    if (!j.is_object()) fail(path, "config.json is not a JSON object");
    return j.contains("quantization") ? "packed" : "hf";
  }

  if (!fs::is_regular_file(st)) fail(path, "is neither a file nor a folder");
  const std::string name = p.filename().string();
  if (name == "config.json" || name == kCheckpointMarker || p.extension() == ".safetensors" ||
      p.extension() == ".json" || name == "pytorch_model.bin" || name.rfind("pytorch_model-", 0) == 0)
    fail(path, "is a file inside a model folder: pass the folder '" + p.parent_path().string() + "' instead");
  return "llama2c";
}

LoadedCheckpoint read_fp_checkpoint(const std::string& path) {
  const std::string format = detect_model_format(path);
  if (format == "llama2c") return read_llama2c(path);
  if (format == "hf") return read_hf_llama(path);
  const std::string what = format == "packed"
                               ? "is an exported packed 1-bit model (its config.json has a 'quantization' section)"
                               : "is a training checkpoint folder (it has " + std::string(kCheckpointMarker) + ")";
  throw std::runtime_error("model path '" + path + "' " + what +
                           ", but a full-precision model is needed here: a llama2.c .bin file or a Hugging Face "
                           "model folder (config.json + model.safetensors or pytorch_model.bin)");
}

}  // namespace bmos
