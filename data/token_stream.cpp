#include "data/token_stream.h"

#include <algorithm>
#include <stdexcept>

namespace bmos {

SourceStream::SourceStream(const std::string& name, const std::vector<std::string>& shards,
                           const StreamOptions& options)
    : name_(name), opt_(options) {
  if (opt_.seq_len < 1) throw std::runtime_error("data.seq_len must be at least 1, got " + std::to_string(opt_.seq_len));
  if (shards.empty()) throw std::runtime_error("source '" + name + "' has no token shards (run bmos data prepare)");
  int64_t raw = 0, longest = 0;
  for (const auto& path : shards) {
    shards_.push_back(std::make_unique<ShardReader>(path));
    const ShardReader& r = *shards_.back();
    if (tokenizer_hash_.empty()) tokenizer_hash_ = r.info().tokenizer_hash;
    if (r.info().tokenizer_hash != tokenizer_hash_)
      throw std::runtime_error(path + ": made with another tokenizer than " + shards.front() +
                               " (both in source '" + name + "'); delete the stale shard and prepare again");
    shard_token_start_.push_back(raw);
    const auto& off = r.doc_offsets();
    for (size_t d = 0; d + 1 < off.size(); ++d) {
      doc_start_.push_back(raw + static_cast<int64_t>(off[d]));
      longest = std::max<int64_t>(longest, off[d + 1] - off[d]);
    }
    raw += r.info().n_tokens;
  }
  shard_token_start_.push_back(raw);
  doc_start_.push_back(raw);
  const int64_t specials = (opt_.add_bos ? 1 : 0) + (opt_.add_eos ? 1 : 0);
  stream_len_ = raw + specials * num_docs();
  num_blocks_ = stream_len_ > 0 ? (stream_len_ - 1) / opt_.seq_len : 0;
  if (num_blocks_ == 0)
    throw std::runtime_error("source '" + name + "' has " + std::to_string(stream_len_) + " tokens in " +
                             std::to_string(num_docs()) + " documents (longest document: " + std::to_string(longest) +
                             " tokens), fewer than one block of seq_len + 1 = " + std::to_string(opt_.seq_len + 1) +
                             " tokens; lower data.seq_len or give the source more text");
}

SourceStream::~SourceStream() = default;

void SourceStream::read_raw(int64_t start, int64_t count, uint32_t* out) const {
  // The range may cross shards: read each shard's part.
  while (count > 0) {
    const size_t s = std::upper_bound(shard_token_start_.begin(), shard_token_start_.end(), start) -
                     shard_token_start_.begin() - 1;
    const int64_t local = start - shard_token_start_[s];
    const int64_t take = std::min(count, shard_token_start_[s + 1] - start);
    shards_[s]->read_tokens(local, take, out);
    out += take;
    start += take;
    count -= take;
  }
}

void SourceStream::read_block(int64_t i, int64_t* out) const {
  if (i < 0 || i >= num_blocks_)
    throw std::runtime_error("source '" + name_ + "': block " + std::to_string(i) + " of " + std::to_string(num_blocks_));
  const int64_t nb = opt_.add_bos ? 1 : 0, specials = nb + (opt_.add_eos ? 1 : 0);
  const int64_t first = i * opt_.seq_len, need = opt_.seq_len + 1;
  // Document d occupies stream positions [doc_start_[d] + d*specials, doc_start_[d+1] + (d+1)*specials).
  const auto vstart = [&](int64_t d) { return doc_start_[d] + d * specials; };
  int64_t lo = 0, hi = num_docs() - 1;  // last document whose stream start <= first
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (vstart(mid) <= first) lo = mid;
    else hi = mid - 1;
  }
  // The raw tokens this block can touch: from the first document's covered part to at most `need` further tokens.
  const int64_t d0 = lo;
  const int64_t raw_lo = doc_start_[d0] + std::max<int64_t>(0, first - vstart(d0) - nb);
  const int64_t raw_hi = std::min(doc_start_.back(), raw_lo + need);
  scratch_.resize(raw_hi - raw_lo);
  read_raw(raw_lo, raw_hi - raw_lo, scratch_.data());
  int64_t pos = first, n = 0;
  for (int64_t d = d0; n < need; ++d) {
    const int64_t len = doc_start_[d + 1] - doc_start_[d];
    const int64_t base = vstart(d);  // stream position of this document's first slot ([BOS] or first token)
    for (int64_t k = pos - base; k < len + specials && n < need; ++k, ++pos) {
      if (opt_.add_bos && k == 0) out[n++] = opt_.bos_id;
      else if (k - nb < len) out[n++] = scratch_[doc_start_[d] + (k - nb) - raw_lo];
      else out[n++] = opt_.eos_id;
    }
  }
}

}  // namespace bmos
