#include "trainer/ppl_sets.h"

#include <stdexcept>

#include "data/eval_c4.h"

namespace bmos {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

EvalWindows load_eval_windows(const PplSet& set, const Tokenizer& tok) {
  if (set.format == "wikitext") {
    return contiguous_windows(encode_for_eval(tok, wikitext_joined_text(set.file)), set.seq_len, set.windows, set.name);
  }
  if (set.format == "c4") {
    return c4_validation_windows(read_jsonl_texts(set.file),
                                 [&](const std::string& s) { return encode_with(tok, s, true, false); }, set.seq_len,
                                 set.windows > 0 ? set.windows : 256);
  }
  if (set.format == "text") {
    std::vector<std::string> docs =
        ends_with(set.file, ".jsonl") ? read_jsonl_texts(set.file) : std::vector<std::string>{read_text_file(set.file)};
    std::vector<int32_t> tokens;
    for (const auto& d : docs) {
      const auto ids = encode_with(tok, d, true, true);
      tokens.insert(tokens.end(), ids.begin(), ids.end());
    }
    EvalWindows w = contiguous_windows(tokens, set.seq_len, set.windows, set.name);
    w.protocol = "documents of " + set.file + " with BOS/EOS, concatenated, " + std::to_string(w.count()) +
                 " windows of " + std::to_string(set.seq_len);
    return w;
  }
  throw std::invalid_argument("eval.ppl '" + set.name + "': unknown format '" + set.format + "'");
}

}  // namespace bmos
