// Byte-level BPE as Hugging Face runs it for GPT-2, OPT, Llama-3.x, Qwen2.5 and Qwen3 (the files are read, and every
// setting checked, by data/tokenizers/bpe_files.h). Encoding: added tokens are cut out of the text first
// (data/tokenizers/added_tokens.h; encode_special cuts all of them, <|endoftext|> and <|im_start|> too, encode only
// those that are not special, such as Qwen3's <think>); each stretch between them is put in NFC where the tokenizer
// says so, gets a leading space with add_prefix_space, and is cut by the pre-tokenizer regex (gpt2_pretokenizer.h,
// llama3_pretokenizer.h). Each piece's bytes are mapped to printable code points (GPT-2's bytes_to_unicode); with
// ignore_merges (Llama-3) a piece that is a vocabulary entry is that one token, otherwise BPE runs inside the piece as
// GPT-2's encoder.py does: merge every occurrence of the lowest-ranked adjacent pair, left to right, until no pair has
// a rank. Decoding gives each token's bytes; special tokens give nothing, other added tokens their text.
#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <unordered_map>

#include "data/tokenizers/added_tokens.h"
#include "data/tokenizers/bpe_files.h"
#include "data/tokenizers/gpt2_pretokenizer.h"
#include "data/tokenizers/llama3_pretokenizer.h"
#include "data/tokenizers/tokenizer_kinds.h"
#include "data/tokenizers/unicode_classes.h"
#include "data/tokenizers/unicode_nfc.h"

namespace bmos {

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 take U+0100.. in byte order.
std::vector<uint32_t> byte_to_code_point() {
  std::vector<uint32_t> map(256);
  uint32_t extra = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[b] = printable ? b : 256 + extra++;
  }
  return map;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | uint32_t(b);
}

class Gpt2Tokenizer : public Tokenizer {
 public:
  explicit Gpt2Tokenizer(const std::string& path) : path_(path) {
    const BpeFiles f = read_bpe_files(path);
    hash_ = f.hash;
    pattern_ = f.pattern;
    nfc_ = f.nfc;
    add_prefix_space_ = f.add_prefix_space;
    ignore_merges_ = f.ignore_merges;

    int32_t max_id = -1;
    for (const auto& [piece, id] : f.vocab) max_id = std::max(max_id, id);
    for (const auto& t : f.added) max_id = std::max(max_id, t.id);
    pieces_.assign(max_id + 1, "");
    for (const auto& [piece, id] : f.vocab) {
      pieces_[id] = piece;
      ids_.emplace(piece, id);
    }
    // A merge whose result is not in the vocabulary could never be emitted (encoder.py would fail on it): it is
    // dropped with a warning. (The shared GPT-2 copy has one: its id 40559 was renamed from "ĠClaude".)
    for (size_t r = 0; r < f.merges.size(); ++r) {
      const auto& [left, right] = f.merges[r];
      const int32_t a = find(left), b = find(right), m = find(left + right);
      if (a < 0 || b < 0)
        throw std::runtime_error(path + ": merge " + std::to_string(r + 1) + " ('" + left + " " + right +
                                 "') names a piece missing from the vocabulary");
      if (m < 0) {
        std::fprintf(stderr, "warning: %s: merge %zu ('%s %s') makes a piece missing from the vocabulary; dropped\n",
                     path.c_str(), r + 1, left.c_str(), right.c_str());
        continue;
      }
      merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(r), m});
    }
    const auto cps = byte_to_code_point();
    std::unordered_map<uint32_t, char> cp_to_byte;
    for (int b = 0; b < 256; ++b) {
      cp_to_byte[cps[b]] = static_cast<char>(b);
      std::string piece;
      unicode::append_utf8(cps[b], piece);
      byte_ids_[b] = find(piece);
      if (byte_ids_[b] < 0)
        throw std::runtime_error(path + ": vocabulary lacks the byte piece for byte " + std::to_string(b) +
                                 " (not a byte-level BPE vocabulary)");
    }
    // Each piece's raw bytes, for decoding (and ignore_merges); pieces outside the byte alphabet stay empty.
    bytes_.assign(pieces_.size(), "");
    for (size_t id = 0; id < pieces_.size(); ++id) {
      const std::string& p = pieces_[id];
      std::string out;
      bool plain = !p.empty();
      for (size_t i = 0, len = 0; i < p.size() && plain; i += len) {
        const auto it = cp_to_byte.find(unicode::decode_utf8(p, i, len));
        if (it == cp_to_byte.end())
          plain = false;
        else
          out += it->second;
      }
      if (!plain) continue;
      bytes_[id] = out;
      if (ignore_merges_) whole_.emplace(out, static_cast<int32_t>(id));
    }
    for (const auto& t : f.added) {
      added_.add(t.content, t.id);
      if (!t.special) not_special_.add(t.content, t.id);
      bytes_[t.id] = t.special ? "" : t.content;
    }
    // BOS and EOS (bpe_files.cpp found them among the added tokens or in the vocabulary) print nothing.
    const auto id_of = [&](const std::string& content) {
      for (const auto& t : f.added)
        if (t.content == content) return t.id;
      return find(content);
    };
    bos_ = f.bos.empty() ? -1 : id_of(f.bos);
    eos_ = f.eos.empty() ? -1 : id_of(f.eos);
    for (int32_t id : {bos_, eos_})
      if (id >= 0) bytes_[id].clear();
  }

  std::vector<int32_t> encode(const std::string& text) const override { return encode_cut(text, not_special_); }
  std::vector<int32_t> encode_special(const std::string& text) const override { return encode_cut(text, added_); }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) out += decode_piece(-1, id);
    return out;
  }

  std::string decode_piece(int32_t, int32_t id) const override {
    if (id < 0 || id >= vocab_size())
      throw std::runtime_error(path_ + ": token id " + std::to_string(id) + " outside the vocabulary of " +
                               std::to_string(vocab_size()));
    return bytes_[id];
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  std::string hash() const override { return hash_; }
  std::string kind() const override { return "gpt2"; }
  std::string path() const override { return path_; }

 private:
  struct Merge {
    int32_t rank, merged;
  };

  int32_t find(const std::string& piece) const {
    const auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
  }

  // The added tokens of `cut` as their ids, the text between them encoded.
  std::vector<int32_t> encode_cut(const std::string& text, const AddedTokens& cut) const {
    std::vector<int32_t> out;
    if (cut.empty()) {
      encode_text(text, out);
      return out;
    }
    for (const auto& s : cut.split(text)) {
      if (s.id >= 0) out.push_back(s.id);
      else encode_text(text.substr(s.begin, s.length), out);
    }
    return out;
  }

  // One stretch of text without added tokens.
  void encode_text(const std::string& raw, std::vector<int32_t>& out) const {
    std::string prepared;
    const std::string* text = &raw;
    if (nfc_) {
      prepared = unicode::nfc(raw);
      text = &prepared;
    }
    if (add_prefix_space_ && !text->empty() && (*text)[0] != ' ') {
      prepared = " " + *text;
      text = &prepared;
    }
    const auto pieces = pattern_ == BpeFiles::Pattern::kGpt2
                            ? gpt2_pretokenize(*text)
                            : llama3_pretokenize(*text, pattern_ == BpeFiles::Pattern::kLlama3 ? 3 : 1);
    std::vector<int32_t> word;
    for (const auto& [start, len] : pieces) {
      if (ignore_merges_) {
        const auto it = whole_.find(text->substr(start, len));
        if (it != whole_.end()) {
          out.push_back(it->second);
          continue;
        }
      }
      word.clear();
      for (size_t i = start; i < start + len; ++i) word.push_back(byte_ids_[static_cast<unsigned char>((*text)[i])]);
      bpe(word);
      out.insert(out.end(), word.begin(), word.end());
    }
  }

  // encoder.py's loop: the lowest-ranked pair present, merged at every (non-overlapping, left to right) occurrence.
  void bpe(std::vector<int32_t>& word) const {
    std::vector<int32_t> next;
    while (word.size() > 1) {
      int32_t best_rank = -1, first = -1, second = -1, merged = -1;
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        const auto it = merges_.find(pair_key(word[i], word[i + 1]));
        if (it != merges_.end() && (best_rank < 0 || it->second.rank < best_rank)) {
          best_rank = it->second.rank;
          first = word[i];
          second = word[i + 1];
          merged = it->second.merged;
        }
      }
      if (best_rank < 0) return;
      next.clear();
      for (size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
          next.push_back(merged);
          i += 2;
        } else {
          next.push_back(word[i++]);
        }
      }
      word.swap(next);
    }
  }

  std::string path_, hash_;
  std::vector<std::string> pieces_;                 // piece text as in the vocabulary (byte-to-unicode alphabet)
  std::vector<std::string> bytes_;                  // what each id decodes to
  std::unordered_map<std::string, int32_t> ids_;    // vocabulary piece -> id
  std::unordered_map<std::string, int32_t> whole_;  // raw bytes -> id, for ignore_merges
  std::unordered_map<uint64_t, Merge> merges_;
  AddedTokens added_, not_special_;  // all added tokens (encode_special), the non-special ones (encode)
  int32_t byte_ids_[256] = {};
  int32_t bos_ = -1, eos_ = -1;
  BpeFiles::Pattern pattern_ = BpeFiles::Pattern::kGpt2;
  bool nfc_ = false, add_prefix_space_ = false, ignore_merges_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& path) {
  return std::make_unique<Gpt2Tokenizer>(path);
}

}  // namespace bmos
