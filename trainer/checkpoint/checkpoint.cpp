#include "trainer/checkpoint/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <zlib.h>

#include "modules/io/model_files.h"
#include "modules/io/model_format.h"
#include "modules/io/safetensors.h"

namespace bmos {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::vector<fs::path> complete_checkpoints(const std::string& root) {
  std::vector<fs::path> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step_", 0) == 0 && fs::exists(e.path() / kCheckpointMarker)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// CRC-32 (zlib's) of a file's bytes, read in 4 MB blocks.
uint32_t file_crc32(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot read");
  std::vector<char> buf(4 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    if (in.gcount() > 0) crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), uInt(in.gcount()));
  }
  return uint32_t(crc);
}

// manifest.json: every file of the checkpoint folder with its size and CRC-32.
void write_manifest(const fs::path& dir) {
  json files = json::array();
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != "manifest.json") paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths)
    files.push_back({{"name", p.filename().string()}, {"bytes", fs::file_size(p)}, {"crc32", file_crc32(p)}});
  std::ofstream(dir / "manifest.json") << json({{"files", files}}).dump(2) << "\n";
}

// Every file the manifest lists is there with its size and CRC-32 (a checkpoint without a manifest, version 1, passes).
void verify_manifest(const fs::path& dir) {
  std::ifstream in(dir / "manifest.json");
  if (!in) return;
  const json m = json::parse(in);
  for (const auto& f : m.at("files")) {
    const fs::path p = dir / f.at("name").get<std::string>();
    if (!fs::exists(p)) throw std::runtime_error(p.string() + ": listed in the checkpoint's manifest but missing");
    if (fs::file_size(p) != f.at("bytes").get<uint64_t>())
      throw std::runtime_error(p.string() + ": " + std::to_string(fs::file_size(p)) + " bytes, the manifest says " +
                               std::to_string(f.at("bytes").get<uint64_t>()) + " (a damaged checkpoint)");
    if (file_crc32(p) != f.at("crc32").get<uint32_t>())
      throw std::runtime_error(p.string() + ": its CRC-32 differs from the manifest's (a damaged checkpoint)");
  }
}

}  // namespace

std::string save_checkpoint(const std::string& root, const TrainState& state, Llama& model,
                            torch::optim::AdamW& optimizer, const NamedParams& trainable, bool sharded,
                            const std::string& job_text, int keep, ProcessGroup& group) {
  const fs::path final_dir = fs::path(root) / step_name(state.step);
  const fs::path tmp = fs::path(root) / (".tmp-" + step_name(state.step));
  const bool lead = group.rank() == 0;
  if (lead) {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
  }
  group.barrier("checkpoint folder");
  if (sharded || lead)
    save_adamw_state((tmp / ("optimizer.rank" + std::to_string(group.rank()) + ".safetensors")).string(), optimizer,
                     trainable);
  group.barrier("optimiser shards written");
  if (!lead) {
    group.barrier("checkpoint in place");
    return final_dir.string();
  }
  save_model_files(tmp.string(), model);
  torch::save(at::detail::getDefaultCPUGenerator().get_state(), (tmp / "rng.pt").string());
  if (model->device().is_cuda())  // the device's own generator too (dropout-free today, but exact resume promises it)
    torch::save(at::globalContext().defaultGenerator(model->device()).get_state(), (tmp / "rng_cuda.pt").string());
  std::ofstream(tmp / "job.yaml") << job_text;
  const json meta = {{"format", "bmos-checkpoint"}, {"version", kCheckpointVersion}, {"step", state.step},
                     {"tokens", state.tokens},      {"job_hash", state.job_hash},   {"data_cursor", state.data_cursor},
                     {"metrics", state.metrics}};
  write_manifest(tmp);  // every shard is in place by now (the barrier above)
  std::ofstream(tmp / kCheckpointMarker) << meta.dump(2) << "\n";  // the marker: written last
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  auto all = complete_checkpoints(root);
  for (size_t i = 0; i + keep < all.size(); ++i) fs::remove_all(all[i]);
  group.barrier("checkpoint in place");
  return final_dir.string();
}

std::string newest_checkpoint(const std::string& root) {
  const auto all = complete_checkpoints(root);
  return all.empty() ? "" : all.back().string();
}

std::string resolve_model_path(const std::string& path) {
  const fs::path root = fs::path(path) / "checkpoints";
  if (!fs::is_directory(root) || fs::exists(fs::path(path) / kCheckpointMarker)) return path;
  const std::string newest = newest_checkpoint(root.string());
  if (newest.empty()) throw std::runtime_error(path + ": a run folder without a complete checkpoint yet");
  return newest;
}

TrainState read_train_state(const std::string& dir) {
  const fs::path p = fs::path(dir) / kCheckpointMarker;
  std::ifstream in(p);
  if (!in) throw std::runtime_error(p.string() + ": missing (not a training checkpoint)");
  json meta;
  try {
    meta = json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(p.string() + ": not valid JSON: " + e.what());
  }
  const int version = meta.value("version", -1);
  if (meta.value("format", "") != "bmos-checkpoint" || version < 1 || version > kCheckpointVersion)
    throw std::runtime_error(p.string() + ": not a bmos checkpoint of version 1 to " +
                             std::to_string(kCheckpointVersion) + " (format/version fields)");
  TrainState s;
  s.step = meta.at("step");
  s.tokens = meta.at("tokens");
  s.job_hash = meta.at("job_hash");
  s.data_cursor = meta.at("data_cursor");
  s.metrics = meta.value("metrics", json::object());
  return s;
}

TrainState load_checkpoint(const std::string& dir, Llama& model, torch::optim::AdamW& optimizer,
                           const NamedParams& trainable) {
  TrainState s = read_train_state(dir);
  verify_manifest(dir);
  Llama saved = load_model_files(dir);
  {
    torch::NoGradGuard no_grad;
    auto src = saved->named_parameters();
    for (auto& p : model->named_parameters()) {
      const torch::Tensor* t = src.find(p.key());
      if (!t || t->sizes() != p.value().sizes())
        throw std::runtime_error(dir + ": checkpoint does not fit the job's model at '" + p.key() + "'");
      p.value().copy_(*t);
    }
  }
  std::vector<std::string> shards;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("optimizer.rank", 0) == 0 && e.path().extension() == ".safetensors") shards.push_back(e.path().string());
  }
  if (!shards.empty()) load_adamw_state(shards, optimizer, trainable);
  else torch::load(optimizer, (fs::path(dir) / "optimizer.pt").string());  // version 1: one process, same parameters
  torch::Tensor rng;
  torch::load(rng, (fs::path(dir) / "rng.pt").string());
  at::Generator gen = at::detail::getDefaultCPUGenerator();  // a handle to the global generator
  gen.set_state(rng);
  const fs::path cuda_rng = fs::path(dir) / "rng_cuda.pt";
  if (model->device().is_cuda() && fs::exists(cuda_rng)) {
    torch::Tensor state;
    torch::load(state, cuda_rng.string());
    at::Generator cuda_gen = at::globalContext().defaultGenerator(model->device());  // a handle, as above
    cuda_gen.set_state(state);
  }
  return s;
}

}  // namespace bmos
