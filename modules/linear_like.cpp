#include "modules/linear_like.h"

namespace bmos {

namespace {
thread_local bool g_skip_init = false;
}  // namespace

SkipInitGuard::SkipInitGuard() : previous_(g_skip_init) { g_skip_init = true; }
SkipInitGuard::~SkipInitGuard() { g_skip_init = previous_; }
bool SkipInitGuard::active() { return g_skip_init; }

FpLinearImpl::FpLinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (!SkipInitGuard::active()) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));  // torch::nn::Linear's default
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor FpLinearImpl::forward(const torch::Tensor& x) { return torch::nn::functional::linear(x, weight, bias); }

}  // namespace bmos
