// One decoded token of a served model without torch ops between the kernels (but one: SiLU, whose vectorised exp
// torch has): LlamaImpl::forward_cached takes this
// path for a (1, 1) token when fast_decode_blocker() is empty (and LlamaRunOptions::fast_decode is on). Per block,
// in fp32 on raw rows: RMSNorm, q/k/v through the linears' forward_raw (the packed kernels), Qwen3's q/k norms,
// interleaved rotary at the cache position, the new key/value written into the KV cache in place (fp32, or rounded
// to fp16 for an fp16 cache, whose rows attention widens exactly block by block), grouped-query
// attention over the visible positions (Mistral's window included; heads split across the kernels' spin pool when
// the context is long), wo, the residual, RMSNorm, SwiGLU through w1/w3/w2, the residual; then the final norm and the
// head (raw when it has one, e.g. the int8 head). The torch ops of the block (modules/llama.cpp) are the reference
// it is held to (tests/test_decode_step.cpp): the same fp32 arithmetic up to summation order.
//
// Why: a LLaMA-2-7B token runs ~70 small torch ops per block (2,200 per token, ~20 ms of dispatch and allocation on
// this Xeon: a quarter of a 2-thread token, bmos_bench BM_Decode), against ~60 ms of packed products.
#pragma once

#include <string>

#include <torch/torch.h>

#include "modules/llama.h"

namespace bmos {

// Empty when `model` can decode one token into `cache` on the raw path, else why not (for tests and logs): gradients
// enabled, not on the CPU or not fp32, batch > 1, LayerNorm / post-norm / ReLU MLP / learned positions / embedding
// projections (OPT), or a decoder linear without forward_raw (an FP or training layer).
std::string fast_decode_blocker(const LlamaImpl& model, const KVCache& cache);

// tokens (1, 1) at position cache.len -> logits (1, 1, vocab); fills the cache and advances cache.len. Requires
// fast_decode_blocker(model, cache) to be empty.
torch::Tensor fast_decode_token(LlamaImpl& model, const torch::Tensor& tokens, KVCache& cache);

}  // namespace bmos
