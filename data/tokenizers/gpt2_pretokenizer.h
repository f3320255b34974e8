// GPT-2's pre-tokenizer, by hand (no regex library here has \p{L}): the text is cut into the matches of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// tried in that order at each position, as the regex engine does. Byte-level BPE then runs within each piece.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace bmos {

extern const char kGpt2Pattern[];  // the regex above, as a tokenizer.json "Split" pre-tokenizer writes it

// (byte offset, byte length) of each piece; the pieces tile the text exactly.
std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(const std::string& text);

}  // namespace bmos
