#include "modules/generate.h"

#include <stdexcept>

namespace bmos {

namespace {

using OnToken = std::function<bool(int64_t row, int32_t prev, int32_t next)>;  // false: that row stops

std::vector<std::vector<int32_t>> decode(Llama& model, const std::vector<std::vector<int32_t>>& prompts,
                                         std::vector<Sampler>& samplers, int64_t steps, const OnToken& on_token) {
  const int64_t B = static_cast<int64_t>(prompts.size());
  if (B == 0 || int64_t(samplers.size()) != B)
    throw std::invalid_argument("generate: one sampler per prompt, and at least one prompt");
  const size_t P = prompts[0].size();
  if (P == 0) throw std::invalid_argument("generate: the prompt needs at least one token (BOS)");
  for (const auto& p : prompts)
    if (p.size() != P) throw std::invalid_argument("generate: the prompts of one batch must have one length");
  torch::NoGradGuard no_grad;
  steps = std::min<int64_t>(steps, model->config.max_seq_len);
  const int64_t V = model->config.vocab_size, bos = model->config.bos_id, eos = model->config.eos_id;
  const int64_t prefix = std::min<int64_t>(int64_t(P), steps);
  std::vector<std::vector<int32_t>> tokens(B);
  std::vector<int64_t> ids;  // (B, prefix) row-major
  for (int64_t b = 0; b < B; ++b) {
    tokens[b].assign(prompts[b].begin(), prompts[b].begin() + prefix);
    for (int64_t i = 1; i < prefix; ++i)
      if (on_token) on_token(b, tokens[b][i - 1], tokens[b][i]);
    ids.insert(ids.end(), tokens[b].begin(), tokens[b].end());
  }
  KVCache cache = model->new_cache(B, steps);
  const torch::Device device = model->parameters().front().device();
  // Prefill the prompts, then one position at a time.
  torch::Tensor logits =
      model->forward_cached(torch::tensor(ids, torch::kLong).view({B, prefix}).to(device), cache, /*last_only=*/true);
  torch::Tensor next = torch::empty({B, 1}, torch::kLong);
  std::vector<bool> alive(B, true);
  // llama2.c: the model runs at positions 0..steps-1 and each run yields the next token, so `steps` tokens follow
  // BOS; the last one is sampled but never fed back.
  for (int64_t len = prefix; len <= steps; ++len) {
    const torch::Tensor last = logits.select(1, logits.size(1) - 1).to(torch::kCPU, torch::kFloat).contiguous();  // (B, V)
    const float* lp = last.data_ptr<float>();
    auto nx = next.accessor<int64_t, 2>();
    bool any = false;
    for (int64_t b = 0; b < B; ++b) {
      nx[b][0] = tokens[b].back();  // a finished row is fed its last token: its outputs are ignored
      if (!alive[b]) continue;
      const int32_t t = samplers[b].sample(lp + b * V);
      if (t == bos || t == eos) {
        alive[b] = false;
        continue;
      }
      const bool go_on = !on_token || on_token(b, tokens[b].back(), t);
      tokens[b].push_back(t);
      nx[b][0] = t;
      if (!go_on) {
        alive[b] = false;
        continue;
      }
      any = true;
    }
    if (!any || len + 1 > steps) break;
    logits = model->forward_cached(next.to(device), cache);
  }
  return tokens;
}

}  // namespace

std::vector<int32_t> generate(Llama& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                              const std::function<void(int32_t prev, int32_t next)>& on_token) {
  std::vector<Sampler> sampler{Sampler(model->config.vocab_size, options.temperature, options.top_p, options.seed)};
  OnToken each;
  if (on_token)
    each = [&](int64_t, int32_t prev, int32_t next) {
      on_token(prev, next);
      return true;
    };
  return decode(model, {prompt}, sampler, options.steps, each).front();
}

std::vector<int32_t> generate_until(Llama& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                    const std::function<bool(int32_t prev, int32_t next)>& on_token) {
  std::vector<Sampler> sampler{Sampler(model->config.vocab_size, options.temperature, options.top_p, options.seed)};
  return decode(model, {prompt}, sampler, options.steps,
                [&](int64_t, int32_t prev, int32_t next) { return on_token(prev, next); })
      .front();
}

std::vector<std::vector<int32_t>> generate_batch(Llama& model, const std::vector<std::vector<int32_t>>& prompts,
                                                 std::vector<Sampler>& samplers, int64_t steps) {
  return decode(model, prompts, samplers, steps, {});
}

}  // namespace bmos
