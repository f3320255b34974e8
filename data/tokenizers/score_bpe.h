// Merge-by-score BPE, the encoding of llama2.c's `encode` and of SentencePiece's BPE model: a dummy-prefix " " piece
// (non-empty text only), one piece per UTF-8 code point (a lead byte and up to 3 continuation bytes) or its bytes as
// byte pieces when it is not a piece, then repeatedly merge the adjacent pair whose concatenation is a piece with the
// highest score (the leftmost on ties) until none merges.
// The fast form: candidate pairs in a heap keyed by (score, left position), pair lookups in an integer hash map built
// once from the vocabulary (every split of every piece into two pieces). When no piece has a space right after a
// non-space character (true of LLaMA's and llama2.c's vocabularies), no merge can cross the start of a space run, so
// the text is cut there into words ("   word"), each encoded alone and remembered in a per-thread cache: the same
// result, several times faster on natural text.
// Llama2cTokenizer::encode_reference keeps llama2.c's plain O(n^2) loop, and the SentencePiece library itself is the
// other reference (tests hold this to both).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace bmos {

class ScoreBpe {
 public:
  // pieces: text with ' ' for spaces; mergeable[i]: piece i may be produced (by a code point match or a merge);
  // byte_piece0: id of <0x00> (byte b falls back to byte_piece0 + b).
  ScoreBpe(const std::vector<std::string>& pieces, const std::vector<float>& scores, const std::vector<bool>& mergeable,
           int32_t byte_piece0);
  std::vector<int32_t> encode(const std::string& text) const;
  bool splits_words() const { return split_words_; }

 private:
  void append_initial(const char* text, size_t n, std::vector<int32_t>& ids) const;  // code points / bytes
  void merge(std::vector<int32_t>& ids) const;                                       // in place
  void encode_word(const char* text, size_t n, bool dummy_prefix, std::vector<int32_t>& out) const;

  // An open-addressing hash map uint64 -> int32 (linear probing, never erased): the lookups are the hot loop.
  class FlatMap {
   public:
    void build(const std::unordered_map<uint64_t, int32_t>& from);
    int32_t find(uint64_t key) const {  // -1 when absent
      for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
        if (values_[i] < 0) return -1;
        if (keys_[i] == key) return values_[i];
      }
    }

   private:
    static size_t hash(uint64_t k) { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 20); }
    std::vector<uint64_t> keys_;
    std::vector<int32_t> values_;
    size_t mask_ = 0;
  };

  std::vector<float> scores_;
  int32_t byte_piece0_;
  int32_t space_ = -1;     // the " " piece (dummy prefix)
  int32_t ascii_[128];     // single-byte pieces, -1 when absent
  FlatMap code_points_;    // (bytes, length) of a 1-4 byte piece -> id
  FlatMap pairs_;          // (left id, right id) -> merged id
  bool split_words_ = false;
  uint64_t instance_ = 0;  // tells this encoder's entries in the per-thread word cache apart
};

}  // namespace bmos
