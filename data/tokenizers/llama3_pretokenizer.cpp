#include "data/tokenizers/llama3_pretokenizer.h"

#include <algorithm>

#include "data/tokenizers/unicode_classes.h"

namespace bmos {

namespace {

using unicode::CharClass;

// The end (in code points) of the contraction (?i:'s|'t|'re|'ve|'m|'ll|'d) at code point k (an apostrophe), or k
// when there is none. Case-insensitive as the regex engines fold case: 's' also matches U+017F (long s).
size_t contraction_end(const std::string& text, const unicode::ClassifiedText& t, size_t k) {
  static const char* kSuffixes[] = {"s", "t", "re", "ve", "m", "ll", "d"};
  for (const char* s : kSuffixes) {
    size_t j = k + 1;
    for (const char* c = s; *c != '\0'; ++c, ++j) {
      if (j >= t.size()) break;
      size_t len = 0;
      const uint32_t cp = unicode::decode_utf8(text, t.offset[j], len);
      const bool same =
          cp == static_cast<uint32_t>(*c) || cp == static_cast<uint32_t>(*c - 'a' + 'A') || (*c == 's' && cp == 0x17F);
      if (!same) break;
      if (c[1] == '\0') return j + 1;
    }
  }
  return k;
}

}  // namespace

const char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kQwen2Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<std::pair<size_t, size_t>> llama3_pretokenize(const std::string& text, size_t max_digits) {
  const unicode::ClassifiedText t = unicode::classify(text);
  const auto& off = t.offset;
  const auto& cls = t.cls;
  const size_t n = t.size();
  const auto newline = [&](size_t k) { return text[off[k]] == '\r' || text[off[k]] == '\n'; };
  const auto run_end = [&](size_t k, CharClass c) {
    while (k < n && cls[k] == c) ++k;
    return k;
  };

  std::vector<std::pair<size_t, size_t>> pieces;
  size_t k = 0;
  while (k < n) {
    size_t end = text[off[k]] == '\'' ? contraction_end(text, t, k) : k;  // in code points
    if (end > k) {
      // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    } else if (cls[k] == CharClass::kLetter) {
      end = run_end(k, CharClass::kLetter);  // \p{L}+
    } else if (cls[k] != CharClass::kNumber && !newline(k) && k + 1 < n && cls[k + 1] == CharClass::kLetter) {
      end = run_end(k + 1, CharClass::kLetter);  // [^\r\n\p{L}\p{N}]\p{L}+
    } else if (cls[k] == CharClass::kNumber) {
      end = std::min(run_end(k, CharClass::kNumber), k + max_digits);  // \p{N}{1,3} or \p{N}
    } else if (cls[k] == CharClass::kOther || (text[off[k]] == ' ' && k + 1 < n && cls[k + 1] == CharClass::kOther)) {
      end = run_end(cls[k] == CharClass::kOther ? k : k + 1, CharClass::kOther);  //  ?[^\s\p{L}\p{N}]+
      while (end < n && newline(end)) ++end;                                      // [\r\n]*
    } else {
      // A whitespace run. \s*[\r\n]+ backtracks to its last \r or \n; without one, \s+(?!\S) takes the run when it
      // ends the text and all but its last character otherwise (that one may start the next piece, " word"), and
      // \s+ takes a lone character.
      const size_t e = run_end(k, CharClass::kSpace);
      size_t last_newline = e;
      for (size_t j = e; j > k; --j)
        if (newline(j - 1)) {
          last_newline = j - 1;
          break;
        }
      if (last_newline < e)
        end = last_newline + 1;
      else
        end = (e == n || e - k < 2) ? e : e - 1;
    }
    pieces.emplace_back(off[k], off[end] - off[k]);
    k = end;
  }
  return pieces;
}

}  // namespace bmos
