// sign() with a straight-through estimator, the binarization used in training.
//   forward:  +1 where w >= 0 (sign(0) = +1, the rule the packed format uses too), -1 elsewhere
//   backward: grad passed where |w| <= 1, zero elsewhere
#pragma once

#include <torch/torch.h>

namespace bmos {

torch::Tensor ste_sign(const torch::Tensor& w);
// Forward value only (no autograd), the same +-1 rule.
torch::Tensor hard_sign(const torch::Tensor& w);
// y = x sign(W)^T with the straight-through gradient for W, for x (N, in), W (out, in) -> y (N, out).
// Saves x and W (a parameter, alive anyway) for backward and recomputes sign(W) there: a plain
// matmul(x, ste_sign(W).t()) would keep an (out, in) fp32 copy of sign(W) alive per layer until backward.
torch::Tensor ste_sign_matmul(const torch::Tensor& x, const torch::Tensor& w);


}  // namespace bmos
