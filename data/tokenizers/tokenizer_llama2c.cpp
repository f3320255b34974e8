#include "data/tokenizers/tokenizer_llama2c.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

#include "data/tokenizers/score_bpe.h"
#include "data/hash.h"
#include "data/tokenizers/tokenizer_kinds.h"

namespace bmos {

namespace {

// llama2.c starts its best score at -1e10: a pair scoring at or below it never merges.
constexpr float kNoMerge = -1e10f;

}  // namespace

Llama2cTokenizer::Llama2cTokenizer(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open the llama2.c tokenizer (check tokenizer.path)");
  if (!in.read(reinterpret_cast<char*>(&max_token_length_), 4) || max_token_length_ <= 0 || max_token_length_ > 4096)
    throw std::runtime_error(path + ": not a llama2.c tokenizer.bin (bad max_token_length header); a SentencePiece "
                             ".model needs tokenizer.kind sentencepiece");
  while (in.peek() != std::char_traits<char>::eof()) {
    float score = 0;
    int32_t len = 0;
    if (!in.read(reinterpret_cast<char*>(&score), 4) || !in.read(reinterpret_cast<char*>(&len), 4) || len < 0 ||
        len > max_token_length_ * 4 + 16)
      throw std::runtime_error(path + ": truncated or corrupt tokenizer.bin at piece " +
                               std::to_string(pieces_.size()));
    std::string piece(len, '\0');
    if (!in.read(piece.data(), len))
      throw std::runtime_error(path + ": truncated tokenizer.bin in piece " + std::to_string(pieces_.size()));
    ids_.emplace(piece, static_cast<int32_t>(pieces_.size()));  // first wins, as a sorted-vocab bsearch finds one
    pieces_.push_back(std::move(piece));
    scores_.push_back(score);
  }
  if (pieces_.size() < 259)
    throw std::runtime_error(path + ": tokenizer.bin has " + std::to_string(pieces_.size()) +
                             " pieces; llama2.c needs at least <unk>, <s>, </s> and the 256 byte pieces");
  bpe_ = std::make_unique<ScoreBpe>(pieces_, scores_, std::vector<bool>(pieces_.size(), true), 3);
  hash_ = sha256_file(path);
}

int32_t Llama2cTokenizer::lookup(const std::string& s) const {
  const auto it = ids_.find(s);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int32_t> Llama2cTokenizer::initial_pieces(const std::string& text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 1);
  if (text.empty()) return ids;
  const int32_t dummy = lookup(" ");
  if (dummy >= 0) ids.push_back(dummy);
  // One piece per UTF-8 code point (at most 4 bytes, continuation bytes 10xxxxxx), else its bytes as <0xXX>.
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 1;
    while (i + len < text.size() && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80 && len < 4) ++len;
    const int32_t id = lookup(text.substr(i, len));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t b = 0; b < len; ++b) ids.push_back(static_cast<unsigned char>(text[i + b]) + 3);
    }
    i += len;
  }
  return ids;
}

std::vector<int32_t> Llama2cTokenizer::encode_reference(const std::string& text) const {
  std::vector<int32_t> tokens = initial_pieces(text);
  while (true) {
    float best_score = kNoMerge;
    int32_t best_id = -1;
    size_t best_idx = 0;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      const int32_t id = lookup(pieces_[tokens[i]] + pieces_[tokens[i + 1]]);
      if (id != -1 && scores_[id] > best_score) {
        best_score = scores_[id];
        best_id = id;
        best_idx = i;
      }
    }
    if (best_id == -1) break;
    tokens[best_idx] = best_id;
    tokens.erase(tokens.begin() + best_idx + 1);
  }
  return tokens;
}

std::vector<int32_t> Llama2cTokenizer::encode(const std::string& text) const { return bpe_->encode(text); }

std::string Llama2cTokenizer::decode_piece(int32_t prev, int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::runtime_error(path_ + ": token id " + std::to_string(id) + " outside the vocabulary of " +
                             std::to_string(vocab_size()));
  if (id == bos_id() || id == eos_id()) return "";
  return llama_piece_text(pieces_[id], prev == bos_id());
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  // As SentencePiece decodes: the dummy-prefix space of the first piece is dropped.
  std::string out;
  int32_t prev = bos_id();
  for (int32_t id : ids) {
    if (id == bos_id() || id == eos_id()) {
      prev = id;
      continue;
    }
    out += decode_piece(prev, id);
    prev = id;
  }
  return out;
}

std::unique_ptr<Tokenizer> make_llama2c_tokenizer(const std::string& bin_path) {
  return std::make_unique<Llama2cTokenizer>(bin_path);
}

}  // namespace bmos
