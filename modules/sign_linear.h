// The floor baseline: XNOR-style binarization with one scale per output channel.
//   y = (x sign(W)^T) * alpha + b,   alpha (out) = mean |W| of each row (recomputed from the latent weights)
#pragma once

#include <torch/torch.h>

#include "modules/linear_like.h"

namespace bmos {

class SignLinearImpl : public LinearLike {
 public:
  SignLinearImpl(int64_t in, int64_t out, bool bias = false);
  torch::Tensor forward(const torch::Tensor& x) override;  // (..., in) -> (..., out)
  int64_t in_features() const override { return weight.size(1); }
  int64_t out_features() const override { return weight.size(0); }
  std::string kind() const override { return "sign"; }

  static std::shared_ptr<SignLinearImpl> from_linear(const torch::Tensor& weight, const torch::Tensor& bias);

  torch::Tensor weight;  // (out, in) latent
  torch::Tensor bias;    // (out) or undefined
};
TORCH_MODULE(SignLinear);

}  // namespace bmos
