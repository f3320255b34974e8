// One interface for every tokenizer binarymos reads (no torch here).
//   sentencepiece: a SentencePiece ModelProto `.model` (LLaMA, stories260K), run in an isolated plugin .so
//   llama2c:       llama2.c's `tokenizer.bin` (max_token_length, then per piece: float score, int32 len, bytes)
//   gpt2:          GPT-2 / OPT byte-level BPE from vocab.json + merges.txt (a folder) or tokenizer.json
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bmos {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of `text` without BOS/EOS (callers add them explicitly, see encode_with).
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  // Text of a whole id sequence (special tokens dropped).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // Streaming decode, llama2.c semantics: the text to print for `id` when it follows `prev`
  // (a leading space is stripped right after BOS; byte pieces <0xXX> become raw bytes).
  virtual std::string decode_piece(int32_t prev, int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int32_t eos_id() const = 0;  // -1 when the tokenizer has none
  // Stable hash of the tokenizer's files (hex); token shards record it and refuse another tokenizer.
  virtual std::string hash() const = 0;
  virtual std::string kind() const = 0;  // "sentencepiece", "llama2c" or "gpt2"
  virtual std::string path() const = 0;
};

// kind: "auto" (from the file name/extension), "sentencepiece", "llama2c" or "gpt2". Throws std::runtime_error naming
// the path and what to do on a missing or malformed file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, const std::string& kind = "auto");

// encode() plus explicit BOS/EOS.
std::vector<int32_t> encode_with(const Tokenizer& tok, const std::string& text, bool add_bos, bool add_eos);

}  // namespace bmos
