#include "data/tokenizers/unicode_nfc.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "data/tokenizers/unicode_classes.h"

namespace bmos::unicode {

namespace {

// Hangul syllables compose and decompose by arithmetic (Unicode ch. 3.12), not by table.
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;
constexpr uint32_t kInvalid = 0x110000;  // kInvalid + byte: a byte that is not valid UTF-8

struct Tables {
  std::vector<bool> may_change;                    // per code point: NFC can change text that holds it
  std::unordered_map<uint64_t, uint32_t> compose;  // (first << 32 | second) -> composite
  Tables() : may_change(kInvalid, false) {
    for (size_t i = 0; i < kDecompositionCount; ++i) may_change[kDecompositions[i].cp] = true;
    for (size_t i = 0; i < kCombiningClassCount; ++i) may_change[kCombiningClasses[i].cp] = true;
    for (size_t i = 0; i < kCompositionCount; ++i) {
      const Composition& c = kCompositions[i];
      may_change[c.second] = true;
      compose.emplace(uint64_t(c.first) << 32 | c.second, c.composite);
    }
    for (uint32_t cp = kVBase; cp < kVBase + kVCount; ++cp) may_change[cp] = true;
    for (uint32_t cp = kTBase + 1; cp < kTBase + kTCount; ++cp) may_change[cp] = true;
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

// The code point at text[i] (kInvalid + byte for each byte of a malformed, overlong or surrogate sequence).
uint32_t next_code_point(const std::string& text, size_t i, size_t& len) {
  const uint32_t cp = decode_utf8(text, i, len);
  if (cp >= kInvalid || (cp >= 0xD800 && cp <= 0xDFFF) || len != utf8_length(cp)) {
    len = 1;
    return kInvalid + static_cast<unsigned char>(text[i]);
  }
  return cp;
}

uint8_t combining_rank(uint32_t cp) {
  const CombiningClass* end = kCombiningClasses + kCombiningClassCount;
  const CombiningClass* it =
      std::lower_bound(kCombiningClasses, end, cp, [](const CombiningClass& c, uint32_t v) { return c.cp < v; });
  return it != end && it->cp == cp ? it->rank : 0;
}

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + s % kNCount / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* end = kDecompositions + kDecompositionCount;
  const Decomposition* it =
      std::lower_bound(kDecompositions, end, cp, [](const Decomposition& d, uint32_t v) { return d.cp < v; });
  if (it == end || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  out.insert(out.end(), kDecompositionPool + it->offset, kDecompositionPool + it->offset + it->length);
}

// The composite of (first, second), or 0 when they do not compose.
uint32_t compose(const Tables& t, uint32_t first, uint32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount)
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
      second < kTBase + kTCount)
    return first + (second - kTBase);
  const auto it = t.compose.find(uint64_t(first) << 32 | second);
  return it == t.compose.end() ? 0 : it->second;
}

}  // namespace

std::string nfc(const std::string& text) {
  const Tables& t = tables();
  bool may_change = false;
  for (size_t i = 0, len = 1; i < text.size() && !may_change; i += len) {
    len = 1;
    if (static_cast<unsigned char>(text[i]) < 0x80) continue;
    const uint32_t cp = next_code_point(text, i, len);
    may_change = cp < kInvalid && t.may_change[cp];
  }
  if (!may_change) return text;

  // 1. Full canonical decomposition.
  std::vector<uint32_t> cps;
  cps.reserve(text.size() + 8);
  for (size_t i = 0, len = 1; i < text.size(); i += len) decompose(next_code_point(text, i, len), cps);
  // 2. Canonical ordering: each run of non-starters stably sorted by combining class.
  std::vector<uint8_t> rank(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) rank[i] = cps[i] < kInvalid ? combining_rank(cps[i]) : 0;
  for (size_t i = 1; i < cps.size(); ++i)
    for (size_t j = i; j > 0 && rank[j] != 0 && rank[j - 1] > rank[j]; --j) {
      std::swap(cps[j], cps[j - 1]);
      std::swap(rank[j], rank[j - 1]);
    }
  // 3. Canonical composition: each character joins the last starter unless something between blocks it (a starter,
  // or a mark of the same or a higher class).
  size_t out = 0, starter = 0;
  bool have_starter = false;
  uint8_t last_rank = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint8_t r = rank[i];
    const bool adjacent = have_starter && out == starter + 1;
    if (have_starter && (adjacent || (last_rank != 0 && last_rank < r))) {
      if (const uint32_t c = compose(t, cps[starter], cps[i]); c != 0) {
        cps[starter] = c;
        continue;
      }
    }
    if (r == 0) {
      starter = out;
      have_starter = true;
    }
    last_rank = r;
    rank[out] = r;
    cps[out++] = cps[i];
  }
  std::string result;
  result.reserve(text.size());
  for (size_t i = 0; i < out; ++i) {
    if (cps[i] >= kInvalid)
      result += static_cast<char>(cps[i] - kInvalid);
    else
      append_utf8(cps[i], result);
  }
  return result;
}

}  // namespace bmos::unicode
