#include "data/tokenizers/bpe_files.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "data/hash.h"
#include "data/tokenizers/gpt2_pretokenizer.h"
#include "data/tokenizers/llama3_pretokenizer.h"

namespace bmos {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& file, const std::string& key, const std::string& what) {
  throw std::runtime_error(file + ": " + (key.empty() ? "" : key + ": ") + what);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open (check tokenizer.path)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse(const std::string& file, const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(file, "", std::string("malformed JSON (") + e.what() + ")");
  }
}

bool is_set(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// An AddedToken as tokenizer.json and tokenizer_config.json write it; the flags we do not implement are errors.
// A token id: an integer in [0, 2^31). A float (1e300 would overflow the conversion), a string or an out-of-range
// number is an error naming the key.
int32_t token_id(const std::string& file, const std::string& key, const json& v) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
    fail(file, key, "a token id must be an integer in [0, 2^31), got " + v.dump());
  return static_cast<int32_t>(v.get<int64_t>());
}

BpeFiles::AddedToken added_token(const std::string& file, const std::string& key, const json& t, int32_t id, bool nfc) {
  const std::string content = t.at("content");
  if (content.empty()) fail(file, key, "an added token with empty content");
  for (const char* flag : {"lstrip", "rstrip", "single_word"})
    if (t.value(flag, false))
      fail(file, key, "'" + content + "' has " + flag + ": true, which binarymos does not implement");
  if (nfc && t.value("normalized", false))
    fail(file, key,
         "'" + content + "' is normalized: true under an NFC normalizer, which binarymos does not implement");
  return {content, id, t.value("special", false)};
}

// tokenizer_config.json and special_tokens_map.json beside the tokenizer, where present.
struct Config {
  std::string file, map_file;
  json config = json::object(), map = json::object();

  // The special token under key ("<s>", {"content": "<s>"}, or null for none: ""), from tokenizer_config.json, else
  // special_tokens_map.json; nullopt when neither names it.
  std::optional<std::string> token(const std::string& key) const {
    for (const auto* j : {&config, &map}) {
      if (!j->contains(key)) continue;
      const json& v = (*j)[key];
      if (v.is_null()) return std::string();
      return v.is_string() ? v.get<std::string>() : v.at("content").get<std::string>();
    }
    return std::nullopt;
  }
  // The file that names key, for messages.
  const std::string& source(const std::string& key) const { return config.contains(key) ? file : map_file; }
};

// model.type BPE with a byte-level pre-tokenizer and decoder: the pipeline of a tokenizer.json.
void read_tokenizer_json(const std::string& file, const json& j, BpeFiles& f, std::string& template_bos) {
  const json& model = j.at("model");
  const std::string type = model.value("type", "BPE");
  if (type != "BPE")
    fail(file, "",
         "not a byte-level BPE tokenizer.json (model.type is '" + type +
             "'); a SentencePiece model needs its tokenizer.model");
  if (is_set(model, "dropout")) fail(file, "model.dropout", "BPE dropout is not implemented");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (is_set(model, key) && !model[key].get<std::string>().empty())
      fail(file, std::string("model.") + key, "not implemented (byte-level BPE has none)");
  if (model.value("byte_fallback", false))
    fail(file, "model.byte_fallback", "true: a SentencePiece-style BPE, not byte-level (use its tokenizer.model)");
  f.ignore_merges = model.value("ignore_merges", false);
  for (const auto& [piece, id] : model.at("vocab").items())
    f.vocab.emplace_back(piece, token_id(file, "model.vocab['" + piece + "']", id));
  for (const auto& m : model.at("merges")) {
    if (m.is_array()) {
      f.merges.emplace_back(m.at(0).get<std::string>(), m.at(1).get<std::string>());
      continue;
    }
    const auto s = m.get<std::string>();
    const size_t sp = s.find(' ');
    if (sp == std::string::npos) fail(file, "model.merges", "entry '" + s + "' is not 'A B'");
    f.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
  }

  if (is_set(j, "normalizer")) {
    const std::string t = j["normalizer"].value("type", "");
    if (t != "NFC") fail(file, "normalizer", "type '" + t + "' is not implemented (binarymos implements NFC)");
    f.nfc = true;
  }

  if (!is_set(j, "pre_tokenizer")) fail(file, "pre_tokenizer", "none: not a byte-level BPE tokenizer.json");
  const json& pre = j["pre_tokenizer"];
  const std::string pre_type = pre.value("type", "");
  if (pre_type == "ByteLevel") {  // GPT-2's regex, then the byte mapping
    if (!pre.value("use_regex", true))
      fail(file, "pre_tokenizer.use_regex", "false (no split at all) is not implemented");
    f.pattern = BpeFiles::Pattern::kGpt2;
    f.add_prefix_space = pre.value("add_prefix_space", false);
  } else if (pre_type == "Sequence") {  // Split(regex) then ByteLevel without its own regex
    const json& seq = pre.at("pretokenizers");
    if (seq.size() != 2 || seq[0].value("type", "") != "Split" || seq[1].value("type", "") != "ByteLevel")
      fail(file, "pre_tokenizer.pretokenizers", "only [Split, ByteLevel] is implemented, got " + seq.dump());
    const json& split = seq[0];
    if (!split.at("pattern").contains("Regex"))
      fail(file, "pre_tokenizer.pretokenizers[0].pattern", "a String pattern is not implemented");
    if (split.value("behavior", "") != "Isolated" || split.value("invert", false))
      fail(file, "pre_tokenizer.pretokenizers[0]", "only behavior Isolated without invert is implemented");
    const std::string regex = split["pattern"]["Regex"];
    if (regex == kGpt2Pattern)
      f.pattern = BpeFiles::Pattern::kGpt2;
    else if (regex == kLlama3Pattern)
      f.pattern = BpeFiles::Pattern::kLlama3;
    else if (regex == kQwen2Pattern)
      f.pattern = BpeFiles::Pattern::kQwen2;
    else
      fail(file, "pre_tokenizer.pretokenizers[0].pattern.Regex",
           "'" + regex + "' is not a pattern binarymos implements (GPT-2's, Llama-3's or Qwen2's)");
    if (seq[1].value("use_regex", true) || seq[1].value("add_prefix_space", false))
      fail(file, "pre_tokenizer.pretokenizers[1]",
           "ByteLevel after a Split must have use_regex and add_prefix_space false");
  } else {
    fail(file, "pre_tokenizer",
         "type '" + pre_type + "' is not implemented (ByteLevel, or Sequence [Split, ByteLevel])");
  }

  // The post-processor: ByteLevel only fixes offsets; TemplateProcessing may put a BOS first and nothing else.
  if (is_set(j, "post_processor")) {
    const json& post = j["post_processor"];
    const json steps = post.value("type", "") == "Sequence" ? post.at("processors") : json::array({post});
    for (const json& p : steps) {
      const std::string t = p.value("type", "");
      if (t == "ByteLevel") continue;
      if (t != "TemplateProcessing") fail(file, "post_processor", "type '" + t + "' is not implemented");
      const json& single = p.at("single");
      const bool plain = single.size() == 1 && single[0].contains("Sequence");
      const bool bos = single.size() == 2 && single[0].contains("SpecialToken") && single[1].contains("Sequence");
      if (!plain && !bos)
        fail(file, "post_processor.single", "only $A or <special> $A is implemented, got " + single.dump());
      if (bos) {
        const json& ids = p.at("special_tokens").at(single[0]["SpecialToken"].at("id").get<std::string>());
        if (ids.at("tokens").size() != 1) fail(file, "post_processor.special_tokens", "a BOS of several tokens");
        template_bos = ids["tokens"][0];
      }
    }
  }
  if (!is_set(j, "decoder") || j["decoder"].value("type", "") != "ByteLevel")
    fail(file, "decoder", "not ByteLevel: not a byte-level BPE tokenizer.json");
  for (const char* key : {"truncation", "padding"})
    if (is_set(j, key)) fail(file, key, "set; binarymos does not truncate or pad when encoding");

  if (j.contains("added_tokens"))
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      const json& t = j["added_tokens"][i];
      const std::string key = "added_tokens[" + std::to_string(i) + "]";
      f.added.push_back(added_token(file, key, t, token_id(file, key + ".id", t.at("id")), f.nfc));
    }
}

// vocab.json + merges.txt, with the regex and normalizer that tokenizer_config.json's slow tokenizer class implies.
void read_vocab_merges(const fs::path& folder, const Config& c, BpeFiles& f, Sha256& h) {
  const std::string vocab_file = (folder / "vocab.json").string(), merges_file = (folder / "merges.txt").string();
  const std::string vtext = read_text(vocab_file), mtext = read_text(merges_file);
  h.update(vtext);
  h.update(std::string("\0merges\0", 8));
  h.update(mtext);
  const json vocab = parse(vocab_file, vtext);
  for (const auto& [piece, id] : vocab.items())
    f.vocab.emplace_back(piece, token_id(vocab_file, "['" + piece + "']", id));
  std::istringstream lines(mtext);
  std::string line;
  for (int lineno = 1; std::getline(lines, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size())
      fail(merges_file, "line " + std::to_string(lineno), "expected 'A B', got '" + line + "'");
    f.merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }

  // The slow class: tokenizer_config.json's tokenizer_class, else the one Hugging Face's AutoTokenizer maps
  // config.json's model_type to (OPT names none), else GPT2Tokenizer (GPT-2's own files have no configuration).
  std::string cls = c.config.value("tokenizer_class", "");
  const std::string model_config = (folder / "config.json").string();
  if (cls.empty() && fs::exists(model_config)) {
    const std::string type = parse(model_config, read_text(model_config)).value("model_type", "");
    if (type == "gpt2" || type == "opt")
      cls = "GPT2Tokenizer";
    else if (type == "qwen2" || type == "qwen3")
      cls = "Qwen2Tokenizer";
    else
      fail(model_config, "model_type",
           "'" + type +
               "' (and no tokenizer_class in tokenizer_config.json): binarymos "
               "knows the slow tokenizer of gpt2, opt, qwen2 and qwen3 only (give the model's "
               "tokenizer.json)");
    h.update(std::string("\0model_type\0", 12) + type);
  }
  if (cls.empty() && c.file.empty()) cls = "GPT2Tokenizer";
  if (cls == "GPT2Tokenizer" || cls == "GPT2TokenizerFast") {
    f.pattern = BpeFiles::Pattern::kGpt2;
    f.add_prefix_space = c.config.value("add_prefix_space", false);
  } else if (cls == "Qwen2Tokenizer" || cls == "Qwen2TokenizerFast") {
    f.pattern = BpeFiles::Pattern::kQwen2;
    f.nfc = true;  // Qwen2Tokenizer normalizes to NFC before tokenizing
  } else {
    fail(c.file, "tokenizer_class",
         "'" + cls +
             "': binarymos reads vocab.json + merges.txt as GPT2Tokenizer or "
             "Qwen2Tokenizer only (give the model's tokenizer.json)");
  }
  if (c.config.contains("added_tokens_decoder"))
    for (const auto& [id, t] : c.config["added_tokens_decoder"].items())
      f.added.push_back(added_token(c.file, "added_tokens_decoder." + id, t, std::stoi(id), f.nfc));
}

int32_t find_id(const BpeFiles& f, const std::string& content) {
  for (const auto& t : f.added)
    if (t.content == content) return t.id;
  for (const auto& [piece, id] : f.vocab)
    if (piece == content) return id;
  return -1;
}

BpeFiles read(const std::string& path) {
  const bool dir = fs::is_directory(path);
  const fs::path folder = dir ? fs::path(path) : fs::path(path).parent_path();
  std::string tokenizer_json = dir ? "" : path;
  if (dir && fs::exists(folder / "tokenizer.json")) tokenizer_json = (folder / "tokenizer.json").string();
  if (dir && tokenizer_json.empty() && !(fs::exists(folder / "vocab.json") && fs::exists(folder / "merges.txt")))
    fail(path, "", "no tokenizer.json, and no vocab.json + merges.txt (point tokenizer.path at the tokenizer's files)");

  Config c;
  std::string config_text, map_text;
  if (fs::exists(folder / "tokenizer_config.json")) {
    c.file = (folder / "tokenizer_config.json").string();
    config_text = read_text(c.file);
    c.config = parse(c.file, config_text);
  }
  if (fs::exists(folder / "special_tokens_map.json")) {
    c.map_file = (folder / "special_tokens_map.json").string();
    map_text = read_text(c.map_file);
    c.map = parse(c.map_file, map_text);
  }
  if (c.config.value("split_special_tokens", false))
    fail(c.file, "split_special_tokens",
         "true is not implemented (binarymos' encode() leaves special tokens in the text plain, encode_special() cuts "
         "them out: Hugging Face's default)");

  BpeFiles f;
  Sha256 h;
  std::string template_bos;  // the BOS tokenizer.json's post-processor puts first, "" for none
  const std::string& file = tokenizer_json.empty() ? path : tokenizer_json;
  if (!tokenizer_json.empty()) {
    const std::string text = read_text(tokenizer_json);
    h.update(text);
    read_tokenizer_json(tokenizer_json, parse(tokenizer_json, text), f, template_bos);
  } else {
    read_vocab_merges(folder, c, f, h);
  }
  if (!config_text.empty()) h.update(std::string("\0tokenizer_config.json\0", 23) + config_text);
  if (!map_text.empty()) h.update(std::string("\0special_tokens_map.json\0", 25) + map_text);
  f.hash = h.hex();

  // Special tokens the configuration names are matched in the text too (Hugging Face adds them when missing).
  const bool configured = !c.file.empty() || !c.map_file.empty();
  std::vector<std::pair<std::string, std::string>> names;  // (key, content)
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
    if (const auto t = c.token(key); t && !t->empty()) names.emplace_back(key, *t);
  for (const auto* j : {&c.config, &c.map})
    for (const json& t : j->value("additional_special_tokens", json::array())) {
      const std::string content = t.is_string() ? t.get<std::string>() : t.at("content").get<std::string>();
      names.emplace_back("additional_special_tokens", content);
    }
  if (!configured && tokenizer_json.empty()) names.emplace_back("GPT2Tokenizer default", "<|endoftext|>");
  for (const auto& [key, content] : names) {
    bool known = false;
    for (const auto& t : f.added) known = known || t.content == content;
    if (known) continue;
    const int32_t id = find_id(f, content);
    if (id < 0)
      fail(c.source(key).empty() ? file : c.source(key), key,
           "'" + content + "' is neither in the vocabulary nor an added token");
    f.added.push_back({content, id, true});
  }

  // BOS: the post-processor's, else the configured one; EOS: the configured one. Files that name neither (GPT-2's)
  // get GPT-2's <|endoftext|> or a <s> / </s> from the vocabulary.
  const auto bos = c.token("bos_token");
  if (!template_bos.empty() && bos && *bos != template_bos)
    fail(c.source("bos_token"), "bos_token",
         "'" + *bos + "', but " + file + "'s post_processor puts '" + template_bos + "' first");
  if (c.config.contains("add_bos_token")) {
    const bool add = c.config["add_bos_token"];
    if (!tokenizer_json.empty() && add != !template_bos.empty())
      fail(c.file, "add_bos_token",
           std::string(add ? "true" : "false") + ", but " + file + "'s post_processor " +
               (add ? "adds no BOS" : "adds " + template_bos));
    if (add && (!bos || bos->empty())) fail(c.file, "add_bos_token", "true without a bos_token");
  }
  const auto first_in_vocab = [&](std::initializer_list<const char*> candidates) {
    for (const char* s : candidates)
      if (find_id(f, s) >= 0) return std::string(s);
    return std::string();
  };
  f.bos = !template_bos.empty() ? template_bos
          : bos                 ? *bos
          : configured          ? ""
                                : first_in_vocab({"<|endoftext|>", "<s>"});
  const auto eos = c.token("eos_token");
  f.eos = eos ? *eos : configured ? "" : first_in_vocab({"<|endoftext|>", "</s>"});
  return f;
}

}  // namespace

BpeFiles read_bpe_files(const std::string& path) {
  try {
    return read(path);
  } catch (const json::exception& e) {  // a key of the wrong type or missing: nlohmann's message names it
    throw std::runtime_error(path + ": malformed tokenizer files (" + e.what() + ")");
  }
}

}  // namespace bmos
