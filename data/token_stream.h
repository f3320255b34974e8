// One source's token shards seen as fixed-length training blocks.
// The source's documents, in shard order, are concatenated as [BOS] doc [EOS] (each marker when configured) into one
// virtual stream of L tokens. Block i is stream[i*T : i*T + T + 1] (T = seq_len): T + 1 tokens so the shifted target
// needs no token of the next block (inputs = block[:T], targets = block[1:]); consecutive blocks share one token, so
// every stream token but the first is a target exactly once. Blocks cross document boundaries (packing); the tail
// shorter than T + 1 is dropped. Tokens are read from the shards on demand (bounded memory: only doc offsets are
// kept in RAM).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/token_shard.h"

namespace bmos {

struct StreamOptions {
  int64_t seq_len = 2048;     // T
  bool add_bos = true;
  bool add_eos = true;
  int32_t bos_id = 1, eos_id = 2;
};

class SourceStream {
 public:
  // Throws when a shard is missing or unreadable, when shards disagree on the tokenizer, and when the source is
  // shorter than one block (the message gives its size and longest document, and says to lower data.seq_len).
  SourceStream(const std::string& name, const std::vector<std::string>& shards, const StreamOptions& options);
  ~SourceStream();

  const std::string& name() const { return name_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t stream_tokens() const { return stream_len_; }  // L
  int64_t num_docs() const { return static_cast<int64_t>(doc_start_.size()) - 1; }
  const std::string& tokenizer_hash() const { return tokenizer_hash_; }
  // Block i (0 <= i < num_blocks) into out[0 .. seq_len]: seq_len + 1 ids.
  void read_block(int64_t i, int64_t* out) const;

 private:
  void read_raw(int64_t start, int64_t count, uint32_t* out) const;  // raw (shard-concatenated) token range

  std::string name_;
  StreamOptions opt_;
  std::vector<std::unique_ptr<ShardReader>> shards_;
  std::vector<int64_t> shard_token_start_;  // raw token index where each shard begins (+ total at the end)
  std::vector<int64_t> doc_start_;          // raw token index of each document's first token (+ total at the end)
  int64_t stream_len_ = 0, num_blocks_ = 0;
  std::string tokenizer_hash_;
  mutable std::vector<uint32_t> scratch_;
};

}  // namespace bmos
