// Unicode Normalization Form C (UAX #15), for tokenizers whose tokenizer.json has an NFC normalizer (Qwen2 / Qwen3).
// The tables are generated (data/tokenizers/unicode_nfc_table.cpp, scripts/make_unicode_classes.mjs --nfc) from the
// same Unicode version as the \p{L} / \p{N} classes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bmos::unicode {

struct Decomposition {
  uint32_t cp;
  uint16_t offset, length;  // into kDecompositionPool
};
struct CombiningClass {
  uint32_t cp;
  uint8_t rank;  // the rank of cp's canonical combining class among the non-zero classes (1 = lowest)
};
struct Composition {
  uint32_t first, second, composite;
};
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionCount;
extern const uint32_t kDecompositionPool[];
extern const CombiningClass kCombiningClasses[];
extern const size_t kCombiningClassCount;
extern const Composition kCompositions[];
extern const size_t kCompositionCount;

// NFC of UTF-8 text. Bytes that are not valid UTF-8 pass through unchanged and act as starters that compose with
// nothing. Text that NFC cannot change (ASCII, and most text: no decomposable character, combining mark or
// composable second character) is returned as is without further work.
std::string nfc(const std::string& text);

}  // namespace bmos::unicode
