#include "trainer/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <zlib.h>

#include "modules/io/model_files.h"
#include "modules/io/model_format.h"

namespace bmos {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kManifest = "manifest.json";

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

// ------------------------------------------------------------------------------------------------ checked writes
// A write that did not complete: the file, and errno (0 when the failure was found by reading the file back).
struct WriteFailure : std::runtime_error {
  WriteFailure(const fs::path& file, int err, const std::string& what)
      : std::runtime_error(file.string() + ": " + what + (err ? std::string(": ") + std::strerror(err) : "")),
        err(err) {}
  int err;
};

// errno when it says the space ran out, else 0: a writer that reports failure through a stream leaves errno as its
// failed write(2) set it, and anything else is no evidence of a full disk.
int space_errno(int err) { return err == ENOSPC || err == EDQUOT || err == EFBIG ? err : 0; }

// `bytes` as the whole of `path` (created or truncated), fsynced. A failed or short write throws naming the file.
void write_whole(const fs::path& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw WriteFailure(path, errno, "cannot create");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {  // 0 bytes for a non-empty write: the device took nothing (taken as full)
      const int err = w < 0 ? errno : ENOSPC;
      ::close(fd);
      throw WriteFailure(path, err, "write failed after " + std::to_string(done) + " of " +
                                        std::to_string(bytes.size()) + " bytes");
    }
    done += size_t(w);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw WriteFailure(path, err, "fsync failed");
  }
  if (::close(fd) != 0) throw WriteFailure(path, errno, "close failed");
}

// fsync of a file or folder written by someone else (the model and optimiser writers, a renamed folder).
void sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw WriteFailure(path, errno, "cannot open to fsync");
  const int rc = ::fsync(fd), err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw WriteFailure(path, err, "fsync failed");  // EINVAL: no fsync for folders here
}

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot read");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Bytes free to an unprivileged writer on the filesystem holding `path` (-1 when unknown).
long long free_bytes(const fs::path& path) {
  struct statvfs s;
  if (::statvfs(path.c_str(), &s) != 0) return -1;
  return (long long)s.f_bavail * (long long)s.f_frsize;
}

// The message of a save that failed: what failed, whether the disk is full, and the intact previous checkpoint.
std::string save_failure(const std::string& step, const fs::path& root, const std::string& what, int err) {
  const long long left = free_bytes(root);
  std::string msg = "checkpoint " + step + " was not written: " + what;
  if (space_errno(err) || (left >= 0 && left < (1 << 20))) {
    msg += ". The disk is full";
    if (err == EFBIG) msg += " for this process (a file reached its size limit, ulimit -f)";
    else if (left >= 0) msg += " (" + std::to_string(left >> 10) + " KiB free on " + root.string() + ")";
  }
  const std::string prev = newest_whole_checkpoint(root.string()).dir;  // checked against its manifest, not assumed
  msg += prev.empty() ? ". There is no earlier whole checkpoint; the run stops"
                      : ". The previous checkpoint " + prev + " is intact; free space, then continue with --resume";
  return msg;
}

// ------------------------------------------------------------------------------------------------------ manifest
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
  if (in.bad()) throw std::runtime_error(path.string() + ": read failed");
  return uint32_t(crc);
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// manifest.json: every other file of the checkpoint folder with its size and CRC-32.
void write_manifest(const fs::path& dir) {
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != kManifest) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  json files = json::array();
  for (const auto& p : paths)
    files.push_back({{"name", p.filename().string()}, {"bytes", fs::file_size(p)}, {"crc32", file_crc32(p)}});
  write_whole(dir / kManifest, json({{"format", "bmos-checkpoint-manifest"}, {"files", files}}).dump(2) + "\n");
}

}  // namespace

std::vector<ManifestEntry> parse_checkpoint_manifest(const std::string& text, const std::string& path) {
  json m;
  try {
    m = json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  if (!m.is_object() || !m.contains("files") || !m["files"].is_array())
    throw std::runtime_error(path + ": expected an object with a \"files\" list");
  std::vector<ManifestEntry> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < m["files"].size(); ++i) {
    const json& f = m["files"][i];
    const std::string at = path + ": files[" + std::to_string(i) + "]";
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.contains("bytes") ||
        !f["bytes"].is_number_unsigned() || !f.contains("crc32") || !f["crc32"].is_number_unsigned() ||
        f["crc32"].get<uint64_t>() > 0xffffffffull)
      throw std::runtime_error(at + ": expected {\"name\": string, \"bytes\": count, \"crc32\": 32-bit number}");
    ManifestEntry e{f["name"].get<std::string>(), f["bytes"].get<uint64_t>(), uint32_t(f["crc32"].get<uint64_t>())};
    if (e.name.empty() || e.name == "." || e.name == ".." || e.name.find('/') != std::string::npos ||
        e.name.find('\0') != std::string::npos)
      throw std::runtime_error(at + ": name '" + e.name + "' is not a file name inside the checkpoint folder");
    if (!seen.insert(e.name).second) throw std::runtime_error(at + ": '" + e.name + "' listed twice");
    out.push_back(std::move(e));
  }
  return out;
}

CheckpointCheck check_checkpoint(const std::string& dir_s) {
  const fs::path dir(dir_s);
  CheckpointCheck c;
  const auto damaged = [&](const std::string& problem) {
    c.whole = false;
    c.problem = problem;
    return c;
  };
  int version = 0;
  try {
    const json meta = json::parse(read_whole(dir / kCheckpointMarker));
    version = meta.is_object() && meta.contains("version") && meta["version"].is_number_integer() ? meta["version"].get<int>() : 0;
  } catch (const std::exception& e) {
    return damaged((dir / kCheckpointMarker).string() + ": unreadable (" + e.what() + ")");
  }
  const fs::path mpath = dir / kManifest;
  if (!fs::exists(mpath)) {
    if (version == 1) {  // written before manifests existed: taken as whole, unverified (the caller warns)
      c.verified = false;
      return c;
    }
    return damaged(mpath.string() + ": missing (a version " + std::to_string(version) +
                   " checkpoint lists its files there)");
  }
  std::vector<ManifestEntry> files;
  try {
    files = parse_checkpoint_manifest(read_whole(mpath), mpath.string());
  } catch (const std::exception& e) {
    return damaged(e.what());
  }
  if (version >= 3) {
    std::set<std::string> listed;
    for (const auto& f : files) listed.insert(f.name);
    for (const char* need : {kCheckpointMarker, "model.json", "model.safetensors", "rng.pt", "job.yaml"})
      if (!listed.count(need)) return damaged(mpath.string() + ": does not list " + need);
  }
  for (const auto& f : files) {
    const fs::path p = dir / f.name;
    std::error_code ec;
    const uint64_t size = fs::file_size(p, ec);
    if (ec) return damaged(p.string() + ": listed in the checkpoint's manifest but missing");
    if (size != f.bytes)
      return damaged(p.string() + ": " + std::to_string(size) + " bytes, the manifest says " + std::to_string(f.bytes));
    const uint32_t crc = file_crc32(p);
    if (crc != f.crc32)
      return damaged(p.string() + ": its CRC-32 differs from the manifest's (found " + hex32(crc) +
                     ", the manifest says " + hex32(f.crc32) + ")");
  }
  return c;
}

ResumePoint newest_whole_checkpoint(const std::string& root) {
  ResumePoint r;
  const auto all = complete_checkpoints(root);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const CheckpointCheck c = check_checkpoint(it->string());
    if (!c.whole) {
      r.damaged.emplace_back(it->string(), c.problem);
      continue;
    }
    r.dir = it->string();
    r.verified = c.verified;
    break;
  }
  return r;
}

std::string set_aside_damaged(const std::string& dir) {
  const fs::path d(dir);
  fs::path to = d.parent_path() / ("damaged-" + d.filename().string());
  for (int i = 1; fs::exists(to); ++i) to = d.parent_path() / ("damaged-" + d.filename().string() + "." + std::to_string(i));
  fs::rename(d, to);
  return to.string();
}

std::string save_checkpoint(const std::string& root, const TrainState& state, Llama& model,
                            torch::optim::AdamW& optimizer, const NamedParams& trainable, bool sharded,
                            const std::string& job_text, const std::vector<ExtraFile>& extra, int keep,
                            ProcessGroup& group) {
  const std::string name = step_name(state.step);
  const fs::path final_dir = fs::path(root) / name;
  const fs::path tmp = fs::path(root) / (".tmp-" + name);
  const bool lead = group.rank() == 0;
  // Every failure below (a full disk among them) removes the half-written folder and names the intact previous one.
  const auto failed = [&](const std::string& what, int err) {
    std::error_code ec;
    if (lead) fs::remove_all(tmp, ec);
    return std::runtime_error(save_failure(name, root, what, err));
  };
  if (lead) {
    try {
      std::vector<fs::path> stale;  // what a killed save left behind
      for (const auto& e : fs::directory_iterator(root)) {
        const std::string n = e.path().filename().string();
        if (n.rfind(".tmp-step_", 0) == 0 || n.rfind(".old-step_", 0) == 0) stale.push_back(e.path());
      }
      for (const auto& p : stale) fs::remove_all(p);
      fs::create_directories(tmp);
    } catch (const fs::filesystem_error& e) {
      throw failed(e.what(), e.code().value());
    }
  }
  group.barrier("checkpoint folder");
  const std::string shard = "optimizer.rank" + std::to_string(group.rank()) + ".safetensors";
  try {
    if (sharded || lead) {
      save_adamw_state((tmp / shard).string(), optimizer, trainable);
      sync_path(tmp / shard);
    }
  } catch (const WriteFailure& e) {
    throw failed(e.what(), e.err);
  } catch (const std::exception& e) {
    throw failed(e.what(), space_errno(errno));
  }
  group.barrier("optimiser shards written");
  if (!lead) {
    group.barrier("checkpoint in place");
    return final_dir.string();
  }
  try {
    save_model_files(tmp.string(), model);
    const int err = space_errno(errno);
    for (const char* f : {"model.safetensors", "model.json"}) sync_path(tmp / f);
    bool model_json_whole = false;  // model.json's writer does not check its stream: a short file shows as bad JSON
    try {
      model_json_whole = json::parse(read_whole(tmp / "model.json")).is_object();
    } catch (const json::exception&) {
    }
    if (!model_json_whole) throw WriteFailure(tmp / "model.json", err, "written short (not a JSON object when read back)");
    std::ostringstream rng;
    torch::save(at::detail::getDefaultCPUGenerator().get_state(), rng);
    write_whole(tmp / "rng.pt", rng.str());
    if (model->device().is_cuda()) {  // the device's own generator too (dropout-free today, but exact resume promises it)
      std::ostringstream cuda_rng;
      torch::save(at::globalContext().defaultGenerator(model->device()).get_state(), cuda_rng);
      write_whole(tmp / "rng_cuda.pt", cuda_rng.str());
    }
    write_whole(tmp / "job.yaml", job_text);
    for (const auto& x : extra) write_whole(tmp / x.name, x.source.empty() ? std::string() : read_whole(x.source));
    const json meta = {{"format", "bmos-checkpoint"}, {"version", kCheckpointVersion}, {"step", state.step},
                       {"tokens", state.tokens},      {"job_hash", state.job_hash},   {"data_cursor", state.data_cursor},
                       {"metrics", state.metrics}};
    write_whole(tmp / kCheckpointMarker, meta.dump(2) + "\n");
    write_manifest(tmp);  // every shard is in place by now (the barrier above)
    sync_path(tmp);
  } catch (const WriteFailure& e) {
    throw failed(e.what(), e.err);
  } catch (const std::exception& e) {
    throw failed(e.what(), space_errno(errno));
  }
  // Into place: a folder of the same step (a resumed run passing it again) is moved aside first, removed after.
  const fs::path old = fs::path(root) / (".old-" + name);
  std::error_code ec;
  if (fs::exists(final_dir)) fs::rename(final_dir, old, ec);
  if (!ec) fs::rename(tmp, final_dir, ec);
  if (ec) {
    std::error_code back;
    if (fs::exists(old) && !fs::exists(final_dir)) fs::rename(old, final_dir, back);
    throw failed("cannot rename " + tmp.string() + " into place: " + ec.message(), ec.value());
  }
  try {
    sync_path(root);
  } catch (const WriteFailure& e) {
    std::fprintf(stderr, "checkpoint: %s (the checkpoint is in place; a power loss now could lose it)\n", e.what());
  }
  fs::remove_all(old, ec);
  // Only now, with the new one whole and in place, do the oldest beyond `keep` go.
  const auto all = complete_checkpoints(root);
  for (size_t i = 0; i + keep < all.size(); ++i) {
    fs::remove_all(all[i], ec);
    if (ec) std::fprintf(stderr, "checkpoint: could not delete %s (%s); it stays\n", all[i].c_str(), ec.message().c_str());
  }
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
  const int version = meta.is_object() && meta.contains("version") && meta["version"].is_number_integer()
                          ? meta["version"].get<int>() : -1;
  if (!meta.is_object() || meta.value("format", "") != "bmos-checkpoint" || version < 1 || version > kCheckpointVersion)
    throw std::runtime_error(p.string() + ": not a bmos checkpoint of version 1 to " +
                             std::to_string(kCheckpointVersion) + " (format/version fields)");
  TrainState s;
  try {
    s.step = meta.at("step");
    s.tokens = meta.at("tokens");
    s.job_hash = meta.at("job_hash");
    s.data_cursor = meta.at("data_cursor");
    s.metrics = meta.value("metrics", json::object());
  } catch (const json::exception& e) {
    throw std::runtime_error(p.string() + ": " + e.what());
  }
  return s;
}

TrainState load_checkpoint(const std::string& dir, Llama& model, torch::optim::AdamW& optimizer,
                           const NamedParams& trainable) {
  TrainState s = read_train_state(dir);
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
