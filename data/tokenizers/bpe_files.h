// What a Hugging Face byte-level BPE tokenizer is made of (GPT-2, OPT, Llama-3.x, Qwen2.5, Qwen3), read from its files
// in one place: tokenizer.json, or vocab.json + merges.txt with tokenizer_config.json naming the slow tokenizer class,
// plus the tokenizer_config.json / special_tokens_map.json beside either (BOS, EOS and other special tokens). Every
// setting that changes the ids is either understood here or an error naming the file and the key: binarymos never
// tokenizes differently from Hugging Face without saying so.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bmos {

struct BpeFiles {
  // The pre-tokenizer's split regex: kGpt2Pattern (gpt2_pretokenizer.h), kLlama3Pattern or kQwen2Pattern
  // (llama3_pretokenizer.h).
  enum class Pattern { kGpt2, kLlama3, kQwen2 };
  struct AddedToken {
    std::string content;  // matched in the text as is (data/tokenizers/added_tokens.h)
    int32_t id;
    bool special;  // decodes to nothing (Hugging Face's skip_special_tokens); a non-special one to its content
  };

  std::string hash;                                         // sha256 over the files read, in a fixed order
  std::vector<std::pair<std::string, int32_t>> vocab;       // piece in GPT-2's byte-to-unicode alphabet -> id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<AddedToken> added;
  Pattern pattern = Pattern::kGpt2;
  bool nfc = false;               // normalizer NFC, applied to the text between added tokens
  bool add_prefix_space = false;  // a " " before each stretch of text between added tokens that does not start with one
  bool ignore_merges = false;     // model.ignore_merges: a pre-token that is a vocabulary piece is that one token
  // The BOS / EOS token contents, "" when the tokenizer has none. BOS: the token tokenizer.json's post-processor puts
  // first, else tokenizer_config.json's bos_token (the two, and add_bos_token, must agree); EOS: eos_token.
  std::string bos, eos;
};

// path: a tokenizer.json file, or a folder with tokenizer.json (preferred, as Hugging Face's fast tokenizers do) or
// vocab.json + merges.txt. Throws std::runtime_error naming the file and the key.
BpeFiles read_bpe_files(const std::string& path);

}  // namespace bmos
