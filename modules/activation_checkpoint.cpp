#include "modules/activation_checkpoint.h"

namespace bmos {
namespace {

struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  // `block` travels as an address: AutogradContext holds IValues, and the model owns the block for longer than any
  // graph built from it.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, int64_t block) {
    ctx->save_for_backward({x, cos, sin});
    ctx->saved_data["block"] = block;
    return reinterpret_cast<BlockImpl*>(block)->forward(x, cos, sin, nullptr, 0);  // autograd is off in here
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const auto saved = ctx->get_saved_variables();
    auto* block = reinterpret_cast<BlockImpl*>(ctx->saved_data["block"].toInt());
    torch::Tensor x = saved[0].detach().requires_grad_(true);
    {
      torch::AutoGradMode on(true);
      const torch::Tensor y = block->forward(x, saved[1], saved[2], nullptr, 0);
      torch::autograd::backward({y}, {grad[0]});
    }
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

struct BlockBoundary : public torch::autograd::Function<BlockBoundary> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x) { return x.view_as(x); }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext*, torch::autograd::tensor_list grad) {
    return {grad[0]};
  }
};

}  // namespace

torch::Tensor block_boundary(const torch::Tensor& x) { return BlockBoundary::apply(x); }

torch::Tensor checkpointed_block(BlockImpl& block, const torch::Tensor& x, const torch::Tensor& cos,
                                 const torch::Tensor& sin) {
  // The block's parameters are not inputs of the Function: when x needs no gradient (frozen embeddings) the output
  // still has to, or backward would never reach the block.
  const torch::Tensor in = x.requires_grad() ? x : x.detach().requires_grad_(true);
  return CheckpointedBlock::apply(in, cos, sin, reinterpret_cast<int64_t>(&block));
}

}  // namespace bmos
