// GPT-2 / OPT byte-level BPE (vocab.json + merges.txt, or a Hugging Face tokenizer.json with a ByteLevel
// pre-tokenizer). Text is cut by the GPT-2 pre-tokenizer (data/tokenizers/gpt2_pretokenizer.h), each piece's bytes are mapped to
// printable code points (GPT-2's bytes_to_unicode), and BPE runs inside each piece as GPT-2's encoder.py does: merge
// every occurrence of the lowest-ranked adjacent pair, left to right, until no pair has a rank.
// Special tokens (<|endoftext|>) are never produced from text: text is always plain text.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "data/tokenizers/gpt2_pretokenizer.h"
#include "data/hash.h"
#include "data/tokenizers/tokenizer_kinds.h"

namespace bmos {

namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open (check tokenizer.path)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

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

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | uint32_t(b); }

class Gpt2Tokenizer : public Tokenizer {
 public:
  explicit Gpt2Tokenizer(const std::string& path) : path_(path) {
    nlohmann::json vocab;
    std::vector<std::pair<std::string, std::string>> merges;
    std::string special_map;
    std::vector<int32_t> special;  // ids that decode to nothing
    Sha256 h;
    try {
      if (fs::is_directory(path) && fs::exists(fs::path(path) / "vocab.json") &&
          fs::exists(fs::path(path) / "merges.txt")) {
        const std::string vtext = read_file((fs::path(path) / "vocab.json").string());
        const std::string mtext = read_file((fs::path(path) / "merges.txt").string());
        h.update(vtext);
        h.update(std::string("\0merges\0", 8));
        h.update(mtext);
        vocab = nlohmann::json::parse(vtext);
        std::istringstream lines(mtext);
        std::string line;
        int lineno = 0;
        while (std::getline(lines, line)) {
          ++lineno;
          if (!line.empty() && line.back() == '\r') line.pop_back();
          if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
          const size_t sp = line.find(' ');
          if (sp == std::string::npos || sp == 0 || sp + 1 == line.size())
            throw std::runtime_error("merges.txt line " + std::to_string(lineno) + ": expected 'A B', got '" + line +
                                     "'");
          merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
        }
        if (fs::exists(fs::path(path) / "special_tokens_map.json"))
          special_map = read_file((fs::path(path) / "special_tokens_map.json").string());
      } else {
        const std::string file = fs::is_directory(path) ? (fs::path(path) / "tokenizer.json").string() : path;
        const std::string text = read_file(file);
        h.update(text);
        const auto j = nlohmann::json::parse(text);
        const auto& model = j.at("model");
        if (model.value("type", "BPE") != "BPE" || !j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null() ||
            j["pre_tokenizer"].value("type", "") != "ByteLevel")
          throw std::runtime_error("not a byte-level BPE tokenizer.json (model.type BPE with a ByteLevel "
                                   "pre_tokenizer); a LLaMA tokenizer needs its tokenizer.model (sentencepiece)");
        add_prefix_space_ = j["pre_tokenizer"].value("add_prefix_space", false);
        vocab = model.at("vocab");
        for (const auto& m : model.at("merges")) {
          if (m.is_array()) {
            merges.emplace_back(m.at(0).get<std::string>(), m.at(1).get<std::string>());
          } else {
            const auto s = m.get<std::string>();
            const size_t sp = s.find(' ');
            if (sp == std::string::npos) throw std::runtime_error("model.merges entry '" + s + "' is not 'A B'");
            merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
          }
        }
        if (j.contains("added_tokens"))
          for (const auto& t : j["added_tokens"]) {
            vocab[t.at("content").get<std::string>()] = t.at("id").get<int>();
            if (t.value("special", false)) special.push_back(t.at("id").get<int32_t>());
          }
      }
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(path + ": malformed GPT-2 tokenizer JSON (" + e.what() + ")");
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(path + ": " + e.what());
    }
    hash_ = h.hex();

    int32_t max_id = -1;
    for (const auto& [piece, id] : vocab.items()) max_id = std::max(max_id, id.get<int32_t>());
    pieces_.assign(max_id + 1, "");
    for (const auto& [piece, id] : vocab.items()) {
      pieces_[id.get<int32_t>()] = piece;
      ids_.emplace(piece, id.get<int32_t>());
    }
    // A merge whose result is not in the vocabulary could never be emitted (encoder.py would fail on it): it is
    // dropped with a warning. (The shared GPT-2 copy has one: its id 40559 was renamed from "ĠClaude".)
    for (size_t r = 0; r < merges.size(); ++r) {
      const int32_t a = find(merges[r].first), b = find(merges[r].second), m = find(merges[r].first + merges[r].second);
      if (a < 0 || b < 0)
        throw std::runtime_error(path + ": merge " + std::to_string(r + 1) + " ('" + merges[r].first + " " +
                                 merges[r].second + "') names a piece missing from the vocabulary");
      if (m < 0) {
        std::fprintf(stderr, "warning: %s: merge %zu ('%s %s') makes a piece missing from the vocabulary; dropped\n",
                     path.c_str(), r + 1, merges[r].first.c_str(), merges[r].second.c_str());
        continue;
      }
      merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(r), m});
    }
    const auto cps = byte_to_code_point();
    bytes_.assign(pieces_.size(), "");
    std::unordered_map<uint32_t, char> cp_to_byte;
    for (int b = 0; b < 256; ++b) {
      cp_to_byte[cps[b]] = static_cast<char>(b);
      byte_ids_[b] = find(utf8(cps[b]));
      if (byte_ids_[b] < 0)
        throw std::runtime_error(path + ": vocabulary lacks the byte piece for byte " + std::to_string(b) +
                                 " (not a byte-level BPE vocabulary)");
    }
    // Each piece's raw bytes, for decoding; pieces outside the byte alphabet (special tokens) stay empty.
    for (size_t id = 0; id < pieces_.size(); ++id) {
      std::string out;
      bool plain = !pieces_[id].empty();
      const std::string& p = pieces_[id];
      for (size_t i = 0; i < p.size() && plain;) {
        const unsigned char c = p[i];
        const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t k = 1; k < len && i + k < p.size(); ++k) cp = (cp << 6) | (p[i + k] & 0x3F);
        const auto it = cp_to_byte.find(cp);
        if (it == cp_to_byte.end()) plain = false;
        else out += it->second;
        i += len;
      }
      if (plain) bytes_[id] = out;
    }
    bos_ = special_id(special_map, "bos_token", {"<|endoftext|>", "<s>"});
    eos_ = special_id(special_map, "eos_token", {"<|endoftext|>", "</s>"});
    special.push_back(bos_);
    special.push_back(eos_);
    for (int32_t id : special)
      if (id >= 0 && id < static_cast<int32_t>(bytes_.size())) bytes_[id].clear();
  }

  std::vector<int32_t> encode(const std::string& raw) const override {
    const bool prefix = add_prefix_space_ && !raw.empty() && raw[0] != ' ';
    const std::string prefixed = prefix ? " " + raw : std::string();
    const std::string& text = prefix ? prefixed : raw;
    std::vector<int32_t> out;
    std::vector<int32_t> word;
    for (const auto& [start, len] : gpt2_pretokenize(text)) {
      word.clear();
      for (size_t i = start; i < start + len; ++i) word.push_back(byte_ids_[static_cast<unsigned char>(text[i])]);
      bpe(word);
      out.insert(out.end(), word.begin(), word.end());
    }
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) out += decode_piece(-1, id);
    return out;
  }

  std::string decode_piece(int32_t, int32_t id) const override {
    if (id < 0 || id >= vocab_size())
      throw std::runtime_error(path_ + ": token id " + std::to_string(id) + " outside the vocabulary of " +
                               std::to_string(vocab_size()));
    return bytes_[id];  // empty for special tokens (BOS, EOS, tokenizer.json's special added tokens)
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

  // The special token from special_tokens_map.json ("bos_token": "<s>" or {"content": "<s>"}), else the first
  // candidate present in the vocabulary, else -1.
  int32_t special_id(const std::string& special_map, const char* key, std::vector<std::string> candidates) const {
    if (!special_map.empty()) {
      const auto j = nlohmann::json::parse(special_map, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains(key)) {
        const auto& v = j[key];
        if (v.is_string()) candidates.insert(candidates.begin(), v.get<std::string>());
        else if (v.is_object() && v.contains("content")) candidates.insert(candidates.begin(), v["content"].get<std::string>());
      }
    }
    for (const auto& c : candidates)
      if (find(c) >= 0) return find(c);
    return -1;
  }

  std::string path_, hash_;
  std::vector<std::string> pieces_;  // byte-mapped piece text, as in vocab.json
  std::vector<std::string> bytes_;   // raw bytes of each piece
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256] = {};
  int32_t bos_ = -1, eos_ = -1;
  bool add_prefix_space_ = false;  // tokenizer.json pre_tokenizer.add_prefix_space: a space before text without one
};

}  // namespace

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& path) { return std::make_unique<Gpt2Tokenizer>(path); }

}  // namespace bmos
