#include "data/eval/eval_c4.h"

#include <zlib.h>

#include <fstream>
#include <memory>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "data/eval/eval_pyrandom.h"

namespace bmos {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The whole file, gunzipped when its name ends in .gz.
std::string read_maybe_gzip(const std::string& path) {
  if (!ends_with(path, ".gz")) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(path + ": cannot open (check the path)");
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  std::unique_ptr<gzFile_s, int (*)(gzFile)> gz(gzopen(path.c_str(), "rb"), gzclose);
  if (!gz) throw std::runtime_error(path + ": cannot open (check the path)");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  if (n < 0) {
    int err = 0;
    throw std::runtime_error(path + ": gzip stream is corrupt (" + gzerror(gz.get(), &err) + ")");
  }
  return out;
}

}  // namespace

std::vector<std::string> read_jsonl_texts(const std::string& path, const std::string& key) {
  const std::string data = read_maybe_gzip(path);
  std::vector<std::string> texts;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    ++line_no;
    std::string_view line(data.data() + pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // trailing blank line
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(path + ":" + std::to_string(line_no) + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains(key) || !j[key].is_string())
      throw std::runtime_error(path + ":" + std::to_string(line_no) + ": expected a JSON object with a string \"" +
                               key + "\" field");
    texts.push_back(j[key].get<std::string>());
  }
  if (texts.empty()) throw std::runtime_error(path + ": no documents (empty JSON-lines file)");
  return texts;
}

EvalWindows c4_validation_windows(const std::vector<std::string>& docs,
                                  const std::function<std::vector<int32_t>(const std::string&)>& tokenize,
                                  int64_t seq_len, int64_t nwindows, uint64_t seed, C4SamplerStats* stats) {
  if (docs.empty()) throw std::invalid_argument("c4 sampler: no documents");
  if (seq_len < 2) throw std::invalid_argument("c4 sampler: seq_len must be >= 2");
  PythonRandom rng(seed);
  std::unordered_map<int64_t, std::vector<int32_t>> cache;  // a document can be drawn more than once
  int64_t long_enough_seen = 0, draws = 0, source_tokens = 0, exact_fits = 0;
  const int64_t ndocs = static_cast<int64_t>(docs.size());
  EvalWindows w;
  w.seq_len = seq_len;
  w.tokens.reserve(static_cast<size_t>(nwindows * seq_len));
  for (int64_t k = 0; k < nwindows; ++k) {
    const std::vector<int32_t>* ids = nullptr;
    int64_t doc = 0;
    while (true) {
      doc = rng.randint(0, ndocs - 1);
      ++draws;
      auto it = cache.find(doc);
      if (it == cache.end()) {
        it = cache.emplace(doc, tokenize(docs[static_cast<size_t>(doc)])).first;
        if (static_cast<int64_t>(it->second.size()) >= seq_len) ++long_enough_seen;
        if (static_cast<int64_t>(cache.size()) == ndocs && long_enough_seen == 0)
          throw std::runtime_error("c4 sampler: none of the " + std::to_string(ndocs) + " documents has " +
                                   std::to_string(seq_len) + " tokens (lower seq_len or use a larger C4 file)");
      }
      if (static_cast<int64_t>(it->second.size()) >= seq_len) {
        ids = &it->second;
        break;
      }
    }
    const int64_t len = static_cast<int64_t>(ids->size());
    // A document of exactly seq_len tokens makes the reference call randint(0, -1), which raises; its only window is
    // the whole document, taken without a draw (as later GPTQ forks do for this case).
    const int64_t start = len == seq_len ? 0 : rng.randint(0, len - seq_len - 1);
    if (len == seq_len) ++exact_fits;
    w.tokens.insert(w.tokens.end(), ids->begin() + start, ids->begin() + start + seq_len);
    source_tokens += len;
  }
  w.source_tokens = source_tokens;
  w.protocol = "GPTQ c4 sampler: random.seed(" + std::to_string(seed) + "), " + std::to_string(nwindows) +
               " windows from documents of >= " + std::to_string(seq_len) + " tokens (" + std::to_string(draws) +
               " draws over " + std::to_string(ndocs) + " documents" +
               (exact_fits ? ", " + std::to_string(exact_fits) + " exact-length documents taken whole" : "") + ")";
  if (stats) {
    stats->draws = draws;
    stats->docs_tokenized = static_cast<int64_t>(cache.size());
  }
  return w;
}

}  // namespace bmos
