#include "trainer/eval/eval_zeroshot.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

#include "trainer/eval/eval_workers.h"
#include "trainer/eval/eval_zeroshot_shared.h"

namespace bmos {

namespace {

// One request as the model sees it: (context + continuation)[-(L+1):][:-1], scored on its last `contlen` positions.
// A continuation longer than L (the harness asserts against it; it happens with 512-token models and small
// vocabularies) is scored on its last L tokens: `skip` leading continuation tokens are conditioned on, not scored.
struct Prepared {
  std::vector<int32_t> inp;
  int64_t contlen = 0;  // scored tokens: the last `contlen` of the continuation
  int64_t skip = 0;     // continuation tokens not scored
};

Prepared prepare(const TokenRequest& r, int64_t max_length, size_t index) {
  check_request(r, index);
  std::vector<int32_t> whole(r.context);
  whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
  Prepared p;
  const int64_t keep = std::min<int64_t>(static_cast<int64_t>(whole.size()), max_length + 1);
  p.inp.assign(whole.end() - keep, whole.end() - 1);
  p.contlen = std::min<int64_t>(static_cast<int64_t>(r.continuation.size()), max_length);
  p.skip = static_cast<int64_t>(r.continuation.size()) - p.contlen;
  return p;
}

// harness: context_enc = [eot] for an empty context, else tok_encode(context) (no BOS).
std::vector<int32_t> encode_context(const Tokenizer& tok, const std::string& context) {
  if (context.empty()) {
    const int32_t eot = tok.eos_id() >= 0 ? tok.eos_id() : tok.bos_id();
    if (eot < 0) throw std::runtime_error("empty context and the tokenizer has no end-of-text token");
    return {eot};
  }
  auto ids = tok.encode(context);
  if (ids.empty()) throw std::runtime_error("tokenizer gave no tokens for context '" + context.substr(0, 60) + "'");
  return ids;
}

std::vector<int32_t> encode_continuation(const Tokenizer& tok, const std::string& continuation) {
  auto ids = tok.encode(continuation);
  if (ids.empty()) throw std::runtime_error("tokenizer gave no tokens for continuation '" + continuation + "'");
  return ids;
}

}  // namespace

int64_t resolve_max_length(LanguageModel& model, int64_t max_length) {
  return max_length > 0 ? max_length : model.max_seq_len();
}

int64_t forward_token_budget(LanguageModel& model, const ZeroShotOptions& options) {
  const int64_t by_logits = (int64_t{128} << 20) / std::max<int64_t>(model.vocab_size(), 1);
  return std::max<int64_t>(1, std::min(options.token_budget, by_logits));
}

void check_request(const TokenRequest& r, size_t index) {
  if (r.context.empty() || r.continuation.empty())
    throw std::runtime_error("loglikelihood request " + std::to_string(index) +
                             ": context and continuation must both encode to at least one token");
}

std::vector<double> loglikelihood_tokens(LanguageModel& model, const std::vector<TokenRequest>& requests,
                                         const ZeroShotOptions& options) {
  torch::NoGradGuard no_grad;
  const int64_t L = resolve_max_length(model, options.max_length);
  std::vector<Prepared> prepared;
  prepared.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) prepared.push_back(prepare(requests[i], L, i));

  // Longest first (as the harness orders them), so each batch's first row sets its padded length.
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return prepared[a].inp.size() > prepared[b].inp.size(); });
  const int64_t budget = forward_token_budget(model, options);

  // Batches of consecutive requests in that order, each within the token budget.
  std::vector<std::pair<size_t, size_t>> batches;
  for (size_t pos = 0; pos < order.size();) {
    const int64_t padlen = static_cast<int64_t>(prepared[order[pos]].inp.size());
    size_t end = pos + 1;
    while (end < order.size() && static_cast<int64_t>(end - pos + 1) * padlen <= budget) ++end;
    batches.emplace_back(pos, end);
    pos = end;
  }
  std::vector<double> out(requests.size(), 0.0);
  std::mutex progress_mutex;
  int64_t done = 0;
  run_on_workers(static_cast<int64_t>(batches.size()), options.workers, [&](int64_t k) {
    const auto [pos, end] = batches[static_cast<size_t>(k)];
    const int64_t padlen = static_cast<int64_t>(prepared[order[pos]].inp.size());
    const int64_t B = static_cast<int64_t>(end - pos);

    torch::Tensor x = torch::zeros({B, padlen}, torch::kLong);  // (B, T), right-padded with 0 as the harness pads
    auto xa = x.accessor<int64_t, 2>();
    std::vector<int64_t> starts;
    for (int64_t b = 0; b < B; ++b) {
      const Prepared& p = prepared[order[pos + static_cast<size_t>(b)]];
      for (size_t t = 0; t < p.inp.size(); ++t) xa[b][static_cast<int64_t>(t)] = p.inp[t];
      starts.push_back(static_cast<int64_t>(p.inp.size()) - p.contlen);
    }
    const torch::Tensor logits = model.logits(x);  // (B, T, V)
    TORCH_CHECK(logits.dim() == 3 && logits.size(0) == B && logits.size(1) == padlen,
                "model returned logits of shape ", logits.sizes(), " for tokens ", x.sizes());
    std::vector<torch::Tensor> rows;
    std::vector<int64_t> conts;
    for (int64_t b = 0; b < B; ++b) {
      const size_t idx = order[pos + static_cast<size_t>(b)];
      const TokenRequest& r = requests[idx];
      rows.push_back(logits[b].narrow(0, starts[static_cast<size_t>(b)], prepared[idx].contlen));  // (contlen, V)
      conts.insert(conts.end(), r.continuation.begin() + prepared[idx].skip, r.continuation.end());
    }
    const torch::Tensor logp = torch::log_softmax(torch::cat(rows, 0).to(torch::kFloat), -1);  // (sum contlen, V)
    const torch::Tensor tgt = torch::tensor(conts, torch::kLong).to(logp.device()).unsqueeze(-1);
    const torch::Tensor picked = logp.gather(-1, tgt).squeeze(-1).to(torch::kDouble).cpu();  // (sum contlen)
    const double* pv = picked.data_ptr<double>();
    int64_t off = 0;
    for (int64_t b = 0; b < B; ++b) {
      const size_t idx = order[pos + static_cast<size_t>(b)];
      double s = 0;
      for (int64_t j = 0; j < prepared[idx].contlen; ++j) s += pv[off + j];
      off += prepared[idx].contlen;
      out[idx] = s;
    }
    std::lock_guard<std::mutex> lock(progress_mutex);
    done += B;
    if (options.progress) options.progress(done, static_cast<int64_t>(order.size()));
  });
  return out;
}

std::vector<double> loglikelihood_tokens_ref(LanguageModel& model, const std::vector<TokenRequest>& requests,
                                             int64_t max_length) {
  torch::NoGradGuard no_grad;
  const int64_t L = resolve_max_length(model, max_length);
  std::vector<double> out;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Prepared p = prepare(requests[i], L, i);
    std::vector<int64_t> ids(p.inp.begin(), p.inp.end());
    const int64_t T = static_cast<int64_t>(ids.size());
    const torch::Tensor logits = model.logits(torch::tensor(ids, torch::kLong).view({1, T}));  // (1, T, V)
    const torch::Tensor logp = torch::log_softmax(logits[0].to(torch::kFloat), -1).cpu();     // (T, V)
    double s = 0;
    for (int64_t k = 0; k < p.contlen; ++k)
      s += logp[T - p.contlen + k][requests[i].continuation[static_cast<size_t>(p.skip + k)]].item<double>();
    out.push_back(s);
  }
  return out;
}

TokenRequest tokenize_request(const Tokenizer& tok, const LoglikRequest& request) {
  return {encode_context(tok, request.context), encode_continuation(tok, request.continuation)};
}

ItemPrediction predict(const std::vector<double>& logliks, const std::vector<double>& norm_chars) {
  if (logliks.empty() || logliks.size() != norm_chars.size())
    throw std::invalid_argument("predict: need one length per log-likelihood");
  ItemPrediction p;
  for (size_t i = 1; i < logliks.size(); ++i) {
    if (logliks[i] > logliks[static_cast<size_t>(p.pred_acc)]) p.pred_acc = static_cast<int>(i);
    if (logliks[i] / norm_chars[i] >
        logliks[static_cast<size_t>(p.pred_acc_norm)] / norm_chars[static_cast<size_t>(p.pred_acc_norm)])
      p.pred_acc_norm = static_cast<int>(i);
  }
  return p;
}

TaskScore score_task(LanguageModel& model, const Tokenizer& tok, const std::string& task,
                     const std::vector<TaskRecord>& records, const ZeroShotOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const TaskProtocol& proto = task_protocol(task);
  if (records.empty()) throw std::runtime_error(task + ": no records to score");
  const int64_t L = resolve_max_length(model, options.max_length);
  std::vector<PromptedItem> items;
  std::vector<TokenRequest> requests;
  TaskScore s;
  std::unordered_map<std::string, std::vector<int32_t>> context_ids;  // choices share their context
  for (const auto& r : records) {
    items.push_back(harness_prompt(task, r));
    for (const auto& q : items.back().requests) {
      auto it = context_ids.find(q.context);
      if (it == context_ids.end()) it = context_ids.emplace(q.context, encode_context(tok, q.context)).first;
      requests.push_back({it->second, encode_continuation(tok, q.continuation)});
      const int64_t n = static_cast<int64_t>(requests.back().context.size() + requests.back().continuation.size());
      s.tokens += n;
      if (n > L + 1) ++s.truncated;
      if (static_cast<int64_t>(requests.back().continuation.size()) > L) ++s.continuation_clipped;
    }
  }
  auto* llama = options.share_context ? dynamic_cast<LlamaImpl*>(&model) : nullptr;
  s.scoring = llama ? "shared-context KV cache" : "full sequences";
  const std::vector<double> ll =
      llama ? loglikelihood_shared_context(*llama, requests, options) : loglikelihood_tokens(model, requests, options);
  int64_t correct = 0, correct_norm = 0;
  size_t k = 0;
  for (const auto& item : items) {
    const std::vector<double> item_ll(ll.begin() + static_cast<int64_t>(k),
                                      ll.begin() + static_cast<int64_t>(k + item.requests.size()));
    k += item.requests.size();
    const ItemPrediction p = predict(item_ll, item.norm_chars);
    correct += p.pred_acc == item.label;
    correct_norm += p.pred_acc_norm == item.label;
  }
  const auto n = static_cast<double>(items.size());
  const auto stderr_of = [&](double acc) { return items.size() > 1 ? std::sqrt(acc * (1 - acc) / (n - 1)) : 0.0; };
  s.task = task;
  s.metric = proto.metric;
  s.has_acc_norm = proto.has_acc_norm;
  s.note = proto.note;
  s.items = static_cast<int64_t>(items.size());
  s.requests = static_cast<int64_t>(requests.size());
  s.acc = static_cast<double>(correct) / n;
  s.acc_stderr = stderr_of(s.acc);
  s.acc_norm = static_cast<double>(correct_norm) / n;
  s.acc_norm_stderr = stderr_of(s.acc_norm);
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

}  // namespace bmos
