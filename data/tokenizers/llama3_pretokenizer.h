// Llama-3's pre-tokenizer (tiktoken's cl100k_base pattern) and Qwen2's, by hand (no regex library here has \p{L}):
// the text is cut into the matches of
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// tried in that order at each position, as the regex engine does. Qwen2 (Qwen2.5, Qwen3) has \p{N} in place of
// \p{N}{1,3}: one digit per piece. Byte-level BPE then runs within each piece.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace bmos {

// The two regexes, as a tokenizer.json "Split" pre-tokenizer writes them.
extern const char kLlama3Pattern[];
extern const char kQwen2Pattern[];

// (byte offset, byte length) of each piece; the pieces tile the text exactly. max_digits: 3 for Llama-3, 1 for Qwen2.
std::vector<std::pair<size_t, size_t>> llama3_pretokenize(const std::string& text, size_t max_digits);

}  // namespace bmos
