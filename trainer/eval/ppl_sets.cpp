#include "trainer/eval/ppl_sets.h"

#include <stdexcept>

#include "data/eval/eval_c4.h"

namespace bmos {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

EvalWindows load_eval_windows(const PplSet& set, const Tokenizer& tok) {
  const std::string what = set.name + " (" + set.file + ")";
  if (set.format == "wikitext") {
    EvalWindows w = contiguous_windows(encode_for_eval(tok, wikitext_joined_text(set.file)), set.seq_len, set.windows,
                                       what);
    w.protocol = "wikitext rows joined with \"\\n\\n\", BOS + ids; " + w.protocol;
    return w;
  }
  if (set.format == "c4") {
    return c4_validation_windows(
        read_jsonl_texts(set.file), [&](const std::string& t) { return encode_for_eval(tok, t); }, set.seq_len,
        set.windows > 0 ? set.windows : 256, /*seed=*/0);
  }
  if (set.format == "text") {
    if (!ends_with(set.file, ".jsonl")) {
      EvalWindows w = contiguous_windows(encode_for_eval(tok, read_text_file(set.file)), set.seq_len, set.windows, what);
      w.protocol = "whole file, BOS + ids; " + w.protocol;
      return w;
    }
    std::vector<int32_t> tokens;
    for (const auto& d : read_jsonl_texts(set.file)) {
      const auto ids = encode_with(tok, d, true, true);
      tokens.insert(tokens.end(), ids.begin(), ids.end());
    }
    EvalWindows w = contiguous_windows(tokens, set.seq_len, set.windows, what);
    w.protocol = "JSON-lines documents, each BOS + ids + EOS, concatenated; " + w.protocol;
    return w;
  }
  throw std::invalid_argument(what + ": unknown perplexity format '" + set.format + "' (wikitext, c4 or text)");
}

}  // namespace bmos
