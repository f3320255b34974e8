// Activation checkpointing of one decoder block: the forward keeps only the block's input; backward runs the block
// again with autograd on and backpropagates through that recomputation (the parameters' gradients accumulate as
// usual). Blocks draw no random numbers, so the result is bit-identical to running without it
// (tests/test_trainer.cpp), at the cost of a second forward per block.
#pragma once

#include <torch/torch.h>

#include "modules/llama.h"

namespace bmos {

// block(x, cos, sin) as in BlockImpl::forward without a KV cache; x (B, T, dim). `block` must outlive the backward.
torch::Tensor checkpointed_block(BlockImpl& block, const torch::Tensor& x, const torch::Tensor& cos,
                                 const torch::Tensor& sin);

// x itself, as one autograd node: the gradients of x's uses inside the block are summed before they meet any
// gradient from outside it (the KD hidden-state loss). A checkpointed block sums them that way by construction, so
// the plain path goes through this boundary too and the two give equal bits.
torch::Tensor block_boundary(const torch::Tensor& x);

}  // namespace bmos
