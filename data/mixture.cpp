#include "data/mixture.h"

#include <cstdio>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "data/hash.h"

namespace bmos {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

// ------------------------------------------------------------------------------------------------------- cursor
std::string DataCursor::to_json() const {
  nlohmann::json j;
  j["blocks"] = blocks;
  j["served"] = served;
  j["stream"] = stream;
  return j.dump();
}

DataCursor DataCursor::from_json(const std::string& text) {
  DataCursor c;
  try {
    const auto j = nlohmann::json::parse(text);
    c.blocks = j.at("blocks").get<uint64_t>();
    c.served = j.at("served").get<std::vector<uint64_t>>();
    c.stream = j.at("stream").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("malformed data cursor (expected {blocks, served, stream}): ") + e.what());
  }
  return c;
}

// ------------------------------------------------------------------------------------------------------- stream
std::vector<int64_t> block_permutation(int64_t n, uint64_t seed, const std::string& source, uint64_t epoch) {
  uint64_t state = seed ^ fnv1a64(source);
  state = splitmix64(state) ^ epoch;
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(splitmix64(state)) * uint64_t(i + 1)) >> 64);
    std::swap(p[i], p[j]);
  }
  return p;
}

MixtureStream::MixtureStream(const std::vector<PreparedSource>& sources, const StreamOptions& options, uint64_t seed)
    : opt_(options), seed_(seed) {
  if (sources.empty()) throw std::runtime_error("the training stream needs at least one data source");
  for (const auto& s : sources)
    if (!(s.weight >= 0) && s.weight != DataSource::kWeightBySize)
      throw std::runtime_error("source '" + s.name + "' has a negative weight");
  char buf[96];
  std::snprintf(buf, sizeof buf, "seq_len=%lld bos=%d eos=%d seed=%llu", static_cast<long long>(opt_.seq_len),
                opt_.add_bos ? opt_.bos_id : -1, opt_.add_eos ? opt_.eos_id : -1,
                static_cast<unsigned long long>(seed));
  cursor_.stream = buf;
  const SourceStream* first = nullptr;  // the first opened source: every other must share its tokenizer
  std::vector<double> weights;          // as given, "size" replaced by the source's blocks
  double total = 0;
  for (const auto& s : sources) {
    if (s.weight == 0) {
      sources_.push_back(nullptr);  // never drawn, never opened
    } else {
      sources_.push_back(std::make_unique<SourceStream>(s.name, s.shards, opt_));
      if (!first) first = sources_.back().get();
      if (sources_.back()->tokenizer_hash() != first->tokenizer_hash())
        throw std::runtime_error("source '" + s.name + "' was tokenized with another tokenizer than source '" +
                                 first->name() + "'; prepare all sources with the job's tokenizer");
    }
    weights.push_back(s.weight == DataSource::kWeightBySize ? double(sources_.back()->num_blocks()) : s.weight);
    total += weights.back();
  }
  if (!(total > 0)) throw std::runtime_error("every data source has weight 0: give at least one a positive weight");
  for (size_t i = 0; i < sources.size(); ++i) {
    const PreparedSource& s = sources[i];
    weights_.push_back(weights[i] / total);
    std::snprintf(buf, sizeof buf, "%.6g", weights[i] / total);
    cursor_.stream += " | " + s.name + " w=" + buf + " blocks=" +
                      std::to_string(sources_[i] ? sources_[i]->num_blocks() : 0);
  }
  cursor_.served.assign(sources.size(), 0);
  perm_epoch_.assign(sources.size(), -1);
  perm_.resize(sources.size());
}

MixtureStream::~MixtureStream() = default;

int64_t MixtureStream::pick_source() const {
  int64_t best = -1;
  double best_deficit = 0;
  for (size_t s = 0; s < sources_.size(); ++s) {
    if (!sources_[s]) continue;
    const double deficit = weights_[s] * double(cursor_.blocks + 1) - double(cursor_.served[s]);
    if (best < 0 || deficit > best_deficit) {
      best = static_cast<int64_t>(s);
      best_deficit = deficit;
    }
  }
  return best;
}

int64_t MixtureStream::block_index(int64_t s, uint64_t served) {
  const auto n = static_cast<uint64_t>(sources_[s]->num_blocks());
  const auto epoch = static_cast<int64_t>(served / n);
  if (perm_epoch_[s] != epoch) {
    perm_[s] = block_permutation(static_cast<int64_t>(n), seed_, sources_[s]->name(), static_cast<uint64_t>(epoch));
    perm_epoch_[s] = epoch;
  }
  return perm_[s][served % n];
}

Batch MixtureStream::next_batch(int64_t batch_size) {
  if (batch_size < 1) throw std::runtime_error("batch size must be at least 1, got " + std::to_string(batch_size));
  const int64_t width = opt_.seq_len + 1;
  Batch b;
  b.tokens = torch::empty({batch_size, width}, torch::kInt64);  // (B, T + 1)
  int64_t* out = b.tokens.data_ptr<int64_t>();
  for (int64_t r = 0; r < batch_size; ++r) {
    const int64_t s = pick_source();
    sources_[s]->read_block(block_index(s, cursor_.served[s]), out + r * width);
    ++cursor_.served[s];
    ++cursor_.blocks;
    b.source.push_back(static_cast<int32_t>(s));
  }
  return b;
}

void MixtureStream::restore(const DataCursor& c) {
  if (c.stream != cursor_.stream || c.served.size() != cursor_.served.size())
    throw std::runtime_error("the data cursor was saved for another data stream:\n  saved: " + c.stream +
                             "\n  now:   " + cursor_.stream +
                             "\nresume needs the job's data section and shards unchanged (or start a new run)");
  uint64_t sum = 0;
  for (uint64_t v : c.served) sum += v;
  if (sum != c.blocks) throw std::runtime_error("malformed data cursor: per-source counts do not add up to blocks");
  cursor_ = c;
}

}  // namespace bmos
