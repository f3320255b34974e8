#include "data/tokenizers/sentencepiece_model.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace bmos {

namespace {

// A protobuf wire-format cursor over one message.
struct Wire {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& path;

  [[noreturn]] void fail() const {
    throw std::runtime_error(path + ": not a SentencePiece model (malformed protobuf); check tokenizer.path");
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) fail();
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail();
  }
  // Reads a field's key; false at the end of the message.
  bool key(uint32_t& field, uint32_t& wire) {
    if (p >= end) return false;
    const uint64_t k = varint();
    field = static_cast<uint32_t>(k >> 3);
    wire = static_cast<uint32_t>(k & 7);
    return true;
  }
  Wire sub() {  // a length-delimited field as a message
    const uint64_t n = varint();
    if (n > uint64_t(end - p)) fail();
    Wire w{p, p + n, path};
    p += n;
    return w;
  }
  std::string bytes() {
    Wire w = sub();
    return std::string(reinterpret_cast<const char*>(w.p), w.end - w.p);
  }
  float fixed32() {
    if (end - p < 4) fail();
    float f;
    std::memcpy(&f, p, 4);
    p += 4;
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: if (end - p < 8) fail(); p += 8; break;
      case 2: sub(); break;
      case 5: if (end - p < 4) fail(); p += 4; break;
      default: fail();
    }
  }
};

}  // namespace

SentencePieceModel read_sentencepiece_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open the SentencePiece model (check tokenizer.path)");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  SentencePieceModel m;
  Wire top{reinterpret_cast<const uint8_t*>(data.data()), reinterpret_cast<const uint8_t*>(data.data()) + data.size(),
           path};
  uint32_t field, wire;
  while (top.key(field, wire)) {
    if (field == 1 && wire == 2) {  // SentencePiece {piece = 1, score = 2, type = 3}
      Wire w = top.sub();
      std::string piece;
      float score = 0;
      int type = SentencePieceModel::kNormal;
      while (w.key(field, wire)) {
        if (field == 1 && wire == 2) piece = w.bytes();
        else if (field == 2 && wire == 5) score = w.fixed32();
        else if (field == 3 && wire == 0) type = static_cast<int>(w.varint());
        else w.skip(wire);
      }
      m.pieces.push_back(piece);
      m.scores.push_back(score);
      m.types.push_back(type);
    } else if (field == 2 && wire == 2) {  // TrainerSpec {model_type = 3, treat_whitespace_as_suffix = 24, byte_fallback = 35}
      Wire w = top.sub();
      while (w.key(field, wire)) {
        if (field == 3 && wire == 0) m.model_type = static_cast<int>(w.varint());
        else if (field == 24 && wire == 0) m.treat_whitespace_as_suffix = w.varint() != 0;
        else if (field == 35 && wire == 0) m.byte_fallback = w.varint() != 0;
        else w.skip(wire);
      }
    } else if (field == 3 && wire == 2) {  // NormalizerSpec {name = 1, precompiled_charsmap = 2, add_dummy_prefix = 3,
                                           //   remove_extra_whitespaces = 4, escape_whitespaces = 5}
      Wire w = top.sub();
      while (w.key(field, wire)) {
        if (field == 1 && wire == 2) m.normalizer = w.bytes();
        else if (field == 2 && wire == 2) m.has_charsmap = !w.bytes().empty();
        else if (field == 3 && wire == 0) m.add_dummy_prefix = w.varint() != 0;
        else if (field == 4 && wire == 0) m.remove_extra_whitespaces = w.varint() != 0;
        else if (field == 5 && wire == 0) m.escape_whitespaces = w.varint() != 0;
        else w.skip(wire);
      }
    } else {
      top.skip(wire);
    }
  }
  if (m.pieces.empty()) throw std::runtime_error(path + ": not a SentencePiece model (no pieces); check tokenizer.path");
  return m;
}

int32_t SentencePieceModel::byte_piece0() const {
  for (size_t i = 0; i + 256 <= pieces.size(); ++i) {
    if (types[i] != kByte || pieces[i] != "<0x00>") continue;
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      if (types[i + b] != kByte || pieces[i + b] != name) return -1;
    }
    return static_cast<int32_t>(i);
  }
  return -1;
}

bool SentencePieceModel::score_bpe_exact() const {
  for (int t : types)
    if (t == kUserDefined) return false;
  return model_type == kBpe && byte_fallback && normalizer == "identity" && !has_charsmap && add_dummy_prefix &&
         !remove_extra_whitespaces && escape_whitespaces && !treat_whitespace_as_suffix && byte_piece0() >= 0;
}

}  // namespace bmos
