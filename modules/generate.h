// Autoregressive decoding with a KV cache, llama2.c's loop: the prompt (BOS first) is fed, then tokens are sampled
// until `steps` tokens follow BOS (the model runs at positions 0..steps-1) or the model emits BOS/EOS.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "modules/llama.h"
#include "modules/sampler.h"

namespace bmos {

struct GenerateOptions {
  int64_t steps = 256;       // positions run, prompt included (llama2.c's -n); capped at the context length
  double temperature = 1.0;  // 0 = greedy
  double top_p = 0.9;
  uint64_t seed = 42;
};

// Calls on_token(prev, next) for each token after the first, prompt tokens included (so a caller can stream text
// with Tokenizer::decode_piece). Returns all tokens, prompt first.
std::vector<int32_t> generate(Llama& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                              const std::function<void(int32_t prev, int32_t next)>& on_token = {});

// generate() that the caller can end early: on_token(prev, next) is called as above and returns false to stop after
// `next` (a stop string seen, a client gone); its answer for the prompt's tokens is ignored. Returns all tokens.
std::vector<int32_t> generate_until(Llama& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                    const std::function<bool(int32_t prev, int32_t next)>& on_token);

// The same loop for several sequences at once: row b starts from prompts[b] (all of one length) and draws from
// samplers[b]; a row that emits BOS/EOS stops while the others go on. Returns each row's tokens, prompt first.
std::vector<std::vector<int32_t>> generate_batch(Llama& model, const std::vector<std::vector<int32_t>>& prompts,
                                                 std::vector<Sampler>& samplers, int64_t steps);

}  // namespace bmos
