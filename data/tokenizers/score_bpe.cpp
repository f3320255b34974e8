#include "data/tokenizers/score_bpe.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace bmos {

namespace {

// llama2.c starts its best score at -1e10: a pair scoring at or below it never merges.
constexpr float kNoMerge = -1e10f;

uint64_t short_key(const char* p, size_t len) {
  uint64_t k = 0;
  std::memcpy(&k, p, len);
  return k | (uint64_t(len) << 32);
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

void ScoreBpe::FlatMap::build(const std::unordered_map<uint64_t, int32_t>& from) {
  size_t cap = 16;
  while (cap < from.size() * 2) cap *= 2;
  keys_.assign(cap, 0);
  values_.assign(cap, -1);
  mask_ = cap - 1;
  for (const auto& [k, v] : from) {
    size_t i = hash(k) & mask_;
    while (values_[i] >= 0) i = (i + 1) & mask_;
    keys_[i] = k;
    values_[i] = v;
  }
}

ScoreBpe::ScoreBpe(const std::vector<std::string>& pieces, const std::vector<float>& scores,
                   const std::vector<bool>& mergeable, int32_t byte_piece0)
    : scores_(scores), byte_piece0_(byte_piece0) {
  std::unordered_map<std::string, int32_t> ids;  // every piece, first id wins (as a sorted-vocab bsearch finds one)
  for (size_t i = 0; i < pieces.size(); ++i) ids.emplace(pieces[i], static_cast<int32_t>(i));
  std::unordered_map<uint64_t, int32_t> code_points, pairs;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const std::string& p = pieces[i];
    if (!mergeable[i] || ids.at(p) != static_cast<int32_t>(i)) continue;
    if (p.size() >= 1 && p.size() <= 4) code_points.emplace(short_key(p.data(), p.size()), static_cast<int32_t>(i));
    for (size_t k = 1; k < p.size(); ++k) {
      const auto a = ids.find(p.substr(0, k)), b = ids.find(p.substr(k));
      if (a != ids.end() && b != ids.end() && scores_[i] > kNoMerge)
        pairs.emplace(pair_key(a->second, b->second), static_cast<int32_t>(i));
    }
  }
  code_points_.build(code_points);
  pairs_.build(pairs);
  for (int c = 0; c < 128; ++c) {
    const char ch = static_cast<char>(c);
    ascii_[c] = code_points_.find(short_key(&ch, 1));
  }
  space_ = ascii_[' '];
  split_words_ = true;
  for (size_t i = 0; i < pieces.size() && split_words_; ++i)
    for (size_t k = 1; k < pieces[i].size(); ++k)
      if (pieces[i][k] == ' ' && pieces[i][k - 1] != ' ') split_words_ = false;
  static std::atomic<uint64_t> instances{0};
  instance_ = ++instances;
}

void ScoreBpe::append_initial(const char* text, size_t n, std::vector<int32_t>& ids) const {
  size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80 && (i + 1 == n || (static_cast<unsigned char>(text[i + 1]) & 0xC0) != 0x80)) {
      ids.push_back(ascii_[c] >= 0 ? ascii_[c] : byte_piece0_ + c);  // the common case: one ASCII byte
      ++i;
      continue;
    }
    size_t len = 1;
    while (i + len < n && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80 && len < 4) ++len;
    const int32_t id = code_points_.find(short_key(text + i, len));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t b = 0; b < len; ++b) ids.push_back(byte_piece0_ + static_cast<unsigned char>(text[i + b]));
    }
    i += len;
  }
}

namespace {

struct MergePair {
  float score;
  int left, right;
  int32_t left_id, right_id, merged;
};

// Heap order: the highest score on top, then the leftmost.
bool worse(const MergePair& a, const MergePair& b) { return a.score != b.score ? a.score < b.score : a.left > b.left; }

// Scratch space of merge(), kept per thread: encoding a word allocates nothing once these have grown.
struct MergeScratch {
  std::vector<int32_t> prev, next;
  std::vector<char> alive;
  std::vector<MergePair> heap;
};

// A direct-mapped cache of encoded short words, per thread: natural text repeats its words, and a hit skips the
// merges. A slot remembers which encoder (instance id) and which word it holds, so a hit is always exact.
struct WordCache {
  static constexpr size_t kSlots = size_t(1) << 16;
  static constexpr size_t kMaxWord = 40, kMaxIds = 20;
  struct Slot {
    uint64_t owner = 0;  // 0: empty
    uint64_t hash = 0;
    uint8_t len = 0, n = 0;
    bool prefix = false;
    char word[kMaxWord];
    int32_t ids[kMaxIds];
  };
  std::vector<Slot> slots = std::vector<Slot>(kSlots);
};

uint64_t word_hash(const char* p, size_t n, bool prefix) {
  uint64_t h = prefix ? 0x9E3779B97F4A7C15ull : 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
  return h ^ (h >> 29);
}

}  // namespace

void ScoreBpe::merge(std::vector<int32_t>& id) const {
  // Symbols in a linked list; candidate pairs in a heap ordered by score, then by the left symbol's original index
  // (merges keep the symbols' order, so that index orders them as llama2.c's left-to-right scan does). A stale entry
  // (a side merged away since) is recognised by the ids it was made from.
  const int n = static_cast<int>(id.size());
  if (n < 2) return;
  thread_local MergeScratch scratch;
  auto& prev = scratch.prev;
  auto& next = scratch.next;
  auto& alive = scratch.alive;
  auto& heap = scratch.heap;
  prev.resize(n);
  next.resize(n);
  alive.assign(n, 1);
  heap.clear();
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const auto push = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const int32_t m = pairs_.find(pair_key(id[l], id[r]));
    if (m < 0) return;
    heap.push_back({scores_[m], l, r, id[l], id[r], m});
    std::push_heap(heap.begin(), heap.end(), worse);
  };
  for (int i = 0; i + 1 < n; ++i) push(i, i + 1);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), worse);
    const MergePair p = heap.back();
    heap.pop_back();
    if (!alive[p.left] || !alive[p.right] || next[p.left] != p.right || id[p.left] != p.left_id ||
        id[p.right] != p.right_id)
      continue;
    id[p.left] = p.merged;
    alive[p.right] = 0;
    next[p.left] = next[p.right];
    if (next[p.right] >= 0) prev[next[p.right]] = p.left;
    push(prev[p.left], p.left);
    push(p.left, next[p.left]);
  }
  int k = 0;
  for (int i = 0; i >= 0; i = next[i]) id[k++] = id[i];
  id.resize(k);
}

void ScoreBpe::encode_word(const char* text, size_t n, bool dummy_prefix, std::vector<int32_t>& out) const {
  thread_local WordCache cache;
  thread_local std::vector<int32_t> ids;
  WordCache::Slot* slot = nullptr;
  uint64_t h = 0;
  if (n <= WordCache::kMaxWord) {
    h = word_hash(text, n, dummy_prefix);
    slot = &cache.slots[h & (WordCache::kSlots - 1)];
    if (slot->owner == instance_ && slot->hash == h && slot->len == n && slot->prefix == dummy_prefix &&
        std::memcmp(slot->word, text, n) == 0) {
      out.insert(out.end(), slot->ids, slot->ids + slot->n);
      return;
    }
  }
  ids.clear();
  if (dummy_prefix && space_ >= 0) ids.push_back(space_);
  append_initial(text, n, ids);
  merge(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (slot != nullptr && ids.size() <= WordCache::kMaxIds) {
    slot->owner = instance_;
    slot->hash = h;
    slot->len = static_cast<uint8_t>(n);
    slot->prefix = dummy_prefix;
    std::memcpy(slot->word, text, n);
    slot->n = static_cast<uint8_t>(ids.size());
    std::copy(ids.begin(), ids.end(), slot->ids);
  }
}

std::vector<int32_t> ScoreBpe::encode(const std::string& text) const {
  std::vector<int32_t> out;
  if (text.empty()) return out;
  out.reserve(text.size() / 3 + 4);
  if (!split_words_) {
    encode_word(text.data(), text.size(), true, out);
    return out;
  }
  // Words start where a run of spaces starts (the dummy-prefix space joins the first word).
  size_t start = 0;
  for (size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || (text[i] == ' ' && text[i - 1] != ' ')) {
      encode_word(text.data() + start, i - start, start == 0, out);
      start = i;
    }
  }
  return out;
}

}  // namespace bmos
