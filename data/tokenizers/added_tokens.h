// Added tokens: literal strings cut out of the text before normalization and pre-tokenization, each becoming its own
// id (Hugging Face's AddedVocabulary: "<|endoftext|>", "<|im_start|>", Llama-3's "<|begin_of_text|>"; SentencePiece's
// "<s>", "</s>", "<unk>" as Hugging Face's LlamaTokenizer matches them). Matching is leftmost-longest, as the
// tokenizers library and transformers.js do: the first position where some token starts, the longest one there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bmos {

class AddedTokens {
 public:
  void add(const std::string& content, int32_t id);  // content non-empty
  bool empty() const { return count_ == 0; }

  struct Segment {
    size_t begin, length;
    int32_t id;  // the added token's id, or -1 for the plain text between tokens
  };
  // The text as plain segments (never empty) and tokens, in order; the segments tile the text.
  std::vector<Segment> split(const std::string& text) const;

 private:
  std::vector<std::pair<std::string, int32_t>> by_first_byte_[256];  // longest first
  size_t count_ = 0;
};

}  // namespace bmos
