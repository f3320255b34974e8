// SentencePiece `.model` through the isolated plugin (data/tokenizers/sentencepiece_abi.h). The library is the reference; for
// models where merge-by-score BPE is provably the same encoding (SentencePieceModel::score_bpe_exact: the Llama-2
// tokenizer is one), valid UTF-8 text is encoded by ScoreBpe instead (~5x faster than the library); tests hold the
// two equal on varied text. Other models, and invalid UTF-8, always go through the library.
// encode_special() first cuts the control and unknown pieces' literals ("<s>", "</s>", "<unk>") out of the text as
// their ids and encodes each stretch between them on its own, with its own dummy-prefix space, as Hugging Face's
// LlamaTokenizer (legacy) does; encode() leaves them plain text, as the library does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/tokenizers/added_tokens.h"
#include "data/tokenizers/score_bpe.h"
#include "data/tokenizers/tokenizer.h"

namespace bmos {

struct SpPlugin;

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(const std::string& text) const override;
  std::vector<int32_t> encode_special(const std::string& text) const override;
  std::vector<int32_t> encode_library(const std::string& text) const;  // the reference: always the library
  bool uses_score_bpe() const { return bpe_ != nullptr; }
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string decode_piece(int32_t prev, int32_t id) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  std::string hash() const override { return hash_; }
  std::string kind() const override { return "sentencepiece"; }
  std::string path() const override { return path_; }

 private:
  std::string path_;
  const SpPlugin& p_;
  void* handle_ = nullptr;
  int32_t vocab_size_ = 0, bos_ = -1, eos_ = -1;
  std::vector<std::string> pieces_;  // U+2581 restored to ' '
  std::vector<bool> control_;
  std::unique_ptr<ScoreBpe> bpe_;
  AddedTokens specials_;  // control and unknown pieces
  std::string hash_;
};

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(const std::string& s);

}  // namespace bmos
