// llama2.c's `tokenizer.bin`: int32 max_token_length, then per piece {float score, int32 len, len bytes}, to the end of
// the file (the vocabulary size is the piece count). Spaces in pieces are ' ' (the exporter replaced U+2581).
// BOS = 1, EOS = 2 and byte pieces <0x00>..<0xFF> at ids 3..258, as llama2.c assumes.
//
// Encoding is llama2.c's `encode`: a dummy-prefix " " piece (non-empty text only), one piece per UTF-8 code point or
// its bytes as <0xXX> pieces when the code point is not in the vocabulary, then repeatedly merge the adjacent pair
// whose concatenation is a piece with the highest score (the leftmost on ties) until no pair merges.
// encode() is ScoreBpe (data/tokenizers/score_bpe.h, a heap, O(n log n)); encode_reference() is llama2.c's O(n^2) loop, kept as
// the reference that tests hold encode() to.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/tokenizers/score_bpe.h"
#include "data/tokenizers/tokenizer.h"

namespace bmos {

class Llama2cTokenizer : public Tokenizer {
 public:
  explicit Llama2cTokenizer(const std::string& path);

  std::vector<int32_t> encode(const std::string& text) const override;
  std::vector<int32_t> encode_reference(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string decode_piece(int32_t prev, int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  std::string hash() const override { return hash_; }
  std::string kind() const override { return "llama2c"; }
  std::string path() const override { return path_; }

  const std::string& piece(int32_t id) const { return pieces_.at(id); }
  float score(int32_t id) const { return scores_.at(id); }

 private:
  int32_t lookup(const std::string& s) const;
  std::vector<int32_t> initial_pieces(const std::string& text) const;  // dummy prefix + code points / bytes

  std::string path_, hash_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t max_token_length_ = 0;
  std::unique_ptr<ScoreBpe> bpe_;
};

}  // namespace bmos
