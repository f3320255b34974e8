// The zero-shot fast path for LLaMA models: choices that share a context (HellaSwag's 4 endings, ARC's 3-5 answers,
// PIQA's 2 solutions, BoolQ's yes/no) run that context once and continue from its KV cache, instead of re-running it
// once per choice. Contexts of equal token length are batched densely (no padding); continuations are right-padded
// (harmless: causal). Requests that the harness would truncate from the left (context + continuation > max_length + 1)
// have no shared context and go through loglikelihood_tokens. Same numbers as the reference
// loglikelihood_tokens_ref up to float rounding (tests/test_eval_scoring.cpp holds it to it).
#pragma once

#include <vector>

#include "modules/llama.h"
#include "trainer/eval/eval_zeroshot.h"

namespace bmos {

std::vector<double> loglikelihood_shared_context(LlamaImpl& model, const std::vector<TokenRequest>& requests,
                                                 const ZeroShotOptions& options = {});

}  // namespace bmos
