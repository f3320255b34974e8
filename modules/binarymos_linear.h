// BinaryMoS: a 1-bit linear layer with a mixture of scaling experts (Jo et al., NeurIPS 2024).
//
//   g     = softmax(x W_r^T)        router, bias-free, fp32 softmax        x (N, in), W_r (E, in), g (N, E)
//   s_in  = g S_in                   S_in  (E, in)                          s_in  (N, in)
//   s_out = g S_out                  S_out (E, out)                         s_out (N, out)
//   y     = ((x * s_in) sign(W)^T) * s_out + b                              W (out, in) latent fp32, y (N, out)
//
// sign() is ste_sign (gradient passed where |w| <= 1, sign(0) = +1). With E = 1 there is no router: s_in = S_in[0],
// s_out = S_out[0], i.e. exactly OneBit.
#pragma once

#include <torch/torch.h>

#include "modules/linear_like.h"

namespace bmos {

struct BinaryMoSLinearOptions {
  BinaryMoSLinearOptions(int64_t in, int64_t out) : in_(in), out_(out) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, out);
  TORCH_ARG(int64_t, experts) = 4;  // E scaling experts (1 = OneBit)
  TORCH_ARG(bool, bias) = false;
};

// How S_in/S_out are initialised from |W|: a full SVD (exact) or power iteration (for large matrices, same answer);
// kAuto takes power iteration from kPowerInitElements weights up (bmos_bench ScaleInit: SVD vs power, time and
// agreement).
enum class ScaleInit { kSvd, kPower, kAuto };
constexpr int64_t kPowerInitElements = int64_t{1} << 16;  // 512x512: power 39x faster than SVD, same factors

class BinaryMoSLinearImpl : public LinearLike {
 public:
  explicit BinaryMoSLinearImpl(const BinaryMoSLinearOptions& options);
  void reset();

  // (..., in) -> (..., out)
  torch::Tensor forward(const torch::Tensor& x) override;
  // Per-token scales of x (N, in): returns {s_in (N, in), s_out (N, out)}.
  std::pair<torch::Tensor, torch::Tensor> token_scales(const torch::Tensor& x2d);

  int64_t in_features() const override { return options.in(); }
  int64_t out_features() const override { return options.out(); }
  int64_t experts() const { return options.experts(); }
  std::string kind() const override { return "binarymos"; }

  // Builds a BinaryMoS layer from FP weights (out, in) [+ bias]: latent W = weight, S_in/S_out = rank-1 of |W|
  // (sqrt of the top singular value on each side) copied to every expert, router at its default init.
  static std::shared_ptr<BinaryMoSLinearImpl> from_linear(const torch::Tensor& weight, const torch::Tensor& bias,
                                                         int64_t experts, ScaleInit init = ScaleInit::kAuto);

  BinaryMoSLinearOptions options;
  torch::Tensor weight;  // (out, in) latent full-precision weights
  torch::Tensor router;  // (E, in); undefined when E == 1
  torch::Tensor s_in;    // (E, in)
  torch::Tensor s_out;   // (E, out)
  torch::Tensor bias;    // (out) or undefined
};
TORCH_MODULE(BinaryMoSLinear);

// Rank-1 factors of a non-negative matrix A (out, in): A ~ u v^T with u = U[:,0] sqrt(s0), v = sqrt(s0) Vh[0,:],
// signs chosen so both are non-negative. Returns {u (out), v (in)}.
std::pair<torch::Tensor, torch::Tensor> rank1_svd(const torch::Tensor& A);
// The same factors by power iteration on A^T A (iters until the relative change < tol).
std::pair<torch::Tensor, torch::Tensor> rank1_power(const torch::Tensor& A, int max_iters = 200, double tol = 1e-7);

}  // namespace bmos
