// Token shards: one HDF5 file per corpus file, holding its documents tokenized (no BOS/EOS: the training stream adds
// them as the job says).
//   /tokens       uint32 (N)      all documents' ids back to back; chunked (kShardChunkTokens), shuffle + deflate
//   /doc_offsets  uint64 (D + 1)  document d is tokens[doc_offsets[d] : doc_offsets[d+1]]; chunked, deflate
//   attributes on the root group (see ShardInfo): format_version, tokenizer_hash/kind/path, vocab_size,
//   source_file/size/mtime, reader (the corpus options), n_tokens, n_docs, bad_lines, text_bytes
// Written under a temporary name in the same folder and renamed when complete, so a crash never leaves a shard that
// looks finished. Readers refuse another format_version.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bmos {

inline constexpr int64_t kShardFormatVersion = 1;
inline constexpr int64_t kShardChunkTokens = 16384;  // 64 KB chunks: a 2k-token block decompresses at most 2

struct ShardInfo {
  int64_t format_version = kShardFormatVersion;
  std::string tokenizer_hash, tokenizer_kind, tokenizer_path;
  int64_t vocab_size = 0;
  std::string source_file;    // absolute path of the corpus file
  int64_t source_size = 0;    // bytes on disk
  int64_t source_mtime = 0;   // seconds since the epoch
  std::string reader;         // corpus options, e.g. "jsonl text_key=text skip_bad_lines=0"
  int64_t n_tokens = 0, n_docs = 0, bad_lines = 0, text_bytes = 0;
};

class ShardWriter {
 public:
  // Opens PATH.tmp-<pid> for writing; `info` gives everything but the counts, which finish() fills in.
  ShardWriter(const std::string& path, const ShardInfo& info);
  ~ShardWriter();  // removes the temporary file when finish() was not reached
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void add_document(const int32_t* ids, size_t n, int64_t text_bytes);
  void set_bad_lines(int64_t n) { info_.bad_lines = n; }
  // Flushes, writes the attributes, closes and renames to `path`. Returns the final info.
  ShardInfo finish();

 private:
  void flush_tokens();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, tmp_path_;
  ShardInfo info_;
  std::vector<uint32_t> tokens_;
  std::vector<uint64_t> offsets_;
  int64_t tokens_written_ = 0, offsets_written_ = 0;
  bool finished_ = false;
};

// Attributes only (cheap: no dataset is read). Throws naming the path for a missing/unreadable file or another
// format_version.
ShardInfo read_shard_info(const std::string& path);

class ShardReader {
 public:
  explicit ShardReader(const std::string& path);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const ShardInfo& info() const { return info_; }
  const std::vector<uint64_t>& doc_offsets() const { return offsets_; }  // (n_docs + 1)
  // tokens[start : start + count] into out.
  void read_tokens(int64_t start, int64_t count, uint32_t* out) const;
  std::vector<int32_t> document(int64_t d) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  ShardInfo info_;
  std::vector<uint64_t> offsets_;
};

}  // namespace bmos
