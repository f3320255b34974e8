#include "data/token_shard.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace bmos {

namespace {

// Owns one HDF5 id and closes it with the matching H5?close.
class H5Id {
 public:
  H5Id() = default;
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Id(H5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Id& operator=(H5Id&& o) noexcept {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
    return *this;
  }
  ~H5Id() { reset(); }
  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

void check(herr_t status, const std::string& path, const char* what) {
  if (status < 0) throw std::runtime_error(path + ": HDF5 failed to " + what + " (disk full? permissions?)");
}

H5Id checked(hid_t id, herr_t (*close)(hid_t), const std::string& path, const char* what) {
  if (id < 0) throw std::runtime_error(path + ": HDF5 failed to " + what);
  return H5Id(id, close);
}

void write_int_attr(hid_t obj, const char* name, int64_t v, const std::string& path) {
  H5Id space = checked(H5Screate(H5S_SCALAR), H5Sclose, path, "create a dataspace");
  H5Id attr = checked(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose, path,
                      "create an attribute");
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &v), path, "write an attribute");
}

void write_str_attr(hid_t obj, const char* name, const std::string& v, const std::string& path) {
  H5Id type = checked(H5Tcopy(H5T_C_S1), H5Tclose, path, "copy a string type");
  check(H5Tset_size(type.get(), std::max<size_t>(v.size(), 1)), path, "size a string type");
  H5Id space = checked(H5Screate(H5S_SCALAR), H5Sclose, path, "create a dataspace");
  H5Id attr = checked(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose, path,
                      "create an attribute");
  std::string buf = v.empty() ? std::string(1, '\0') : v;
  check(H5Awrite(attr.get(), type.get(), buf.data()), path, "write an attribute");
}

int64_t read_int_attr(hid_t obj, const char* name, const std::string& path) {
  if (H5Aexists(obj, name) <= 0)
    throw std::runtime_error(path + ": not a binarymos token shard (attribute '" + name + "' missing); delete it");
  H5Id attr = checked(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, path, "open an attribute");
  int64_t v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), path, "read an attribute");
  return v;
}

std::string read_str_attr(hid_t obj, const char* name, const std::string& path) {
  if (H5Aexists(obj, name) <= 0)
    throw std::runtime_error(path + ": not a binarymos token shard (attribute '" + name + "' missing); delete it");
  H5Id attr = checked(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, path, "open an attribute");
  H5Id type = checked(H5Aget_type(attr.get()), H5Tclose, path, "read an attribute type");
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0)
    throw std::runtime_error(path + ": attribute '" + name + "' is not a fixed-length string");
  std::string buf(H5Tget_size(type.get()), '\0');
  check(H5Aread(attr.get(), type.get(), buf.data()), path, "read an attribute");
  const size_t nul = buf.find('\0');
  if (nul != std::string::npos) buf.resize(nul);
  return buf;
}

// An extendable 1-D dataset, chunked and compressed.
H5Id create_dataset(hid_t file, const char* name, hid_t type, hsize_t chunk, bool shuffle, const std::string& path) {
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED;
  H5Id space = checked(H5Screate_simple(1, &zero, &unlimited), H5Sclose, path, "create a dataspace");
  H5Id dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path, "create a property list");
  check(H5Pset_chunk(dcpl.get(), 1, &chunk), path, "set the chunk size");
  if (shuffle) check(H5Pset_shuffle(dcpl.get()), path, "set the shuffle filter");
  check(H5Pset_deflate(dcpl.get(), 1), path, "set deflate compression (is HDF5 built with zlib?)");
  return checked(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose, path,
                 "create a dataset");
}

void append(hid_t dset, hid_t mem_type, const void* data, hsize_t n, int64_t& written, const std::string& path) {
  if (n == 0) return;
  const hsize_t start = written, total = written + n;
  check(H5Dset_extent(dset, &total), path, "extend a dataset");
  H5Id fspace = checked(H5Dget_space(dset), H5Sclose, path, "get a dataspace");
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr), path, "select a range");
  H5Id mspace = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, path, "create a dataspace");
  check(H5Dwrite(dset, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, data), path, "write data");
  written = static_cast<int64_t>(total);
}

void read_range(hid_t dset, hid_t mem_type, int64_t start, int64_t count, void* out, const std::string& path) {
  if (count <= 0) return;
  const hsize_t s = start, n = count;
  H5Id fspace = checked(H5Dget_space(dset), H5Sclose, path, "get a dataspace");
  hsize_t size = 0;
  H5Sget_simple_extent_dims(fspace.get(), &size, nullptr);
  if (s + n > size)
    throw std::runtime_error(path + ": read of [" + std::to_string(s) + ", " + std::to_string(s + n) +
                             ") past the end of a dataset of " + std::to_string(size));
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &s, nullptr, &n, nullptr), path, "select a range");
  H5Id mspace = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, path, "create a dataspace");
  check(H5Dread(dset, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, out), path, "read data");
}

H5Id open_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw std::runtime_error(path + ": token shard not found (run bmos data prepare)");
  hid_t id;
  H5E_BEGIN_TRY { id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); }
  H5E_END_TRY;
  if (id < 0) throw std::runtime_error(path + ": not an HDF5 file (a damaged shard? delete it and prepare again)");
  return H5Id(id, H5Fclose);
}

ShardInfo read_info(hid_t file, const std::string& path) {
  ShardInfo info;
  info.format_version = read_int_attr(file, "format_version", path);
  if (info.format_version != kShardFormatVersion)
    throw std::runtime_error(path + ": token shard format version " + std::to_string(info.format_version) +
                             ", this build reads version " + std::to_string(kShardFormatVersion) +
                             "; delete the shard and run bmos data prepare");
  info.tokenizer_hash = read_str_attr(file, "tokenizer_hash", path);
  info.tokenizer_kind = read_str_attr(file, "tokenizer_kind", path);
  info.tokenizer_path = read_str_attr(file, "tokenizer_path", path);
  info.vocab_size = read_int_attr(file, "vocab_size", path);
  info.source_file = read_str_attr(file, "source_file", path);
  info.source_size = read_int_attr(file, "source_size", path);
  info.source_mtime = read_int_attr(file, "source_mtime", path);
  info.reader = read_str_attr(file, "reader", path);
  info.n_tokens = read_int_attr(file, "n_tokens", path);
  info.n_docs = read_int_attr(file, "n_docs", path);
  info.bad_lines = read_int_attr(file, "bad_lines", path);
  info.text_bytes = read_int_attr(file, "text_bytes", path);
  return info;
}

}  // namespace

// ------------------------------------------------------------------------------------------------------- writer
struct ShardWriter::Impl {
  H5Id file, tokens, offsets;
};

ShardWriter::ShardWriter(const std::string& path, const ShardInfo& info)
    : impl_(std::make_unique<Impl>()), path_(path), info_(info) {
  tmp_path_ = path + ".tmp-" + std::to_string(getpid());
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  hid_t f;
  H5E_BEGIN_TRY { f = H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT); }
  H5E_END_TRY;
  if (f < 0) throw std::runtime_error(tmp_path_ + ": cannot create a token shard (check data.cache_dir is writable)");
  impl_->file = H5Id(f, H5Fclose);
  impl_->tokens = create_dataset(f, "tokens", H5T_STD_U32LE, kShardChunkTokens, true, tmp_path_);
  impl_->offsets = create_dataset(f, "doc_offsets", H5T_STD_U64LE, 8192, false, tmp_path_);
  info_.n_tokens = info_.n_docs = info_.text_bytes = 0;
  offsets_.push_back(0);
}

ShardWriter::~ShardWriter() {
  if (finished_) return;
  impl_.reset();  // close before removing
  std::error_code ec;
  std::filesystem::remove(tmp_path_, ec);
}

void ShardWriter::add_document(const int32_t* ids, size_t n, int64_t text_bytes) {
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= info_.vocab_size)
      throw std::runtime_error(tmp_path_ + ": token id " + std::to_string(ids[i]) + " outside the vocabulary of " +
                               std::to_string(info_.vocab_size));
    tokens_.push_back(static_cast<uint32_t>(ids[i]));
  }
  info_.n_tokens += n;
  info_.n_docs += 1;
  info_.text_bytes += text_bytes;
  offsets_.push_back(static_cast<uint64_t>(info_.n_tokens));
  if (tokens_.size() >= static_cast<size_t>(kShardChunkTokens) * 64 || offsets_.size() >= 65536) flush_tokens();
}

void ShardWriter::flush_tokens() {
  append(impl_->tokens.get(), H5T_NATIVE_UINT32, tokens_.data(), tokens_.size(), tokens_written_, tmp_path_);
  append(impl_->offsets.get(), H5T_NATIVE_UINT64, offsets_.data(), offsets_.size(), offsets_written_, tmp_path_);
  tokens_.clear();
  offsets_.clear();
}

ShardInfo ShardWriter::finish() {
  flush_tokens();
  const hid_t f = impl_->file.get();
  write_int_attr(f, "format_version", info_.format_version, tmp_path_);
  write_str_attr(f, "tokenizer_hash", info_.tokenizer_hash, tmp_path_);
  write_str_attr(f, "tokenizer_kind", info_.tokenizer_kind, tmp_path_);
  write_str_attr(f, "tokenizer_path", info_.tokenizer_path, tmp_path_);
  write_int_attr(f, "vocab_size", info_.vocab_size, tmp_path_);
  write_str_attr(f, "source_file", info_.source_file, tmp_path_);
  write_int_attr(f, "source_size", info_.source_size, tmp_path_);
  write_int_attr(f, "source_mtime", info_.source_mtime, tmp_path_);
  write_str_attr(f, "reader", info_.reader, tmp_path_);
  write_int_attr(f, "n_tokens", info_.n_tokens, tmp_path_);
  write_int_attr(f, "n_docs", info_.n_docs, tmp_path_);
  write_int_attr(f, "bad_lines", info_.bad_lines, tmp_path_);
  write_int_attr(f, "text_bytes", info_.text_bytes, tmp_path_);
  impl_->tokens.reset();
  impl_->offsets.reset();
  check(H5Fflush(f, H5F_SCOPE_GLOBAL), tmp_path_, "flush the file");
  impl_->file.reset();
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) throw std::runtime_error(tmp_path_ + ": cannot rename to " + path_ + " (" + ec.message() + ")");
  finished_ = true;
  return info_;
}

// ------------------------------------------------------------------------------------------------------- reader
ShardInfo read_shard_info(const std::string& path) {
  H5Id file = open_file(path);
  return read_info(file.get(), path);
}

struct ShardReader::Impl {
  H5Id file, tokens;
};

ShardReader::ShardReader(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  impl_->file = open_file(path);
  info_ = read_info(impl_->file.get(), path);
  impl_->tokens = checked(H5Dopen2(impl_->file.get(), "tokens", H5P_DEFAULT), H5Dclose, path, "open /tokens");
  H5Id offsets = checked(H5Dopen2(impl_->file.get(), "doc_offsets", H5P_DEFAULT), H5Dclose, path,
                         "open /doc_offsets");
  offsets_.resize(info_.n_docs + 1);
  read_range(offsets.get(), H5T_NATIVE_UINT64, 0, info_.n_docs + 1, offsets_.data(), path);
  if (offsets_.front() != 0 || offsets_.back() != static_cast<uint64_t>(info_.n_tokens))
    throw std::runtime_error(path + ": doc_offsets do not span the tokens (damaged shard: delete it and prepare again)");
}

ShardReader::~ShardReader() = default;

void ShardReader::read_tokens(int64_t start, int64_t count, uint32_t* out) const {
  read_range(impl_->tokens.get(), H5T_NATIVE_UINT32, start, count, out, path_);
}

std::vector<int32_t> ShardReader::document(int64_t d) const {
  if (d < 0 || d >= info_.n_docs)
    throw std::runtime_error(path_ + ": document " + std::to_string(d) + " of " + std::to_string(info_.n_docs));
  const int64_t a = offsets_[d], b = offsets_[d + 1];
  std::vector<uint32_t> raw(b - a);
  read_tokens(a, b - a, raw.data());
  return std::vector<int32_t>(raw.begin(), raw.end());
}

}  // namespace bmos
