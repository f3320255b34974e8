// load_tokenizer: picks the kind from the path, and the helpers every kind shares.
#include "data/tokenizers/tokenizer.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "data/tokenizers/tokenizer_byte.h"
#include "data/tokenizers/tokenizer_kinds.h"

namespace bmos {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "auto": a .model file is SentencePiece, a .bin file llama2.c, a .json file or a folder with tokenizer.json or
// vocab.json + merges.txt byte-level BPE ("gpt2"); a Hugging Face folder with a tokenizer.model inside (LLaMA-2,
// Mistral) is SentencePiece.
std::string detect_kind(const std::string& path) {
  if (fs::is_directory(path)) {
    if (fs::exists(fs::path(path) / "tokenizer.model")) return "sentencepiece";
    if ((fs::exists(fs::path(path) / "vocab.json") && fs::exists(fs::path(path) / "merges.txt")) ||
        fs::exists(fs::path(path) / "tokenizer.json"))
      return "gpt2";
    if (fs::exists(fs::path(path) / "tokenizer.bin")) return "llama2c";
    throw std::runtime_error(path + ": folder has no tokenizer.model, vocab.json + merges.txt, tokenizer.json or "
                             "tokenizer.bin (point tokenizer.path at the tokenizer file)");
  }
  if (ends_with(path, ".model")) return "sentencepiece";
  if (ends_with(path, ".bin")) return "llama2c";
  if (ends_with(path, ".json")) return "gpt2";
  throw std::runtime_error(path + ": cannot tell the tokenizer kind from the name (expected .model, .bin, .json or a "
                           "folder); set tokenizer.kind to sentencepiece, llama2c or gpt2");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, const std::string& kind) {
  // The byte tokenizer has no file; checkpoints mark it with an empty "tokenizer.byte".
  if (kind == "byte" || path == "byte" || fs::path(path).extension() == ".byte") return make_byte_tokenizer();
  if (path.empty()) throw std::runtime_error("tokenizer path is empty (set tokenizer.path)");
  if (!fs::exists(path)) throw std::runtime_error(path + ": tokenizer not found (check tokenizer.path)");
  const std::string k = kind == "auto" ? detect_kind(path) : kind;
  if (k == "sentencepiece") {
    const bool dir = fs::is_directory(path);
    return make_sentencepiece_tokenizer(dir ? (fs::path(path) / "tokenizer.model").string() : path);
  }
  if (k == "llama2c") {
    const bool dir = fs::is_directory(path);
    return make_llama2c_tokenizer(dir ? (fs::path(path) / "tokenizer.bin").string() : path);
  }
  if (k == "gpt2") return make_gpt2_tokenizer(path);
  throw std::runtime_error("tokenizer kind '" + kind + "' is unknown (use auto, sentencepiece, llama2c, gpt2 or byte)");
}

std::vector<int32_t> encode_with(const Tokenizer& tok, const std::string& text, bool add_bos, bool add_eos) {
  std::vector<int32_t> ids;
  if (add_bos) {
    if (tok.bos_id() < 0) throw std::runtime_error(tok.path() + ": tokenizer has no BOS token (set add_bos: false)");
    ids.push_back(tok.bos_id());
  }
  const auto body = tok.encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  if (add_eos) {
    if (tok.eos_id() < 0) throw std::runtime_error(tok.path() + ": tokenizer has no EOS token (set add_eos: false)");
    ids.push_back(tok.eos_id());
  }
  return ids;
}

std::string llama_piece_text(const std::string& piece, bool after_bos) {
  if (after_bos && !piece.empty() && piece[0] == ' ') return piece.substr(1);
  unsigned byte = 0;
  if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>' &&
      std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1)
    return std::string(1, static_cast<char>(byte));
  return piece;
}

std::string sentencepiece_plugin_path() {
  if (const char* env = std::getenv("BMOS_SENTENCEPIECE_PLUGIN"); env != nullptr && *env != '\0') return env;
  return BMOS_SENTENCEPIECE_PLUGIN;
}

}  // namespace bmos
