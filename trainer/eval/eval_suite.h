// One evaluation run as a job's `eval:` section describes it: perplexity sets (wikitext / c4 / text) and zero-shot
// tasks, with a progress line, a table for stdout and a JSON record holding every number and the protocol settings.
// `bmos eval` and the trainer's periodic evaluation both call run_eval_suite.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizers/tokenizer.h"
#include "modules/language_model.h"
#include "trainer/eval/eval_ppl.h"
#include "trainer/eval/eval_zeroshot.h"
#include "trainer/job/job_config.h"

namespace bmos {

struct EvalRunOptions {
  int64_t token_budget = 1024;  // tokens per forward pass: padded requests (zero-shot), token_budget / seq_len windows
  bool progress = true;         // a progress line on stderr
  bool share_context = true;    // zero-shot: one pass per context for LLaMA models (ZeroShotOptions::share_context)
  int workers = 1;              // threads running whole batches (eval_workers.h)
};

struct EvalReport {
  std::vector<PplSet> ppl_sets;      // as run (seq_len resolved)
  std::vector<PplResult> ppl;
  std::vector<TaskScore> tasks;
  double zero_shot_average = 0;      // mean of each task's reported metric (acc_norm or acc), over the tasks run
  int64_t limit = 0;
  int64_t max_length = 0;            // zero-shot context limit (the model's max_seq_len)
  std::string tasks_dir;
  double seconds = 0;
};

EvalReport run_eval_suite(LanguageModel& model, const Tokenizer& tok, const EvalConfig& config,
                          const EvalRunOptions& options = {});

// Human table (perplexity, then one row per task and the average, then protocol notes).
std::string format_eval_table(const EvalReport& report);
// Every number and setting of the report (callers add the model and tokenizer they evaluated).
nlohmann::json eval_report_json(const EvalReport& report);

}  // namespace bmos
