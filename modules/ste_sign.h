// sign() with a straight-through estimator, the binarization used in training.
//   forward:  +1 where w >= 0 (sign(0) = +1, the rule the packed format uses too), -1 elsewhere
//   backward: grad passed where |w| <= 1, zero elsewhere
#pragma once

#include <torch/torch.h>

namespace bmos {

torch::Tensor ste_sign(const torch::Tensor& w);
// Forward value only (no autograd), the same +-1 rule.
torch::Tensor hard_sign(const torch::Tensor& w);

}  // namespace bmos
