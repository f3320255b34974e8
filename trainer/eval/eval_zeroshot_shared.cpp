#include "trainer/eval/eval_zeroshot_shared.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>

#include "trainer/eval/eval_workers.h"

namespace bmos {

namespace {

struct Group {
  const std::vector<int32_t>* context;
  std::vector<size_t> requests;  // indices into the request list
};

// Scores one chunk of groups whose contexts all have `ctx_len` tokens.
void score_chunk(LlamaImpl& model, const std::vector<TokenRequest>& requests, const std::vector<const Group*>& groups,
                 int64_t ctx_len, int64_t budget, std::vector<double>& out) {
  const int64_t G = static_cast<int64_t>(groups.size());
  int64_t cont_pass_len = 0;  // tokens fed after the context: cont[:-1]
  for (const Group* g : groups)
    for (size_t r : g->requests)
      cont_pass_len = std::max<int64_t>(cont_pass_len, static_cast<int64_t>(requests[r].continuation.size()) - 1);

  torch::Tensor ctx = torch::empty({G, ctx_len}, torch::kLong);  // (G, C)
  auto ca = ctx.accessor<int64_t, 2>();
  for (int64_t g = 0; g < G; ++g)
    for (int64_t t = 0; t < ctx_len; ++t) ca[g][t] = (*groups[static_cast<size_t>(g)]->context)[static_cast<size_t>(t)];
  KVCache cache = model.new_cache(G, ctx_len + cont_pass_len);
  const torch::Tensor ctx_logits = model.forward_cached(ctx, cache);                                   // (G, C, V)
  const torch::Tensor first = torch::log_softmax(ctx_logits.select(1, ctx_len - 1).to(torch::kFloat), -1).cpu();  // (G, V)
  auto fa = first.accessor<float, 2>();

  // Continuation rows (requests with more than one continuation token), longest first so that each sub-batch is
  // padded to its own first row.
  std::vector<std::pair<int64_t, size_t>> rows;  // (group, request)
  for (int64_t g = 0; g < G; ++g)
    for (size_t r : groups[static_cast<size_t>(g)]->requests) {
      out[r] = fa[g][requests[r].continuation[0]];
      if (requests[r].continuation.size() > 1) rows.emplace_back(g, r);
    }
  std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    return requests[a.second].continuation.size() > requests[b.second].continuation.size();
  });
  size_t pos = 0;
  while (pos < rows.size()) {
    const int64_t pad = static_cast<int64_t>(requests[rows[pos].second].continuation.size()) - 1;  // cont[:-1]
    size_t end = pos + 1;
    while (end < rows.size() && static_cast<int64_t>(end - pos + 1) * pad <= budget) ++end;
    const int64_t R = static_cast<int64_t>(end - pos);
    std::vector<int64_t> group_of(static_cast<size_t>(R));
    for (int64_t i = 0; i < R; ++i) group_of[static_cast<size_t>(i)] = rows[pos + static_cast<size_t>(i)].first;
    const torch::Tensor idx = torch::tensor(group_of, torch::kLong).to(cache.k[0].device());
    KVCache sub;  // each row continues from its group's context
    sub.len = cache.len;
    for (size_t l = 0; l < cache.k.size(); ++l) {
      sub.k.push_back(cache.k[l].index_select(0, idx).narrow(2, 0, ctx_len + pad).contiguous());  // (R, KVH, C+pad, hd)
      sub.v.push_back(cache.v[l].index_select(0, idx).narrow(2, 0, ctx_len + pad).contiguous());
    }
    torch::Tensor x = torch::zeros({R, pad}, torch::kLong);  // (R, pad), right-padded
    auto xa = x.accessor<int64_t, 2>();
    std::vector<int64_t> targets;
    std::vector<torch::Tensor> pieces;
    for (int64_t i = 0; i < R; ++i) {
      const auto& cont = requests[rows[pos + static_cast<size_t>(i)].second].continuation;
      for (size_t t = 0; t + 1 < cont.size(); ++t) xa[i][static_cast<int64_t>(t)] = cont[t];
      targets.insert(targets.end(), cont.begin() + 1, cont.end());
    }
    const torch::Tensor logits = model.forward_cached(x.to(idx.device()), sub);  // (R, pad, V)
    for (int64_t i = 0; i < R; ++i) {
      const int64_t n = static_cast<int64_t>(requests[rows[pos + static_cast<size_t>(i)].second].continuation.size()) - 1;
      pieces.push_back(logits[i].narrow(0, 0, n));
    }
    const torch::Tensor logp = torch::log_softmax(torch::cat(pieces, 0).to(torch::kFloat), -1);  // (sum, V)
    const torch::Tensor picked = logp.gather(-1, torch::tensor(targets, torch::kLong).to(logp.device()).unsqueeze(-1))
                                     .squeeze(-1)
                                     .to(torch::kDouble)
                                     .cpu();
    const double* pv = picked.data_ptr<double>();
    int64_t off = 0;
    for (int64_t i = 0; i < R; ++i) {
      const size_t r = rows[pos + static_cast<size_t>(i)].second;
      const int64_t n = static_cast<int64_t>(requests[r].continuation.size()) - 1;
      for (int64_t k = 0; k < n; ++k) out[r] += pv[off + k];
      off += n;
    }
    pos = end;
  }
}

}  // namespace

std::vector<double> loglikelihood_shared_context(LlamaImpl& model, const std::vector<TokenRequest>& requests,
                                                 const ZeroShotOptions& options) {
  torch::NoGradGuard no_grad;
  const int64_t L = resolve_max_length(model, options.max_length);
  std::vector<double> out(requests.size(), 0.0);

  // Requests the harness truncates from the left keep no common context: the plain path scores them.
  std::vector<size_t> truncated;
  std::map<std::vector<int32_t>, Group> groups;  // by context tokens
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    check_request(r, i);
    if (static_cast<int64_t>(r.context.size() + r.continuation.size()) > L + 1) {
      truncated.push_back(i);
      continue;
    }
    Group& g = groups[r.context];
    g.context = &r.context;
    g.requests.push_back(i);
  }
  std::map<int64_t, std::vector<const Group*>> by_length;
  for (const auto& kv : groups) by_length[static_cast<int64_t>(kv.first.size())].push_back(&kv.second);

  const int64_t budget = forward_token_budget(model, options);
  // Chunks of groups with one context length: contexts fill the budget, continuations are re-batched in score_chunk.
  struct Chunk {
    int64_t ctx_len;
    std::vector<const Group*> groups;
    int64_t rows = 0;
  };
  std::vector<Chunk> chunks;
  for (const auto& [ctx_len, list] : by_length) {
    for (size_t pos = 0; pos < list.size();) {
      Chunk c{ctx_len, {}, 0};
      while (pos < list.size() && (c.groups.empty() || static_cast<int64_t>(c.groups.size() + 1) * ctx_len <= budget)) {
        c.groups.push_back(list[pos]);
        c.rows += static_cast<int64_t>(list[pos]->requests.size());
        ++pos;
      }
      chunks.push_back(std::move(c));
    }
  }
  const int64_t total = static_cast<int64_t>(requests.size());
  std::mutex progress_mutex;
  int64_t done = 0;
  run_on_workers(static_cast<int64_t>(chunks.size()), options.workers, [&](int64_t k) {
    const Chunk& c = chunks[static_cast<size_t>(k)];
    score_chunk(model, requests, c.groups, c.ctx_len, budget, out);  // each request's out[] is written by one chunk
    std::lock_guard<std::mutex> lock(progress_mutex);
    done += c.rows;
    if (options.progress) options.progress(done, total);
  });
  if (!truncated.empty()) {
    std::vector<TokenRequest> rest;
    for (size_t i : truncated) rest.push_back(requests[i]);
    ZeroShotOptions o = options;
    o.progress = nullptr;
    const auto ll = loglikelihood_tokens(model, rest, o);
    for (size_t k = 0; k < truncated.size(); ++k) out[truncated[k]] = ll[k];
    if (options.progress) options.progress(total, total);
  }
  return out;
}

}  // namespace bmos
