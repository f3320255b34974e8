// BinaryMoSLinear / SignLinear / STE against plain loop references.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "modules/binarymos_linear.h"
#include "modules/sign_linear.h"
#include "modules/ste_sign.h"

namespace bmos {
namespace {

// The layer written as loops over tokens, experts, outputs and inputs (double accumulation).
torch::Tensor loop_reference(const BinaryMoSLinearImpl& l, const torch::Tensor& x2d) {
  const int64_t N = x2d.size(0), in = l.in_features(), out = l.out_features(), E = l.experts();
  auto x = x2d.to(torch::kDouble).contiguous();
  auto W = l.weight.detach().to(torch::kDouble), Si = l.s_in.detach().to(torch::kDouble),
       So = l.s_out.detach().to(torch::kDouble);
  torch::Tensor R = E > 1 ? l.router.detach().to(torch::kDouble) : torch::Tensor();
  auto y = torch::zeros({N, out}, torch::kDouble);
  auto xa = x.accessor<double, 2>(), Wa = W.accessor<double, 2>(), Sia = Si.accessor<double, 2>(),
       Soa = So.accessor<double, 2>();
  auto ya = y.accessor<double, 2>();
  for (int64_t t = 0; t < N; ++t) {
    std::vector<double> g(E, 1.0);
    if (E > 1) {
      auto Ra = R.accessor<double, 2>();
      double mx = -1e300, z = 0;
      for (int64_t e = 0; e < E; ++e) {
        g[e] = 0;
        for (int64_t k = 0; k < in; ++k) g[e] += Ra[e][k] * xa[t][k];
        mx = std::max(mx, g[e]);
      }
      for (auto& v : g) z += (v = std::exp(v - mx));
      for (auto& v : g) v /= z;
    }
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0, so = 0;
      for (int64_t k = 0; k < in; ++k) {
        double si = 0;
        for (int64_t e = 0; e < E; ++e) si += g[e] * Sia[e][k];
        acc += xa[t][k] * si * (Wa[o][k] >= 0 ? 1.0 : -1.0);
      }
      for (int64_t e = 0; e < E; ++e) so += g[e] * Soa[e][o];
      ya[t][o] = acc * so + (l.bias.defined() ? l.bias[o].item<double>() : 0.0);
    }
  }
  return y;
}

struct Shape {
  int64_t in, out, experts, tokens;
  bool bias;
};

class BinaryMoSForward : public ::testing::TestWithParam<Shape> {};

TEST_P(BinaryMoSForward, MatchesLoopReference) {
  const Shape s = GetParam();
  torch::manual_seed(s.in * 1000 + s.out);
  BinaryMoSLinear l(BinaryMoSLinearOptions(s.in, s.out).experts(s.experts).bias(s.bias));
  {
    torch::NoGradGuard ng;
    l->s_in.uniform_(0.5, 1.5);
    l->s_out.uniform_(0.5, 1.5);
    if (s.bias) l->bias.normal_();
    if (s.experts > 1) l->router.normal_(0, 1);
  }
  const auto x = torch::randn({2, s.tokens, s.in});
  const auto y = l->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, s.tokens, s.out}));
  const auto ref = loop_reference(*l, x.reshape({-1, s.in})).reshape({2, s.tokens, s.out});
  const double err = (y.to(torch::kDouble) - ref).abs().max().item<double>();
  const double scale = ref.abs().max().item<double>();
  EXPECT_LT(err, 1e-5 * std::max(1.0, scale)) << "max abs diff " << err << " (ref max " << scale << ")";
}

INSTANTIATE_TEST_SUITE_P(Shapes, BinaryMoSForward,
                         ::testing::Values(Shape{1, 1, 1, 1, false}, Shape{7, 5, 4, 3, true}, Shape{33, 17, 2, 5, false},
                                           Shape{64, 172, 4, 9, false}, Shape{100, 31, 8, 2, true},
                                           Shape{65, 64, 1, 4, true}),
                         [](const ::testing::TestParamInfo<Shape>& i) {  // stable names for ctest
                           const Shape& s = i.param;
                           return "in" + std::to_string(s.in) + "_out" + std::to_string(s.out) + "_E" +
                                  std::to_string(s.experts) + "_T" + std::to_string(s.tokens) + (s.bias ? "_bias" : "");
                         });

TEST(BinaryMoS, BackwardMatchesAutogradOfExplicitFormula) {
  torch::manual_seed(3);
  const int64_t in = 37, out = 23, E = 4, N = 11;
  BinaryMoSLinear l(BinaryMoSLinearOptions(in, out).experts(E).bias(true));
  {
    torch::NoGradGuard ng;
    l->weight.uniform_(-1.5, 1.5);  // some |w| > 1 so the STE mask matters
    l->router.normal_();
  }
  const auto x = torch::randn({N, in}, torch::requires_grad());
  const auto gy = torch::randn({N, out});
  (l->forward(x) * gy).sum().backward();

  // The same computation with the STE written out: sign(W) + (W - W.detach()) * mask.
  auto W = l->weight.detach().clone().requires_grad_(true), R = l->router.detach().clone().requires_grad_(true),
       Si = l->s_in.detach().clone().requires_grad_(true), So = l->s_out.detach().clone().requires_grad_(true),
       b = l->bias.detach().clone().requires_grad_(true);
  auto x2 = x.detach().clone().requires_grad_(true);
  auto mask = (W.detach().abs() <= 1).to(torch::kFloat);
  auto sgn = torch::where(W.detach() >= 0, torch::ones({}), -torch::ones({}));
  auto Wb = sgn + (W - W.detach()) * mask;
  auto g = torch::softmax(x2.matmul(R.t()), -1);
  auto y = (x2 * g.matmul(Si)).matmul(Wb.t()) * g.matmul(So) + b;
  (y * gy).sum().backward();

  auto check = [](const torch::Tensor& a, const torch::Tensor& b, const char* what) {
    const double err = (a - b).abs().max().item<double>();
    EXPECT_LT(err, 1e-4 * std::max(1.0, b.abs().max().item<double>())) << what << " grad max diff " << err;
  };
  check(l->weight.grad(), W.grad(), "weight");
  check(l->router.grad(), R.grad(), "router");
  check(l->s_in.grad(), Si.grad(), "s_in");
  check(l->s_out.grad(), So.grad(), "s_out");
  check(l->bias.grad(), b.grad(), "bias");
  check(x.grad(), x2.grad(), "input");
}

TEST(SteSign, ForwardRuleAndGradientMask) {
  auto w = torch::tensor({-2.0f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.0001f, 3.0f}, torch::requires_grad());
  auto s = ste_sign(w);
  EXPECT_TRUE(torch::equal(s, torch::tensor({-1.0f, -1.0f, -1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f})));  // sign(0)=+1
  s.sum().backward();
  EXPECT_TRUE(torch::equal(w.grad(), torch::tensor({0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f})));
}

TEST(BinaryMoS, OneExpertIsExactlyOneBit) {
  torch::manual_seed(5);
  const auto W = torch::randn({19, 29}) * 0.1;
  auto l = BinaryMoSLinearImpl::from_linear(W, torch::Tensor(), 1);
  EXPECT_FALSE(l->router.defined()) << "E = 1 has no router";
  const auto x = torch::randn({3, 6, 29});
  const auto y = l->forward(x);
  // OneBit: y = ((x * s_in) @ sign(W)^T) * s_out with fixed vectors.
  const auto onebit = torch::matmul(x * l->s_in[0], hard_sign(W).t()) * l->s_out[0];
  EXPECT_TRUE(torch::equal(y, onebit)) << "max diff " << (y - onebit).abs().max().item<float>();
}

TEST(BinaryMoS, SvdInitIsRankOneOfAbsW) {
  torch::manual_seed(7);
  const auto W = torch::randn({48, 80});
  auto l = BinaryMoSLinearImpl::from_linear(W, torch::Tensor(), 4);
  // Every expert holds the same rank-1 pair; their outer product is the best rank-1 approximation of |W|.
  for (int e = 1; e < 4; ++e) {
    EXPECT_TRUE(torch::equal(l->s_in[e], l->s_in[0]));
    EXPECT_TRUE(torch::equal(l->s_out[e], l->s_out[0]));
  }
  EXPECT_GE(l->s_in.min().item<float>(), 0.0f);
  EXPECT_GE(l->s_out.min().item<float>(), 0.0f);
  const auto A = W.abs().to(torch::kDouble);
  auto [U, S, Vh] = torch::linalg_svd(A, false);
  const auto best = S[0] * torch::outer(U.select(1, 0), Vh[0]);
  const auto ours = torch::outer(l->s_out[0], l->s_in[0]).to(torch::kDouble);
  const double rel = ((ours - best).norm() / best.norm()).item<double>();
  EXPECT_LT(rel, 1e-5) << "rank-1 reconstruction relative error " << rel;  // fp32 storage of the factors
  // And E = 1 at init (latent = W) gives sign(W) * (u v^T): the OneBit approximation of W.
  const auto approx = hard_sign(W) * torch::outer(l->s_out[0], l->s_in[0]);
  EXPECT_LT(((approx - W).norm() / W.norm()).item<double>(), 0.7);
}

TEST(BinaryMoS, PowerIterationAgreesWithSvd) {
  torch::manual_seed(9);
  const auto A = torch::randn({300, 129}).abs();
  auto [u1, v1] = rank1_svd(A);
  auto [u2, v2] = rank1_power(A);
  const double du = ((u1 - u2).norm() / u1.norm()).item<double>();
  const double dv = ((v1 - v2).norm() / v1.norm()).item<double>();
  EXPECT_LT(du, 1e-4) << "u relative diff " << du;
  EXPECT_LT(dv, 1e-4) << "v relative diff " << dv;
}

TEST(SignLinear, ForwardIsSignTimesRowMeanAbs) {
  torch::manual_seed(11);
  const auto W = torch::randn({13, 21});
  auto l = SignLinearImpl::from_linear(W, torch::Tensor());
  const auto x = torch::randn({4, 21});
  const auto ref = torch::matmul(x, hard_sign(W).t()) * W.abs().mean(1);
  EXPECT_LT((l->forward(x) - ref).abs().max().item<float>(), 1e-5);
}

TEST(BinaryMoS, GradientsReachLatentScalesAndRouter) {
  torch::manual_seed(13);
  auto l = BinaryMoSLinearImpl::from_linear(torch::randn({16, 24}) * 0.2, torch::Tensor(), 4);
  // Right after init every expert is the same copy, so the router's gradient is exactly zero (sum_e g_e = 1);
  // experts drift apart once trained. Emulate that.
  {
    torch::NoGradGuard ng;
    l->s_in.mul_(1 + 0.1 * torch::randn_like(l->s_in));
  }
  l->forward(torch::randn({5, 24})).pow(2).sum().backward();
  for (const auto& p : l->named_parameters())
    EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0.0f) << p.key() << " got no gradient";
}

}  // namespace
}  // namespace bmos
