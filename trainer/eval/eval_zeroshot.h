// Zero-shot multiple-choice scoring with lm-evaluation-harness 0.3 semantics (BaseLM.loglikelihood and
// _loglikelihood_tokens):
//   context_enc = tok_encode(context)  ([eot] when the context is empty), continuation_enc = tok_encode(continuation)
//   (both without BOS, as the harness's Hugging Face tok_encode uses add_special_tokens=False);
//   inp = (context_enc + continuation_enc)[-(max_length + 1):][:-1]; the continuation's log-likelihood is the sum of
//   log_softmax(logits)[inplen - contlen + k, cont[k]]. (A continuation longer than max_length, where the harness
//   asserts, is scored on its last max_length tokens and counted in TaskScore::continuation_clipped.)
//   acc = [argmax_i ll_i == gold], acc_norm = [argmax_i ll_i / len(choice_i chars) == gold] (first index wins ties).
// Requests are sorted by length and batched under a token budget (right padding is harmless: the model is causal).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/eval/tasks.h"
#include "data/tokenizers/tokenizer.h"
#include "modules/language_model.h"
#include "trainer/eval/eval_prompts.h"

namespace bmos {

struct TokenRequest {
  std::vector<int32_t> context;       // non-empty
  std::vector<int32_t> continuation;  // non-empty
};

struct ZeroShotOptions {
  int64_t max_length = 0;       // 0 = model.max_seq_len()
  int64_t token_budget = 1024;  // padded tokens per forward pass (also capped to ~128M logits elements)
  bool share_context = true;    // score_task: run each context once for all its choices when the model is a Llama
                                // (eval_zeroshot_shared.h); false = every request as one full sequence
  int workers = 1;              // threads running whole batches (eval_workers.h)
  std::function<void(int64_t requests_done, int64_t requests_total)> progress;  // called under a lock
};

// Shared by the two batched paths (here and eval_zeroshot_shared.h):
// options.max_length, or the model's context when it is 0
int64_t resolve_max_length(LanguageModel& model, int64_t max_length);
// options.token_budget, capped so one forward pass holds at most ~128M logits elements of this vocabulary
int64_t forward_token_budget(LanguageModel& model, const ZeroShotOptions& options);
// throws "loglikelihood request <index>: ..." unless context and continuation both have tokens
void check_request(const TokenRequest& r, size_t index);

// Log-likelihood of each request's continuation, batched (the fast path).
std::vector<double> loglikelihood_tokens(LanguageModel& model, const std::vector<TokenRequest>& requests,
                                         const ZeroShotOptions& options = {});
// The same, one request per forward pass, no padding: the plain reference the batched path is tested against.
std::vector<double> loglikelihood_tokens_ref(LanguageModel& model, const std::vector<TokenRequest>& requests,
                                             int64_t max_length);

// harness BaseLM.loglikelihood's tokenization of (context, continuation).
TokenRequest tokenize_request(const Tokenizer& tok, const LoglikRequest& request);

struct ItemPrediction {
  int pred_acc = 0;       // argmax of total log-likelihood
  int pred_acc_norm = 0;  // argmax of log-likelihood / characters
};
// argmax rules of MultipleChoiceTask.process_results (np.argmax: the first maximum wins).
ItemPrediction predict(const std::vector<double>& logliks, const std::vector<double>& norm_chars);

struct TaskScore {
  std::string task;
  std::string metric;        // what the paper reports for this task: "acc_norm" or "acc"
  bool has_acc_norm = false;
  int64_t items = 0;
  double acc = 0, acc_stderr = 0;
  double acc_norm = 0, acc_norm_stderr = 0;  // meaningful when has_acc_norm
  int64_t requests = 0;
  int64_t tokens = 0;          // context + continuation tokens over all requests (before truncation)
  int64_t truncated = 0;       // requests cut from the left to max_length
  int64_t continuation_clipped = 0;  // of those, continuations longer than max_length: scored on their last
                                     // max_length tokens (the harness would fail on them)
  double seconds = 0;
  std::string scoring;         // "shared-context KV cache" or "full sequences"
  std::string note;
  double reported() const { return metric == "acc_norm" ? acc_norm : acc; }
};

// Prompts every record as the harness does for `task`, scores all choices and aggregates acc / acc_norm.
TaskScore score_task(LanguageModel& model, const Tokenizer& tok, const std::string& task,
                     const std::vector<TaskRecord>& records, const ZeroShotOptions& options = {});

}  // namespace bmos
