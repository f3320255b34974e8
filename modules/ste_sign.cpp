#include "modules/ste_sign.h"

namespace bmos {
namespace {

struct SignSTE : public torch::autograd::Function<SignSTE> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& w) {
    ctx->save_for_backward({w});
    return hard_sign(w);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const torch::Tensor w = ctx->get_saved_variables()[0];
    return {grad[0] * (w.abs() <= 1).to(grad[0].scalar_type())};
  }
};

struct SignMatmulSTE : public torch::autograd::Function<SignMatmulSTE> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w) {
    ctx->save_for_backward({x, w});
    return torch::matmul(x, hard_sign(w).t());  // (N, out)
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1], &g = grad[0];  // g (N, out)
    const torch::Tensor s = hard_sign(w);                                // recomputed, freed on return
    const torch::Tensor gx = torch::matmul(g, s);                        // (N, in)
    const torch::Tensor gw = torch::matmul(x.t(), g).t() * (w.abs() <= 1).to(g.scalar_type());  // (out, in)
    return {gx, gw};
  }
};

}  // namespace

torch::Tensor hard_sign(const torch::Tensor& w) {
  return torch::where(w >= 0, torch::ones({}, w.options()), -torch::ones({}, w.options()));
}

torch::Tensor ste_sign(const torch::Tensor& w) { return SignSTE::apply(w); }

torch::Tensor ste_sign_matmul(const torch::Tensor& x, const torch::Tensor& w) { return SignMatmulSTE::apply(x, w); }

}  // namespace bmos
