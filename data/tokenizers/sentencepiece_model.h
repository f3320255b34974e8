// What binarymos needs from a SentencePiece `.model` (a ModelProto in protobuf wire format), read without protobuf:
// the pieces with scores and types, the model type and the normaliser settings. It decides whether the model can be
// encoded by ScoreBpe (data/tokenizers/score_bpe.h) exactly as the library does; the library stays the reference.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bmos {

struct SentencePieceModel {
  enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
  enum ModelType { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };
  std::vector<std::string> pieces;  // as stored (U+2581 for spaces)
  std::vector<float> scores;
  std::vector<int> types;
  int model_type = kUnigram;              // trainer_spec.model_type
  bool byte_fallback = false;             // trainer_spec.byte_fallback
  bool treat_whitespace_as_suffix = false;  // trainer_spec.treat_whitespace_as_suffix
  std::string normalizer;                 // normalizer_spec.name (e.g. identity, nmt_nfkc)
  bool has_charsmap = false;              // normalizer_spec.precompiled_charsmap is non-empty
  bool add_dummy_prefix = true;           // normalizer_spec.add_dummy_prefix
  bool remove_extra_whitespaces = true;   // normalizer_spec.remove_extra_whitespaces
  bool escape_whitespaces = true;         // normalizer_spec.escape_whitespaces

  // True when merge-by-score BPE over the pieces gives the library's ids for every valid UTF-8 text: a BPE model with
  // byte fallback, an identity normaliser (no character map), a dummy prefix, no whitespace removal, whitespace
  // escaped as a prefix, no user-defined pieces, and byte pieces <0x00>..<0xFF> in order.
  bool score_bpe_exact() const;
  int32_t byte_piece0() const;  // id of <0x00>, or -1
};

// Throws std::runtime_error naming the path when the file is missing or not a ModelProto.
SentencePieceModel read_sentencepiece_model(const std::string& path);

}  // namespace bmos
