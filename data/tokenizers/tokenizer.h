// One interface for every tokenizer binarymos reads (no torch here).
//   sentencepiece: a SentencePiece ModelProto `.model` (LLaMA, stories260K), run in an isolated plugin .so
//   llama2c:       llama2.c's `tokenizer.bin` (max_token_length, then per piece: float score, int32 len, bytes)
//   gpt2:          Hugging Face byte-level BPE (GPT-2, OPT, Llama-3.x, Qwen2.5, Qwen3) from tokenizer.json, or from
//                  vocab.json + merges.txt with tokenizer_config.json (data/tokenizers/bpe_files.h)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bmos {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of `text` without BOS/EOS (callers add them explicitly, see encode_with). Special tokens written in the text
  // ("<s>", "<|endoftext|>") are plain text, as the SentencePiece library and llama2.c encode, and Hugging Face with
  // split_special_tokens=True; added tokens that are not special (Qwen3's "<think>") are still matched there.
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  // Hugging Face's default encode(text, add_special_tokens=False): special tokens written in the text become their
  // ids, cut out before anything else (chat templates: "<|im_start|>user\n..."). Kinds with no such tokens (byte,
  // llama2.c) encode as encode() does.
  virtual std::vector<int32_t> encode_special(const std::string& text) const { return encode(text); }
  // Text of a whole id sequence (special tokens dropped).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // Streaming decode, llama2.c semantics: the text to print for `id` when it follows `prev`
  // (a leading space is stripped right after BOS; byte pieces <0xXX> become raw bytes).
  virtual std::string decode_piece(int32_t prev, int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  // -1 when the tokenizer has none (Qwen2.5, Qwen3). For OPT, Llama-3 and Mistral it is the token Hugging Face's
  // encode() puts first; GPT-2's is <|endoftext|> (which its encode() does not add).
  virtual int32_t bos_id() const = 0;
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
