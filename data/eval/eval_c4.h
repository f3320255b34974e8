// The C4 validation perplexity set exactly as GPTQ's datautils.get_c4 draws it (and BinaryMoS, OneBit, ... reuse it):
//
//   random.seed(0)
//   for _ in range(256):
//       while True:                                   # re-draw until a document has >= seq_len tokens
//           i = random.randint(0, len(valdata) - 1)
//           tmp = tokenizer(valdata[i]['text'])       # Hugging Face tokenizer: BOS + ids
//           if len(tmp) >= seq_len: break
//       i = random.randint(0, len(tmp) - seq_len - 1)
//       windows.append(tmp[i:i + seq_len])
//
// on en/c4-validation.00000-of-00008.json.gz (45,576 documents). PythonRandom reproduces CPython's draws, so with the
// same file and tokenizer the windows are the published ones. No torch here.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/eval/eval_windows.h"

namespace bmos {

// The `key` field of every line of a JSON-lines file (`.jsonl`, or gzip-compressed when the name ends in `.gz`), in
// file order. A line that is not a JSON object with a string `key` is an error naming the file and line.
std::vector<std::string> read_jsonl_texts(const std::string& path, const std::string& key = "text");

struct C4SamplerStats {
  int64_t draws = 0;            // document draws, rejected ones included
  int64_t docs_tokenized = 0;   // distinct documents tokenized
};

// The GPTQ procedure above over `docs`; `tokenize` must return the ids a Hugging Face tokenizer returns for the
// document (BOS + encode, see encode_for_eval). Throws when no document has seq_len tokens. A drawn document of
// exactly seq_len tokens (where the reference's randint(0, -1) raises) is taken whole, without a start draw.
EvalWindows c4_validation_windows(const std::vector<std::string>& docs,
                                  const std::function<std::vector<int32_t>(const std::string&)>& tokenize,
                                  int64_t seq_len, int64_t nwindows = 256, uint64_t seed = 0,
                                  C4SamplerStats* stats = nullptr);

}  // namespace bmos
