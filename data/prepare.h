// `bmos data prepare`: every corpus file of the job's sources becomes one token shard (data/token_shard.h) in
// <cache_dir>/<source name>/<file name>.<8 hex of its path's hash>.h5.
// A shard is up to date when its tokenizer hash, source file (path, size, mtime) and reader options all match; it is
// then skipped. A shard made with another tokenizer is refused (an error that says which and what to do), never
// overwritten silently; a shard whose source changed is rebuilt.
// Memory stays bounded: the file is read through a 1 MB buffer in batches of ~256 KB of text, tokenized by `threads`
// workers, written in order; at most threads + 1 batches are in flight.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/corpus_reader.h"
#include "data/token_shard.h"
#include "data/tokenizers/tokenizer.h"
#include "data/data_spec.h"

namespace bmos {

struct PreparedSource {
  std::string name;
  double weight = 1.0;
  std::vector<std::string> shards;  // one per file, in the job's file order
  int64_t tokens = 0, docs = 0, text_bytes = 0, bad_lines = 0;
};

struct PrepareStats {
  int64_t shards_written = 0, shards_skipped = 0;
  int64_t text_bytes = 0, tokens = 0, docs = 0;  // of the shards written in this call
  double seconds = 0;
};

struct PrepareOptions {
  int threads = 0;         // tokenizer workers; 0 = all cores
  bool progress = true;    // a progress line on stderr
  bool force = false;      // rebuild shards even when up to date (never one made with another tokenizer)
};

std::string shard_path(const std::string& cache_dir, const std::string& source_name, const std::string& file);
CorpusOptions corpus_options(const DataSource& source);

// Prepares every source of `spec` with `tok` (the job's tokenizer) into spec.cache_dir. Throws naming the source and
// file for a missing file, a malformed line, an empty source (no documents) and a shard made with another tokenizer.
std::vector<PreparedSource> prepare_data(const DataSpec& spec, const Tokenizer& tok, const PrepareOptions& options,
                                         PrepareStats* stats = nullptr);

// Tokenizes one corpus file into one shard (no up-to-date check). `progress` as above.
ShardInfo tokenize_file(const std::string& file, const CorpusOptions& corpus, const Tokenizer& tok,
                        const std::string& shard, int threads, bool progress);

}  // namespace bmos
