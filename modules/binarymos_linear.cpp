#include "modules/binarymos_linear.h"

#include <cmath>

#include "modules/ste_sign.h"

namespace bmos {

BinaryMoSLinearImpl::BinaryMoSLinearImpl(const BinaryMoSLinearOptions& opts) : options(opts) {
  TORCH_CHECK(options.in() > 0 && options.out() > 0, "BinaryMoSLinear: in and out must be positive");
  TORCH_CHECK(options.experts() >= 1, "BinaryMoSLinear: experts must be >= 1, got ", options.experts());
  reset();
}

void BinaryMoSLinearImpl::reset() {
  const int64_t in = options.in(), out = options.out(), E = options.experts();
  weight = register_parameter("weight", torch::empty({out, in}));
  if (!SkipInitGuard::active()) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (E > 1) {
    // nn.Linear(in, E, bias=False)'s default init: U(-1/sqrt(in), 1/sqrt(in)).
    router = register_parameter("router", torch::empty({E, in}).uniform_(-1.0 / std::sqrt(double(in)),
                                                                             1.0 / std::sqrt(double(in))));
  }
  s_in = register_parameter("s_in", torch::ones({E, in}));
  s_out = register_parameter("s_out", torch::ones({E, out}));
  if (options.bias()) bias = register_parameter("bias", torch::zeros({out}));
}

std::pair<torch::Tensor, torch::Tensor> BinaryMoSLinearImpl::token_scales(const torch::Tensor& x2d) {
  if (options.experts() == 1) return {s_in.expand({x2d.size(0), -1}), s_out.expand({x2d.size(0), -1})};
  const torch::Tensor g = torch::softmax(torch::matmul(x2d.to(torch::kFloat), router.t()), -1);  // (N, E)
  return {torch::matmul(g, s_in), torch::matmul(g, s_out)};                                      // (N, in), (N, out)
}

torch::Tensor BinaryMoSLinearImpl::forward(const torch::Tensor& x) {
  const auto lead = x.sizes().slice(0, x.dim() - 1).vec();
  const torch::Tensor x2d = x.reshape({-1, options.in()});  // (N, in)
  torch::Tensor y;
  if (options.experts() == 1) {
    y = ste_sign_matmul(x2d * s_in, weight) * s_out;  // s_in (1, in), s_out (1, out) broadcast
  } else {
    auto [si, so] = token_scales(x2d);
    y = ste_sign_matmul(x2d * si, weight) * so;  // (N, out)
  }
  if (bias.defined()) y = y + bias;
  auto shape = lead;
  shape.push_back(options.out());
  return y.reshape(shape);
}

std::pair<torch::Tensor, torch::Tensor> rank1_svd(const torch::Tensor& A) {
  const torch::Tensor a = A.to(torch::kDouble);
  auto [U, S, Vh] = torch::linalg_svd(a, /*full_matrices=*/false);
  const torch::Tensor root = S.index({0}).sqrt();
  torch::Tensor u = U.index({torch::indexing::Slice(), 0}) * root;
  torch::Tensor v = Vh.index({0}) * root;
  if (u.sum().item<double>() < 0) {  // singular vectors are defined up to a joint sign; |W| >= 0 has a >= 0 pair
    u = -u;
    v = -v;
  }
  return {u.to(A.scalar_type()), v.to(A.scalar_type())};
}

std::pair<torch::Tensor, torch::Tensor> rank1_power(const torch::Tensor& A, int max_iters, double tol) {
  const torch::Tensor a = A.to(torch::kDouble);
  torch::Tensor v = torch::ones({a.size(1)}, a.options()) / std::sqrt(double(a.size(1)));
  double sigma = 0.0;
  for (int it = 0; it < max_iters; ++it) {
    torch::Tensor w = torch::mv(a.t(), torch::mv(a, v));  // A^T A v
    const double norm = w.norm().item<double>();
    if (norm == 0.0) break;
    w = w / norm;
    const double change = (w - v).norm().item<double>();
    v = w;
    sigma = std::sqrt(norm);
    if (change < tol) break;
  }
  const torch::Tensor u = torch::mv(a, v) / (sigma > 0 ? sigma : 1.0);  // unit left vector
  const double root = std::sqrt(sigma);
  return {(u * root).to(A.scalar_type()), (v * root).to(A.scalar_type())};
}

std::shared_ptr<BinaryMoSLinearImpl> BinaryMoSLinearImpl::from_linear(const torch::Tensor& w, const torch::Tensor& b,
                                                                     int64_t experts, ScaleInit init) {
  TORCH_CHECK(w.dim() == 2, "from_linear: weight must be (out, in), got ", w.sizes());
  std::shared_ptr<BinaryMoSLinearImpl> layer;
  {
    SkipInitGuard skip;  // the latent weight is copied from the FP weight below
    layer = std::make_shared<BinaryMoSLinearImpl>(
        BinaryMoSLinearOptions(w.size(1), w.size(0)).experts(experts).bias(b.defined()));
    layer->to(w.device());  // router drawn on the CPU (the same stream on any device), then moved
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor wf = w.to(torch::kFloat);
  const bool power = init == ScaleInit::kPower || (init == ScaleInit::kAuto && w.numel() >= kPowerInitElements);
  auto [u, v] = power ? rank1_power(wf.abs()) : rank1_svd(wf.abs());
  layer->weight.set_data(torch::empty_like(wf));  // on the FP weight's device
  layer->weight.copy_(wf);
  layer->s_out.copy_(u.unsqueeze(0).expand({experts, -1}));
  layer->s_in.copy_(v.unsqueeze(0).expand({experts, -1}));
  if (b.defined()) layer->bias.copy_(b);
  return layer;
}

}  // namespace bmos
