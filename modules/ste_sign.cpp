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

}  // namespace

torch::Tensor hard_sign(const torch::Tensor& w) {
  return torch::where(w >= 0, torch::ones({}, w.options()), -torch::ones({}, w.options()));
}

torch::Tensor ste_sign(const torch::Tensor& w) { return SignSTE::apply(w); }

}  // namespace bmos
