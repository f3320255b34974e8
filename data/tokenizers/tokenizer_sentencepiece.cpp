#include "data/tokenizers/tokenizer_sentencepiece.h"

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>

#include "data/tokenizers/sentencepiece_abi.h"
#include "data/tokenizers/sentencepiece_model.h"
#include "data/hash.h"
#include "data/tokenizers/tokenizer_kinds.h"

namespace bmos {

// The plugin's entry points, resolved once per process. dlopen'ed RTLD_LOCAL|RTLD_DEEPBIND: the plugin's own
// libsentencepiece/protobuf win over torch's for every symbol it looks up.
struct SpPlugin {
  decltype(&bmos_sp_load) load;
  decltype(&bmos_sp_free) free;
  decltype(&bmos_sp_encode) encode;
  decltype(&bmos_sp_decode) decode;
  decltype(&bmos_sp_id_to_piece) id_to_piece;
  decltype(&bmos_sp_vocab_size) vocab_size;
  decltype(&bmos_sp_bos_id) bos_id;
  decltype(&bmos_sp_eos_id) eos_id;
  decltype(&bmos_sp_is_control) is_control;
};

namespace {

template <class F>
void resolve(void* lib, const std::string& path, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (fn == nullptr)
    throw std::runtime_error(path + ": SentencePiece plugin lacks " + name + " (stale build? rebuild bmos_sentencepiece)");
}

const SpPlugin& plugin() {
  static SpPlugin p;
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    const std::string path = sentencepiece_plugin_path();
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (lib == nullptr) {
      error = std::string("cannot open the SentencePiece plugin: ") + dlerror() +
              " (build the bmos_sentencepiece target, or set BMOS_SENTENCEPIECE_PLUGIN to libbmos_sentencepiece.so)";
      return;
    }
    try {
      decltype(&bmos_sp_abi_version) version;
      resolve(lib, path, "bmos_sp_abi_version", version);
      if (version() != BMOS_SP_ABI_VERSION)
        throw std::runtime_error(path + ": SentencePiece plugin ABI version " + std::to_string(version()) +
                                 ", this binary needs " + std::to_string(BMOS_SP_ABI_VERSION) + " (rebuild both)");
      resolve(lib, path, "bmos_sp_load", p.load);
      resolve(lib, path, "bmos_sp_free", p.free);
      resolve(lib, path, "bmos_sp_encode", p.encode);
      resolve(lib, path, "bmos_sp_decode", p.decode);
      resolve(lib, path, "bmos_sp_id_to_piece", p.id_to_piece);
      resolve(lib, path, "bmos_sp_vocab_size", p.vocab_size);
      resolve(lib, path, "bmos_sp_bos_id", p.bos_id);
      resolve(lib, path, "bmos_sp_eos_id", p.eos_id);
      resolve(lib, path, "bmos_sp_is_control", p.is_control);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  if (!error.empty()) throw std::runtime_error(error);
  return p;
}

// A piece as text: U+2581 (the SentencePiece space) becomes ' ', as llama2.c's exporter writes it.
std::string spaces_restored(const std::string& piece) {
  static const std::string kSpace = "\xE2\x96\x81";
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, 3, kSpace) == 0) {
      out += ' ';
      i += 3;
    } else {
      out += piece[i++];
    }
  }
  return out;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& path) : path_(path), p_(plugin()) {
  char err[1024] = {0};
  handle_ = p_.load(path.c_str(), err, sizeof err);
  if (handle_ == nullptr)
    throw std::runtime_error(path + ": not a SentencePiece model (" + err + "); use tokenizer.kind llama2c for a "
                             "tokenizer.bin or gpt2 for vocab.json + merges.txt");
  vocab_size_ = p_.vocab_size(handle_);
  bos_ = p_.bos_id(handle_);
  eos_ = p_.eos_id(handle_);
  pieces_.resize(vocab_size_);
  for (int32_t id = 0; id < vocab_size_; ++id) {
    std::string buf(64, '\0');
    int64_t n = p_.id_to_piece(handle_, id, buf.data(), buf.size());
    if (n > static_cast<int64_t>(buf.size())) {
      buf.resize(n);
      n = p_.id_to_piece(handle_, id, buf.data(), buf.size());
    }
    buf.resize(n);
    pieces_[id] = spaces_restored(buf);
    control_.push_back(p_.is_control(handle_, id) != 0);
  }
  const SentencePieceModel model = read_sentencepiece_model(path);
  for (size_t id = 0; id < model.pieces.size(); ++id)
    if (model.types[id] == SentencePieceModel::kControl || model.types[id] == SentencePieceModel::kUnknown)
      specials_.add(model.pieces[id], static_cast<int32_t>(id));
  if (model.score_bpe_exact() && static_cast<int32_t>(model.pieces.size()) == vocab_size_) {
    std::vector<bool> mergeable(vocab_size_);
    for (int32_t id = 0; id < vocab_size_; ++id) mergeable[id] = model.types[id] == SentencePieceModel::kNormal;
    bpe_ = std::make_unique<ScoreBpe>(pieces_, model.scores, mergeable, model.byte_piece0());
  }
  hash_ = sha256_file(path);
}

SentencePieceTokenizer::~SentencePieceTokenizer() { p_.free(handle_); }

std::vector<int32_t> SentencePieceTokenizer::encode(const std::string& text) const {
  if (bpe_ && valid_utf8(text)) return bpe_->encode(text);
  return encode_library(text);
}

std::vector<int32_t> SentencePieceTokenizer::encode_special(const std::string& text) const {
  std::vector<int32_t> out;
  for (const auto& s : specials_.split(text)) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    const auto ids = encode(text.substr(s.begin, s.length));
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

std::vector<int32_t> SentencePieceTokenizer::encode_library(const std::string& text) const {
  std::vector<int32_t> ids(text.size() + 8);
  int64_t n = p_.encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  if (n > static_cast<int64_t>(ids.size())) {  // normalisation grew the text
    ids.resize(n);
    n = p_.encode(handle_, text.data(), text.size(), ids.data(), ids.size());
  }
  if (n < 0)
    throw std::runtime_error(path_ + ": SentencePiece failed to encode a text of " + std::to_string(text.size()) +
                             " bytes");
  ids.resize(n);
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out(ids.size() * 8 + 16, '\0');
  int64_t n = p_.decode(handle_, ids.data(), ids.size(), out.data(), out.size());
  if (n > static_cast<int64_t>(out.size())) {
    out.resize(n);
    n = p_.decode(handle_, ids.data(), ids.size(), out.data(), out.size());
  }
  if (n < 0)
    throw std::runtime_error(path_ + ": SentencePiece failed to decode " + std::to_string(ids.size()) +
                             " ids (an id out of range?)");
  out.resize(n);
  return out;
}

std::string SentencePieceTokenizer::decode_piece(int32_t prev, int32_t id) const {
  if (id < 0 || id >= vocab_size_)
    throw std::runtime_error(path_ + ": token id " + std::to_string(id) + " outside the vocabulary of " +
                             std::to_string(vocab_size_));
  if (control_[id]) return "";
  return llama_piece_text(pieces_[id], prev == bos_);
}

bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& model_path) {
  return std::make_unique<SentencePieceTokenizer>(model_path);
}

}  // namespace bmos
