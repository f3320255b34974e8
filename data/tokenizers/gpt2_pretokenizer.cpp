#include "data/tokenizers/gpt2_pretokenizer.h"

#include "data/tokenizers/unicode_classes.h"

namespace bmos {

namespace {

using unicode::CharClass;

// The contraction at text[i] (which is '\''), or 0: 's 't 're 've 'm 'll 'd, case-sensitive, in the regex's order.
size_t contraction(const std::string& t, size_t i) {
  static const char* kSuffixes[] = {"s", "t", "re", "ve", "m", "ll", "d"};
  for (const char* s : kSuffixes) {
    const size_t n = std::char_traits<char>::length(s);
    if (t.compare(i + 1, n, s) == 0) return n + 1;
  }
  return 0;
}

}  // namespace

const char kGpt2Pattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(const std::string& text) {
  const unicode::ClassifiedText t = unicode::classify(text);  // code points with their classes, decoded once
  const auto& off = t.offset;
  const auto& cls = t.cls;
  const size_t n = t.size();

  std::vector<std::pair<size_t, size_t>> pieces;
  const auto run_end = [&](size_t k, CharClass c) {
    while (k < n && cls[k] == c) ++k;
    return k;
  };
  size_t k = 0;
  while (k < n) {
    size_t end = k;  // in code points
    const bool space_prefix = text[off[k]] == ' ' && k + 1 < n;
    if (text[off[k]] == '\'' && contraction(text, off[k]) > 0) {
      const size_t bytes = contraction(text, off[k]);
      pieces.emplace_back(off[k], bytes);
      k = k + bytes;  // the suffix letters are ASCII: one code point per byte
      continue;
    }
    if (cls[k] == CharClass::kLetter || cls[k] == CharClass::kNumber || cls[k] == CharClass::kOther) {
      end = run_end(k, cls[k]);  // \p{L}+ | \p{N}+ | [^\s\p{L}\p{N}]+
    } else if (space_prefix && cls[k + 1] != CharClass::kSpace) {
      end = run_end(k + 1, cls[k + 1]);  // " ?" then the run of the next class
    } else {
      // \s+(?!\S): the whole whitespace run when it ends the text or is followed by... only whitespace can follow
      // the run's last character, so the run minus its last character (if >= 2), else \s+ takes the single one.
      const size_t e = run_end(k, CharClass::kSpace);
      end = (e == n || e - k < 2) ? e : e - 1;
    }
    pieces.emplace_back(off[k], off[end] - off[k]);
    k = end;
  }
  return pieces;
}

}  // namespace bmos
