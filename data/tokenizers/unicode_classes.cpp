#include "data/tokenizers/unicode_classes.h"

#include <algorithm>

namespace bmos::unicode {

namespace {

bool in_ranges(const Range* ranges, size_t n, uint32_t cp) {
  const Range* end = ranges + n;
  const Range* it = std::upper_bound(ranges, end, cp, [](uint32_t c, const Range& r) { return c < r.first; });
  return it != ranges && cp <= (it - 1)->last;
}

}  // namespace

bool is_letter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(kLetterRanges, kLetterRangeCount, cp);
}

bool is_number(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(kNumberRanges, kNumberRangeCount, cp);
}

bool is_space(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

CharClass char_class(uint32_t cp) {
  if (is_letter(cp)) return CharClass::kLetter;
  if (is_number(cp)) return CharClass::kNumber;
  if (is_space(cp)) return CharClass::kSpace;
  return CharClass::kOther;
}

ClassifiedText classify(const std::string& text) {
  ClassifiedText t;
  t.offset.reserve(text.size() + 1);
  t.cls.reserve(text.size());
  for (size_t i = 0, len = 0; i < text.size(); i += len) {
    t.offset.push_back(i);
    t.cls.push_back(char_class(decode_utf8(text, i, len)));
  }
  t.offset.push_back(text.size());
  return t;
}

size_t utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t decode_utf8(const std::string& s, size_t i, size_t& len) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  len = 1;
  if (c < 0x80) return c;
  size_t need = 0;
  uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    need = 1;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    need = 2;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    need = 3;
    cp = c & 0x07;
  } else {
    return 0x110000 + c;  // stray continuation or invalid lead byte: outside Unicode, so in no class
  }
  if (i + need >= s.size()) return 0x110000 + c;  // truncated sequence
  for (size_t k = 1; k <= need; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0x110000 + c;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  len = need + 1;
  return cp;
}

}  // namespace bmos::unicode
