// The token windows of one job-file perplexity set (eval.ppl[i]), by its format:
//   wikitext  lines joined with "\n\n", tokenized once with BOS, numel // seq_len windows (GPTQ protocol)
//   c4        JSON lines, the seeded GPTQ validation sampler (256 windows of documents >= seq_len tokens)
//   text      a .jsonl file: its documents ("text"), each BOS + ids + EOS, concatenated (teacher-generated held-out
//             text); any other file: the whole file, BOS + ids; numel // seq_len windows
// Used by `bmos eval` and by the trainer's evaluations alike.
#pragma once

#include "data/eval/eval_windows.h"
#include "data/tokenizers/tokenizer.h"
#include "trainer/job/job_config.h"

namespace bmos {

EvalWindows load_eval_windows(const PplSet& set, const Tokenizer& tok);

}  // namespace bmos
