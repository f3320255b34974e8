// Causal grouped-query attention, the one place it is computed (modules/llama.cpp calls it).
//
//   q (BK, rep, T, hd)   the rep query heads that share one kv head, stacked (BK = batch x kv heads)
//   k, v (BK, S, hd)     keys/values of positions [0, S); query t sits at absolute position start + t
//   out (BK, rep, T, hd) softmax(q k^T * scale + causal mask) v
//
// chunk <= 0 or T <= chunk: the whole (rep*T, S) score matrix at once, with autograd keeping it for backward (the
// reference, fastest for short sequences). chunk > 0: queries in blocks of `chunk` positions, each against only the
// keys it can see, and a custom backward that recomputes each block's probabilities from the saved log-sum-exp
// (FlashAttention's recurrence written with torch ops), so no (T, S) matrix of all heads is ever alive at once,
// forward or backward. The two agree within fp32 rounding (tests/test_llama.cpp).
// window > 0: a sliding window (Mistral): query at absolute position i sees keys i - window < j <= i.
#pragma once

#include <torch/torch.h>

namespace bmos {

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t start,
                               double scale, int64_t chunk, int64_t window = 0);

}  // namespace bmos
