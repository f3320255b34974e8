#include "modules/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; this host is not");

namespace bmos {

// ------------------------------------------------------------------------------------------------------------ dtypes
namespace {

struct DtypeSpec {
  const char* name;
  torch::ScalarType torch_type;  // what `load` returns (U32 -> int32, BOOL is read as uint8 then compared to 0)
  uint64_t itemsize;
};

// The dtypes we read and write; anything else in a header is refused by name.
const DtypeSpec kDtypes[] = {
    {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2}, {"BF16", torch::kBFloat16, 2},
    {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},   {"U32", torch::kInt32, 4},
    {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},    {"BOOL", torch::kUInt8, 1},
};

const DtypeSpec* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string supported_dtypes() {
  std::string s;
  for (const auto& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

// The header is at most this long (the same limit as the reference implementation): a larger value is a corrupt
// length field, not a real header.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("safetensors file '" + path + "': " + what);
}

[[noreturn]] void fail_tensor(const std::string& path, const std::string& name, const std::string& what) {
  fail(path, "tensor '" + name + "': " + what);
}

// A non-negative integer from the header, or an error naming the tensor and field.
uint64_t header_uint(const nlohmann::json& v, const std::string& path, const std::string& name, const char* field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  fail_tensor(path, name, std::string(field) + " holds " + v.dump() + ", expected a non-negative integer");
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------ reader
SafetensorsFile::SafetensorsFile(const std::string& path, bool map) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno) + " (check the path)");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail(path, "only " + std::to_string(file_size) + " bytes; a safetensors file starts with an 8-byte header length");
  }
  // The memory is unmapped with its last owner: this object (also when a check below throws) or a Mapped::keep.
  auto own = [this](void* p, uint64_t bytes) {
    mapping_ = std::shared_ptr<const void>(p, [bytes](const void* q) { ::munmap(const_cast<void*>(q), bytes); });
  };
  if (map) {
    void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);  // the mapping keeps the file alive
    if (m == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(errno));
    map_ = static_cast<const unsigned char*>(m);
    own(m, file_size);
  } else {
    // Anonymous memory from a 2 MB boundary, advised for transparent huge pages (advice only: 4 KB pages where THP
    // is off), read whole, then made read-only like the mapping.
    constexpr uint64_t kHuge = uint64_t{2} << 20;
    const uint64_t span = (file_size + kHuge - 1) / kHuge * kHuge, reserved = span + kHuge;
    void* raw = ::mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(path, "cannot allocate " + std::to_string(file_size) + " bytes to read the file into (--nommap): " +
                     std::strerror(err));
    }
    own(raw, reserved);
    auto* m = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
    ::madvise(m, span, MADV_HUGEPAGE);
    for (uint64_t done = 0; done < file_size;) {
      const ssize_t r = ::pread(fd, m + done, std::min<uint64_t>(file_size - done, uint64_t{1} << 30),
                                static_cast<off_t>(done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        const std::string why = r < 0 ? std::strerror(errno) : "the file ended early";
        ::close(fd);
        fail(path, "read failed at byte " + std::to_string(done) + ": " + why);
      }
      done += static_cast<uint64_t>(r);
    }
    ::close(fd);
    ::mprotect(m, span, PROT_READ);
    map_ = m;
  }
  map_size_ = file_size;

  // -------------------------------------------------------------------- header length and JSON, before any data
  uint64_t header_len = 0;
  std::memcpy(&header_len, map_, 8);
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(file_size) + " bytes): truncated or not a safetensors file");
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the 100 MiB limit: corrupt length field");
  if (header_len < 2 || map_[8] != '{')
    fail(path, "the header does not start with a JSON object: not a safetensors file");
  data_start_ = 8 + header_len;
  const uint64_t data_size = file_size - data_start_;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(map_ + 8, map_ + data_start_);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  // ---------------------------------------------------------------------------------- every entry, field by field
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ must be an object of strings, got " + v.dump());
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(path, "__metadata__['" + m.key() + "'] must be a string, got " + m.value().dump());
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail_tensor(path, name, "entry must be an object with dtype, shape and data_offsets, got " + v.dump());
    SafetensorsInfo info;
    info.name = name;
    if (!v["dtype"].is_string()) fail_tensor(path, name, "dtype must be a string, got " + v["dtype"].dump());
    info.dtype = v["dtype"].get<std::string>();
    const DtypeSpec* spec = find_dtype(info.dtype);
    if (!spec) fail_tensor(path, name, "unsupported dtype '" + info.dtype + "' (supported: " + supported_dtypes() + ")");
    if (!v["shape"].is_array()) fail_tensor(path, name, "shape must be an array, got " + v["shape"].dump());
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      const uint64_t n = header_uint(d, path, name, "shape");
      if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (n != 0 && numel > std::numeric_limits<uint64_t>::max() / spec->itemsize / n))
        fail_tensor(path, name, "shape " + v["shape"].dump() + " overflows");
      numel *= n;
      info.shape.push_back(static_cast<int64_t>(n));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2)
      fail_tensor(path, name, "data_offsets must be [begin, end], got " + off.dump());
    info.begin = header_uint(off[0], path, name, "data_offsets");
    info.end = header_uint(off[1], path, name, "data_offsets");
    if (info.end < info.begin)
      fail_tensor(path, name, "data_offsets " + off.dump() + " end before they begin");
    const uint64_t bytes = numel * spec->itemsize;
    if (info.end - info.begin != bytes)
      fail_tensor(path, name,
                  "shape " + v["shape"].dump() + " x " + std::to_string(spec->itemsize) + " bytes (" + info.dtype +
                      ") = " + std::to_string(bytes) + " bytes, but data_offsets " + off.dump() + " span " +
                      std::to_string(info.end - info.begin));
    if (info.end > data_size)
      fail_tensor(path, name,
                  "data_offsets " + off.dump() + " run past the end of the data (" + std::to_string(data_size) +
                      " bytes after the header): the file is truncated or the header is wrong");
    tensors_.push_back(std::move(info));
  }

  // ------------------------------------------------------------------------------------------ no two overlapping
  std::sort(tensors_.begin(), tensors_.end(), [](const SafetensorsInfo& a, const SafetensorsInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered_end = 0;
  const SafetensorsInfo* covering = nullptr;
  for (const auto& t : tensors_) {
    if (t.begin < t.end && t.begin < covered_end)
      fail_tensor(path, t.name,
                  "bytes [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + ") overlap tensor '" +
                      covering->name + "' [" + std::to_string(covering->begin) + ", " +
                      std::to_string(covering->end) + ")");
    if (t.end > covered_end) {
      covered_end = t.end;
      covering = &t;
    }
  }
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() = default;  // the mapping goes with the last of mapping_'s owners

SafetensorsFile::Mapped SafetensorsFile::mapped(const std::string& name) const {
  const SafetensorsInfo& t = info(name);
  return {map_ + data_start_ + t.begin, t.end - t.begin, mapping_};
}

void SafetensorsFile::will_need() const {
  ::madvise(const_cast<unsigned char*>(map_), map_size_, MADV_WILLNEED);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& t : tensors_) out.push_back(t.name);
  return out;
}

const SafetensorsInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    fail_tensor(path_, name, "not in this file (it holds " + std::to_string(tensors_.size()) + " tensors)");
  return tensors_[it->second];
}

torch::Tensor SafetensorsFile::load(const std::string& name) const {
  const SafetensorsInfo& t = info(name);
  const DtypeSpec* spec = find_dtype(t.dtype);
  // Copied out rather than wrapped: the data buffer need not be aligned for the dtype, and the tensor must outlive
  // the mapping.
  torch::Tensor out = torch::empty(t.shape, torch::TensorOptions().dtype(spec->torch_type));
  const unsigned char* src = map_ + data_start_ + t.begin;
  if (t.end > t.begin) std::memcpy(out.data_ptr(), src, t.end - t.begin);  // an empty tensor has no data pointer
  // The copy is ours now: hand the mapped pages back (they stay in the page cache), so reading a model tensor by
  // tensor keeps resident memory at what the caller holds, not the whole file.
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(src) + page - 1) / page * page;
  const uintptr_t hi = reinterpret_cast<uintptr_t>(src + (t.end - t.begin)) / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  if (t.dtype == "BOOL") out = out.ne(0);  // any non-zero byte is true; a raw kBool byte outside {0,1} is undefined
  return out;
}

torch::Tensor SafetensorsFile::load_float(const std::string& name) const {
  const SafetensorsInfo& t = info(name);
  if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16")
    fail_tensor(path_, name, "dtype " + t.dtype + " is not a floating-point type (expected F32, F16 or BF16)");
  return load(name).to(torch::kFloat32);
}

// ------------------------------------------------------------------------------------------------------------ writer
namespace {

std::string natural_dtype(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return "F32";
    case torch::kFloat16: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    case torch::kInt8: return "I8";
    case torch::kUInt8: return "U8";
    case torch::kBool: return "BOOL";
    default: return "";
  }
}

// Writes all `size` bytes at `offset`, or throws naming the file (a short write on a full disk included).
void write_at(int fd, const std::string& file, const void* data, uint64_t size, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw std::runtime_error("writing safetensors file: write failed on '" + file + "': " +
                               (n < 0 ? std::strerror(errno) : "no progress") + " (disk full?)");
    p += n, size -= uint64_t(n), offset += uint64_t(n);
  }
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<SafetensorsInfo>& layout,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), layout_(layout), written_(layout.size(), false) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < layout_.size(); ++i) {
    SafetensorsInfo& e = layout_[i];
    if (e.name.empty() || e.name == "__metadata__") fail("invalid tensor name '" + e.name + "'");
    if (header.contains(e.name)) fail("tensor '" + e.name + "' given twice");
    const DtypeSpec* spec = find_dtype(e.dtype);
    if (!spec) fail("tensor '" + e.name + "': unsupported dtype '" + e.dtype + "' (supported: " + supported_dtypes() + ")");
    uint64_t numel = 1;
    for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
    e.begin = offset;
    e.end = offset + numel * spec->itemsize;
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
    index_[e.name] = i;
    offset = e.end;
  }
  std::string text = header.dump();
  text.append((64 - (8 + text.size()) % 64) % 64, ' ');  // data buffer starts 64-byte aligned
  data_start_ = 8 + text.size();

  namespace fs = std::filesystem;
  const fs::path final_path(path);
  if (final_path.has_parent_path() && !fs::is_directory(final_path.parent_path()))
    fail("folder '" + final_path.parent_path().string() + "' does not exist");
  tmp_ = path + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create temporary file '" + tmp_ + "': " + std::strerror(errno));
  std::string head(8, '\0');
  const uint64_t n = text.size();
  std::memcpy(head.data(), &n, 8);
  head += text;
  try {
    write_at(fd_, tmp_, head.data(), head.size(), 0);
  } catch (...) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void SafetensorsWriter::fail(const std::string& what) const {
  throw std::runtime_error("writing safetensors file '" + path_ + "': " + what);
}

void SafetensorsWriter::put(const std::string& name, const torch::Tensor& tensor) {
  auto it = index_.find(name);
  if (it == index_.end()) fail("tensor '" + name + "' is not in the file's layout");
  if (written_[it->second]) fail("tensor '" + name + "' written twice");
  const SafetensorsInfo& e = layout_[it->second];
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  if (e.dtype == "BOOL") t = t.to(torch::kUInt8);  // one byte each, 0 or 1
  if (t.sizes().vec() != e.shape || uint64_t(t.numel()) * t.element_size() != e.end - e.begin)
    fail("tensor '" + name + "' does not have the shape and dtype its header entry declares");
  write_at(fd_, tmp_, t.data_ptr(), e.end - e.begin, data_start_ + e.begin);
  written_[it->second] = true;
}

void SafetensorsWriter::commit() {
  for (size_t i = 0; i < layout_.size(); ++i)
    if (!written_[i]) fail("tensor '" + layout_[i].name + "' was never written");
  if (::fsync(fd_) != 0) fail("cannot sync '" + tmp_ + "': " + std::strerror(errno) + " (disk full?)");
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("cannot close '" + tmp_ + "': " + std::strerror(errno) + " (disk full?)");
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail("cannot rename '" + tmp_ + "' into place: " + std::strerror(errno));
  committed_ = true;
}

void write_safetensors_streaming(const std::string& path, const std::vector<SafetensorsInfo>& layout,
                                 const std::function<torch::Tensor(size_t)>& produce,
                                 const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter writer(path, layout, metadata);
  for (size_t i = 0; i < layout.size(); ++i) writer.put(layout[i].name, produce(i));
  writer.commit();
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  auto wfail = [&](const std::string& what) {
    throw std::runtime_error("writing safetensors file '" + path + "': " + what);
  };
  std::vector<SafetensorsInfo> layout;
  for (const auto& e : tensors) {
    if (!e.tensor.defined()) wfail("tensor '" + e.name + "' is undefined");
    const std::string natural = natural_dtype(e.tensor);
    std::string dtype = e.dtype.empty() ? natural : e.dtype;
    if (natural.empty())
      wfail("tensor '" + e.name + "' has torch dtype " + std::string(c10::toString(e.tensor.scalar_type())) +
            ", which safetensors writing does not support (supported: " + supported_dtypes() + ")");
    if (dtype == "U32" ? natural != "I32" : dtype != natural)
      wfail("tensor '" + e.name + "': dtype '" + dtype + "' does not fit its torch dtype " +
            std::string(c10::toString(e.tensor.scalar_type())) + " (only U32 overrides, for an int32 tensor)");
    SafetensorsInfo info;
    info.name = e.name;
    info.dtype = dtype;
    info.shape = e.tensor.sizes().vec();
    layout.push_back(info);
  }
  write_safetensors_streaming(path, layout, [&](size_t i) { return tensors[i].tensor; }, metadata);
}

}  // namespace bmos
