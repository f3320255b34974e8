#include "data/eval/eval_windows.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace bmos {

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open evaluation text (check the path; eval sets live under "
                                          "../shared/data/text)");
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  if (text.empty()) throw std::runtime_error(path + ": evaluation text is empty");
  return text;
}

std::string wikitext_joined_text(const std::string& path) {
  const std::string raw = read_text_file(path);
  // Rows as the Hugging Face wikitext loader yields them: each line with its "\n", whitespace-only lines as "".
  std::string joined;
  joined.reserve(raw.size() * 2);
  size_t pos = 0;
  bool first = true;
  while (pos < raw.size()) {
    size_t end = raw.find('\n', pos);
    const bool has_newline = end != std::string::npos;
    if (!has_newline) end = raw.size();
    std::string_view line(raw.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r')
      throw std::runtime_error(path + ": CRLF line ends; the wikitext protocol needs the '\\n' lines of wiki.test.raw "
                                      "(strip the '\\r' first, e.g. `sed -i 's/\\r$//'`)");
    if (!first) joined += "\n\n";
    first = false;
    if (line.find_first_not_of(" \t\f\v") != std::string_view::npos) {
      joined.append(line);
      if (has_newline) joined += '\n';
    }
    pos = end + 1;
  }
  return joined;
}

std::vector<int32_t> encode_for_eval(const Tokenizer& tok, const std::string& text) {
  return encode_with(tok, text, /*add_bos=*/tok.bos_id() >= 0, /*add_eos=*/false);
}

EvalWindows contiguous_windows(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t max_windows,
                               const std::string& what) {
  if (seq_len < 2) throw std::invalid_argument(what + ": seq_len must be >= 2, got " + std::to_string(seq_len));
  int64_t n = static_cast<int64_t>(tokens.size()) / seq_len;
  if (n == 0)
    throw std::runtime_error(what + ": " + std::to_string(tokens.size()) + " tokens do not fill one window of " +
                             std::to_string(seq_len) + " (lower seq_len)");
  if (max_windows > 0 && max_windows < n) n = max_windows;
  EvalWindows w;
  w.seq_len = seq_len;
  w.tokens.assign(tokens.begin(), tokens.begin() + n * seq_len);
  w.source_tokens = static_cast<int64_t>(tokens.size());
  w.protocol = "contiguous: " + std::to_string(tokens.size()) + " tokens // " + std::to_string(seq_len) + " = " +
               std::to_string(static_cast<int64_t>(tokens.size()) / seq_len) + " non-overlapping windows" +
               (max_windows > 0 ? " (first " + std::to_string(n) + " used)" : "");
  return w;
}

}  // namespace bmos
