#include "modules/causal_attention.h"

#include <limits>

namespace bmos {
namespace {

using torch::indexing::Slice;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Additive causal mask of queries [t0, t1) (absolute start + t) against keys [0, S): (rep*Tc, S). With a sliding
// window, row r (query i = start + t0 + r) also hides keys j <= i - window, i.e. j - r <= start + t0 - window.
torch::Tensor causal_bias(int64_t t0, int64_t t1, int64_t S, int64_t start, int64_t rep, int64_t window,
                          const torch::TensorOptions& o) {
  const float inf = std::numeric_limits<float>::infinity();
  torch::Tensor bias = torch::full({t1 - t0, S}, -inf, o).triu(start + t0 + 1);
  if (window > 0) bias = bias + torch::full({t1 - t0, S}, -inf, o).tril(start + t0 - window);
  return bias.repeat({rep, 1});
}

// Scores of query block [t0, t1) against the S keys it can see: (BK, rep*Tc, S), mask included.
torch::Tensor block_scores(const torch::Tensor& qc, const torch::Tensor& kc, int64_t t0, int64_t t1, int64_t start,
                           int64_t rep, double scale, int64_t window) {
  const int64_t BK = qc.size(0), S = kc.size(1);
  const torch::Tensor bias = causal_bias(t0, t1, S, start, rep, window, qc.options());
  return torch::baddbmm(bias.expand({BK, rep * (t1 - t0), S}), qc, kc.transpose(1, 2), 1.0, scale);
}

struct ChunkedAttention : public torch::autograd::Function<ChunkedAttention> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, int64_t start, double scale, int64_t chunk, int64_t window) {
    const int64_t BK = q.size(0), rep = q.size(1), T = q.size(2), hd = q.size(3);
    torch::Tensor out = torch::empty_like(q);                       // (BK, rep, T, hd)
    // log-sum-exp of each query's scores; bf16/fp16 scores are exponentiated in fp32, as the whole path's softmax
    torch::Tensor lse = torch::empty({BK, rep, T}, q.options().dtype(torch::kFloat));
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
      const int64_t t1 = std::min(T, t0 + chunk), Tc = t1 - t0, S = start + t1;
      const torch::Tensor qc = q.index({Slice(), Slice(), Slice(t0, t1)}).reshape({BK, rep * Tc, hd});
      const torch::Tensor kc = k.narrow(1, 0, S), vc = v.narrow(1, 0, S);
      const torch::Tensor s = block_scores(qc, kc, t0, t1, start, rep, scale, window).to(torch::kFloat);  // (BK, rep*Tc, S)
      const torch::Tensor m = s.logsumexp(-1, /*keepdim=*/true);                                  // (BK, rep*Tc, 1)
      const torch::Tensor p = (s - m).exp_().to(q.scalar_type());
      out.index_put_({Slice(), Slice(), Slice(t0, t1)}, torch::bmm(p, vc).view({BK, rep, Tc, hd}));
      lse.index_put_({Slice(), Slice(), Slice(t0, t1)}, m.view({BK, rep, Tc}));
    }
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["start"] = start;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["window"] = window;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const int64_t start = ctx->saved_data["start"].toInt(), chunk = ctx->saved_data["chunk"].toInt();
    const int64_t window = ctx->saved_data["window"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    const torch::Tensor dout = grads[0].contiguous();
    const int64_t BK = q.size(0), rep = q.size(1), T = q.size(2), hd = q.size(3);
    torch::Tensor dq = torch::empty_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    const torch::Tensor delta = (dout * out).sum(-1);  // (BK, rep, T): rowsum(dP * P) of the softmax backward
    for (int64_t t0 = 0; t0 < T; t0 += chunk) {
      const int64_t t1 = std::min(T, t0 + chunk), Tc = t1 - t0, S = start + t1;
      const auto rows = [&](const torch::Tensor& x) {
        return x.index({Slice(), Slice(), Slice(t0, t1)}).reshape({BK, rep * Tc, -1});
      };
      const torch::Tensor qc = rows(q), doc = rows(dout);                          // (BK, rep*Tc, hd)
      const torch::Tensor kc = k.narrow(1, 0, S), vc = v.narrow(1, 0, S);           // (BK, S, hd)
      const torch::Tensor p = (block_scores(qc, kc, t0, t1, start, rep, scale, window) - rows(lse)).exp_();  // (BK, rep*Tc, S)
      dv.narrow(1, 0, S).add_(torch::bmm(p.transpose(1, 2), doc));
      const torch::Tensor ds = p.mul_(torch::bmm(doc, vc.transpose(1, 2)).sub_(rows(delta)));  // dS = P (dP - delta)
      dq.index_put_({Slice(), Slice(), Slice(t0, t1)}, torch::bmm(ds, kc).mul_(scale).view({BK, rep, Tc, hd}));
      dk.narrow(1, 0, S).add_(torch::bmm(ds.transpose(1, 2), qc).mul_(scale));
    }
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t start,
                               double scale, int64_t chunk, int64_t window) {
  const int64_t BK = q.size(0), rep = q.size(1), T = q.size(2), hd = q.size(3), S = k.size(1);
  if (chunk > 0 && T > chunk) return ChunkedAttention::apply(q, k, v, start, scale, chunk, window);
  const torch::Tensor qg = q.reshape({BK, rep * T, hd});
  torch::Tensor scores;  // (BK, rep*T, S)
  if (T > 1 || (window > 0 && S > window)) {
    // The causal mask as an additive bias inside the GEMM: no separate masking pass, forward or backward.
    scores = torch::baddbmm(causal_bias(0, T, S, start, rep, window, q.options()).expand({BK, rep * T, S}), qg,
                            k.transpose(1, 2), 1.0, scale);
  } else {
    scores = torch::bmm(qg * scale, k.transpose(1, 2));
  }
  // bf16/fp16 scores are normalised in fp32, as transformers does.
  const torch::Tensor probs = scores.scalar_type() == torch::kFloat
                                  ? torch::softmax(scores, -1)
                                  : torch::softmax(scores, -1, torch::kFloat).to(scores.scalar_type());
  return torch::bmm(probs, v).view({BK, rep, T, hd});
}

}  // namespace bmos
