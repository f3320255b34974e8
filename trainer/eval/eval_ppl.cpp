#include "trainer/eval/eval_ppl.h"

#include <chrono>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "trainer/eval/eval_workers.h"

namespace bmos {

double window_nll_sum(LanguageModel& model, const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model.logits(tokens);  // (B, T, V)
  TORCH_CHECK(logits.dim() == 3 && logits.size(0) == tokens.size(0) && logits.size(1) == tokens.size(1),
              "model returned logits of shape ", logits.sizes(), " for tokens ", tokens.sizes());
  const int64_t T = tokens.size(1);
  const torch::Tensor logp = torch::log_softmax(logits.narrow(1, 0, T - 1).to(torch::kFloat), -1);  // (B, T-1, V)
  const torch::Tensor targets = tokens.narrow(1, 1, T - 1).to(logp.device()).unsqueeze(-1);     // (B, T-1, 1)
  return -logp.gather(-1, targets).to(torch::kDouble).sum().item<double>();
}

PplResult evaluate_perplexity(LanguageModel& model, const EvalWindows& windows, const std::string& name,
                              const PplOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = windows.count(), T = windows.seq_len;
  if (n == 0) throw std::runtime_error(name + ": no evaluation windows");
  if (T > model.max_seq_len())
    throw std::runtime_error(name + ": seq_len " + std::to_string(T) + " exceeds the model's max_seq_len " +
                             std::to_string(model.max_seq_len()) + " (pass --seq_len " +
                             std::to_string(model.max_seq_len()) + " or less)");
  int64_t batch = options.batch_windows;
  if (batch <= 0) {
    const int64_t by_tokens = 8192 / T;
    const int64_t by_logits = (int64_t{128} << 20) / (T * std::max<int64_t>(model.vocab_size(), 1));
    batch = std::max<int64_t>(1, std::min(by_tokens, by_logits));
  }
  const torch::Tensor all =
      torch::from_blob(const_cast<int32_t*>(windows.tokens.data()), {n, T}, torch::kInt32).to(torch::kLong);  // (N, T)
  PplResult r;
  r.name = name;
  r.seq_len = T;
  r.windows = n;
  r.protocol = windows.protocol;
  const int64_t batches = (n + batch - 1) / batch;
  std::vector<double> nll(static_cast<size_t>(batches), 0.0);  // summed in order afterwards: same total every run
  std::mutex progress_mutex;
  int64_t done = 0;
  run_on_workers(batches, options.workers, [&](int64_t k) {
    const int64_t i = k * batch, b = std::min(batch, n - i);
    nll[static_cast<size_t>(k)] = window_nll_sum(model, all.narrow(0, i, b));
    std::lock_guard<std::mutex> lock(progress_mutex);
    done += b;
    if (options.progress) options.progress(done, n);
  });
  for (double x : nll) r.nll_sum += x;
  r.tokens_scored = n * (T - 1);
  r.ppl = std::exp(r.nll_sum / static_cast<double>(r.tokens_scored));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace bmos
