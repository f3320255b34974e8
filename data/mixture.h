// The training stream: blocks from several sources (data/token_stream.h) mixed by weight, shuffled by seed, resumable.
//
//   auto sources = prepare_data(data_spec(job), *tok, {});             // data/prepare.h, trainer/job/job_data.h
//   MixtureStream stream(sources, stream_options(job, *tok), job.run.seed);
//   Batch b = stream.next_batch(8);                                    // b.tokens (8, T + 1) int64
//   inputs = b.tokens.narrow(1, 0, T); targets = b.tokens.narrow(1, 1, T);
//   checkpoint: save stream.cursor().to_json(); resume: stream.restore(DataCursor::from_json(text)).
//
// Mixing is deterministic and exact: block k (counting from 0 over the whole run) comes from the source s with the
// largest deficit w_s * (k + 1) - served_s (weights normalised to sum 1; ties to the lower index), so after n blocks
// every source has served within one block of w_s * n. Within a source, blocks are visited in a random permutation
// per epoch (a pass over all its blocks), drawn from (seed, source name, epoch); a source that runs out starts its
// next epoch with a fresh permutation while the others go on. The whole state is the per-source block counts: the
// cursor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "data/prepare.h"
#include "data/token_stream.h"

namespace bmos {

// Where a stream is: saved in checkpoints, restored on resume.
struct DataCursor {
  uint64_t blocks = 0;                 // blocks served in total
  std::vector<uint64_t> served;        // per source (job order), blocks served
  std::string stream;                  // what the stream was (seq_len, seed, sources, sizes): restore checks it
  std::string to_json() const;
  static DataCursor from_json(const std::string& text);  // throws on malformed text
};

struct Batch {
  torch::Tensor tokens;                // (B, T + 1) int64
  std::vector<int32_t> source;         // (B) index of each row's source
};

class MixtureStream {
 public:
  // Sources with weight 0 are never drawn (at least one must be positive). Throws as SourceStream does.
  MixtureStream(const std::vector<PreparedSource>& sources, const StreamOptions& options, uint64_t seed);
  ~MixtureStream();

  Batch next_batch(int64_t batch_size);
  const DataCursor& cursor() const { return cursor_; }
  // Continue exactly where `c` was taken. Throws when it was saved for another stream (the message shows both).
  void restore(const DataCursor& c);

  int64_t num_sources() const { return static_cast<int64_t>(sources_.size()); }
  const SourceStream& source(int64_t s) const { return *sources_[s]; }
  int64_t seq_len() const { return opt_.seq_len; }

 private:
  int64_t pick_source() const;
  int64_t block_index(int64_t s, uint64_t served);  // the block of source s served at that count

  StreamOptions opt_;
  uint64_t seed_;
  std::vector<std::unique_ptr<SourceStream>> sources_;
  std::vector<double> weights_;  // normalised
  DataCursor cursor_;
  // The current epoch's permutation of each source (recomputed when its epoch changes).
  std::vector<int64_t> perm_epoch_;
  std::vector<std::vector<int64_t>> perm_;
};

// The per-epoch block order of one source: a Fisher-Yates shuffle driven by splitmix64 (no std:: distribution, so
// the order is the same on every platform and library).
std::vector<int64_t> block_permutation(int64_t n, uint64_t seed, const std::string& source, uint64_t epoch);

}  // namespace bmos
