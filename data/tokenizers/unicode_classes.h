// The Unicode character classes the regex pre-tokenizers need (GPT-2's, Llama-3's, Qwen2's): \p{L}, \p{N} and \s
// (White_Space), and UTF-8 code point decoding and encoding. The L/N tables are generated
// (data/tokenizers/unicode_classes_table.cpp, scripts/make_unicode_classes.mjs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

// The one class of a code point that the pre-tokenizer regexes tell apart.
enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };
CharClass char_class(uint32_t cp);

// The code points of a text: byte offset and class of each, then one more offset (the text's size).
struct ClassifiedText {
  std::vector<size_t> offset;
  std::vector<CharClass> cls;
  size_t size() const { return cls.size(); }
};
ClassifiedText classify(const std::string& text);

// Decodes the code point at s[i] and sets len to its byte count. Invalid UTF-8 (a stray continuation byte, a
// truncated sequence) decodes as that one byte, returned as 0x110000 + byte (beyond Unicode): neither letter, number
// nor space, so such bytes fall in the "other" class.
uint32_t decode_utf8(const std::string& s, size_t i, size_t& len);
size_t utf8_length(uint32_t cp);                 // bytes of cp in UTF-8 (1-4)
void append_utf8(uint32_t cp, std::string& out);  // cp < 0x110000

}  // namespace bmos::unicode
