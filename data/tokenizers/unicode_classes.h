// The Unicode character classes the GPT-2 pre-tokenizer regex needs: \p{L}, \p{N} and \s (White_Space), and UTF-8
// code point decoding. The L/N tables are generated (data/tokenizers/unicode_classes_table.cpp, scripts/make_unicode_classes.mjs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bmos::unicode {

struct Range {
  uint32_t first, last;  // inclusive
};
extern const Range kLetterRanges[];
extern const size_t kLetterRangeCount;
extern const Range kNumberRanges[];
extern const size_t kNumberRangeCount;

bool is_letter(uint32_t cp);  // \p{L}
bool is_number(uint32_t cp);  // \p{N}
// \s as Unicode White_Space (Rust regex, tiktoken): U+0009-000D, U+0020, U+0085, U+00A0, U+1680, U+2000-200A,
// U+2028, U+2029, U+202F, U+205F, U+3000.
bool is_space(uint32_t cp);

// Decodes the code point at s[i] and sets len to its byte count. Invalid UTF-8 (a stray continuation byte, a
// truncated sequence) decodes as that one byte, returned as 0x110000 + byte (beyond Unicode): neither letter, number
// nor space, so such bytes fall in the "other" class.
uint32_t decode_utf8(const std::string& s, size_t i, size_t& len);

}  // namespace bmos::unicode
