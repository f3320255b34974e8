// Perplexity evaluation sets as token windows (no torch here).
//   WikiText-2 (GPTQ protocol): the Hugging Face dataset's rows ("\n"-terminated lines of wiki.test.raw, blank lines as
//   empty strings) joined with "\n\n", tokenized once with BOS, cut into numel // seq_len non-overlapping windows.
//   With the Llama-2 tokenizer the test split gives 341,469 tokens, i.e. 166 windows of 2048.
//   C4 (GPTQ protocol): see eval_c4.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizers/tokenizer.h"

namespace bmos {

// `count()` windows of `seq_len` tokens, stored back to back.
struct EvalWindows {
  int64_t seq_len = 0;
  std::vector<int32_t> tokens;    // (count, seq_len) row-major
  int64_t source_tokens = 0;      // tokens in the source before windowing (the joined text, or the C4 documents used)
  std::string protocol;           // one line naming the procedure, for reports
  int64_t count() const { return seq_len > 0 ? static_cast<int64_t>(tokens.size()) / seq_len : 0; }
};

// The Hugging Face wikitext rows of a raw file joined with "\n\n" (see the header comment). Throws, naming the path,
// when the file is missing or empty.
std::string wikitext_joined_text(const std::string& path);

// The whole file as one text (format "text").
std::string read_text_file(const std::string& path);

// Evaluation tokenization: BOS (when the tokenizer has one, as the Hugging Face tokenizers add it) + encode(text).
std::vector<int32_t> encode_for_eval(const Tokenizer& tok, const std::string& text);

// numel // seq_len non-overlapping windows from the start of `tokens`; the tail shorter than seq_len is dropped.
// max_windows > 0 keeps only the first max_windows. Throws when not even one window fits.
EvalWindows contiguous_windows(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t max_windows,
                               const std::string& what);

}  // namespace bmos
