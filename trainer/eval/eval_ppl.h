// Perplexity over token windows (GPTQ protocol): every window is one independent sequence; the model predicts tokens
// 1..T-1 of it from the ones before; ppl = exp(sum of NLL / number of predicted tokens), sums in double precision.
// (GPTQ's loop scales each window's mean loss by seq_len and divides by nsamples * seq_len: the same number, since all
// windows predict T-1 tokens.)
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/eval/eval_windows.h"
#include "modules/language_model.h"

namespace bmos {

struct PplResult {
  std::string name;
  int64_t seq_len = 0;
  int64_t windows = 0;
  int64_t tokens_scored = 0;  // windows * (seq_len - 1)
  double nll_sum = 0;         // natural log
  double ppl = 0;
  double seconds = 0;
  std::string protocol;
};

struct PplOptions {
  // Windows per forward pass; 0 picks one from a budget of ~8k tokens and ~128M logits elements.
  int64_t batch_windows = 0;
  int workers = 1;  // threads running whole batches (eval_workers.h)
  std::function<void(int64_t windows_done, int64_t windows_total)> progress;  // called under a lock
};

PplResult evaluate_perplexity(LanguageModel& model, const EvalWindows& windows, const std::string& name,
                              const PplOptions& options = {});

// NLL sum of one batch: tokens (B, T) int64, scored on positions 1..T-1 (double).
double window_nll_sum(LanguageModel& model, const torch::Tensor& tokens);

}  // namespace bmos
