#include "modules/model_loader.h"

#include <filesystem>
#include <stdexcept>

#include "modules/model_files.h"
#include "modules/model_format.h"
#include "modules/packed_model.h"

namespace bmos {

namespace fs = std::filesystem;

std::string find_tokenizer_near(const std::string& model_path) {
  const fs::path dir = fs::is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
  if (dir.empty() || !fs::is_directory(dir)) return "";
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer.bin", "tokenizer.byte"})
    if (fs::exists(dir / name)) return (dir / name).string();
  std::vector<std::string> found;  // e.g. tok512.model / tok512.bin beside a llama2.c file
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("tok", 0) == 0 && (e.path().extension() == ".model" || e.path().extension() == ".bin"))
      found.push_back(e.path().string());
  }
  std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
    return (fs::path(a).extension() == ".model") > (fs::path(b).extension() == ".model") || (fs::path(a).extension() == fs::path(b).extension() && a < b);
  });
  return found.empty() ? "" : found.front();
}

// A run folder (runs/<name>) stands for its newest checkpoint.
std::string newest_in_run(const std::string& path) {
  const fs::path root = fs::path(path) / "checkpoints";
  if (!fs::is_directory(root) || fs::exists(fs::path(path) / kCheckpointMarker)) return path;
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::exists(e.path() / kCheckpointMarker)) steps.push_back(e.path().string());
  if (steps.empty()) throw std::runtime_error(path + ": a run folder without a complete checkpoint yet");
  return *std::max_element(steps.begin(), steps.end());
}

LoadedModel load_model(const std::string& path_in) {
  LoadedModel out;
  const std::string path = newest_in_run(path_in);
  out.format = detect_model_format(path);
  if (out.format == "llama2c" || out.format == "hf") {
    const LoadedCheckpoint ck = read_fp_checkpoint(path);
    out.model = Llama(ck.config);
    out.model->load_fp_state(ck.tensors);
  } else if (out.format == "checkpoint") {
    out.model = load_model_files(path);
  } else if (out.format == "packed") {
    out.model = load_packed_model(path).model;
  } else {
    throw std::runtime_error(path + ": model format '" + out.format + "' cannot be loaded by this build");
  }
  out.model->eval();
  out.tokenizer = find_tokenizer_near(path);
  out.path = path;
  return out;
}

}  // namespace bmos
