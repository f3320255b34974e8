#include "modules/sign_linear.h"

#include "modules/ste_sign.h"

namespace bmos {

SignLinearImpl::SignLinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (!SkipInitGuard::active()) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor SignLinearImpl::forward(const torch::Tensor& x) {
  const torch::Tensor alpha = weight.abs().mean(1);  // (out)
  const torch::Tensor x2d = x.reshape({-1, x.size(-1)});  // (N, in)
  auto shape = x.sizes().vec();
  shape.back() = weight.size(0);
  torch::Tensor y = ste_sign_matmul(x2d, weight).reshape(shape) * alpha;
  return bias.defined() ? y + bias : y;
}

std::shared_ptr<SignLinearImpl> SignLinearImpl::from_linear(const torch::Tensor& w, const torch::Tensor& b) {
  auto layer = std::make_shared<SignLinearImpl>(w.size(1), w.size(0), b.defined());
  torch::NoGradGuard no_grad;
  layer->weight.copy_(w);
  if (b.defined()) layer->bias.copy_(b);
  return layer;
}

}  // namespace bmos
