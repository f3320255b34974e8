#include "modules/linear_like.h"

namespace bmos {

FpLinearImpl::FpLinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));  // torch::nn::Linear's default
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor FpLinearImpl::forward(const torch::Tensor& x) { return torch::nn::functional::linear(x, weight, bias); }

}  // namespace bmos
