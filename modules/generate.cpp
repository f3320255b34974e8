#include "modules/generate.h"

#include <stdexcept>

#include "modules/sampler.h"

namespace bmos {

std::vector<int32_t> generate(Llama& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                              const std::function<void(int32_t prev, int32_t next)>& on_token) {
  if (prompt.empty()) throw std::invalid_argument("generate: the prompt needs at least one token (BOS)");
  torch::NoGradGuard no_grad;
  const int64_t steps = std::min<int64_t>(options.steps, model->config.max_seq_len);
  Sampler sampler(model->config.vocab_size, options.temperature, options.top_p, options.seed);
  KVCache cache = model->new_cache(1, steps);
  std::vector<int32_t> tokens(prompt.begin(), prompt.begin() + std::min<int64_t>(prompt.size(), steps));
  for (size_t i = 1; i < tokens.size(); ++i)
    if (on_token) on_token(tokens[i - 1], tokens[i]);
  // Prefill the prompt, then one position at a time.
  std::vector<int64_t> ids(tokens.begin(), tokens.end());
  torch::Tensor logits = model->forward_cached(torch::tensor(ids, torch::kLong).unsqueeze(0), cache);  // (1, T, V)
  // llama2.c: the model runs at positions 0..steps-1 and each run yields the next token, so `steps` tokens follow
  // BOS; the last one is sampled but never fed back.
  while (int64_t(tokens.size()) <= steps) {
    const torch::Tensor last = logits.select(1, logits.size(1) - 1).reshape({-1}).contiguous();  // (V)
    const int32_t next = sampler.sample(last.data_ptr<float>());
    if (next == model->config.bos_id || next == model->config.eos_id) break;
    if (on_token) on_token(tokens.back(), next);
    tokens.push_back(next);
    if (int64_t(tokens.size()) > steps) break;
    logits = model->forward_cached(torch::tensor({int64_t(next)}, torch::kLong).view({1, 1}), cache);
  }
  return tokens;
}

}  // namespace bmos
