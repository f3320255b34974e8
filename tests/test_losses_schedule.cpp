// The KD loss terms and the learning-rate schedule against hand-computed values.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/test_util.h"
#include "modules/torch_compat.h"
#include "trainer/losses.h"
#include "trainer/schedule.h"

namespace bmos {
namespace {

TEST(Losses, KlIsZeroForEqualLogitsAndMatchesHandComputation) {
  const auto a = torch::randn({2, 3, 7});
  EXPECT_NEAR(kd_kl(a, a, 1.0).item<double>(), 0.0, 1e-7);
  // One token, two classes: teacher p = softmax([0, 0]) = (.5, .5), student q = softmax([log 3, 0]) = (.75, .25).
  const auto s = torch::tensor({std::log(3.0f), 0.0f}).view({1, 1, 2}), t = torch::zeros({1, 1, 2});
  const double expected = 0.5 * std::log(0.5 / 0.75) + 0.5 * std::log(0.5 / 0.25);
  EXPECT_NEAR(kd_kl(s, t, 1.0).item<double>(), expected, 1e-6);
  // Temperature 2: logits halved, scaled by T^2.
  const auto s2 = s * 2, t2 = t * 2;
  EXPECT_NEAR(kd_kl(s2, t2, 2.0).item<double>(), 4 * expected, 1e-5);
}

// distill.kl_reduction against the reference's own formula, written with libtorch's kl_div: sequence_sum is
// F.kl_div(log_softmax(s), softmax(t), reduction="batchmean") on (B, T, V) logits (divided by B only), token_mean the
// same on the (B T, V) rows. Both paths (whole logits, head applied in chunks), values and gradients.
TEST(Losses, KlReductionsAreTheReferencesBatchmeanInBothPaths) {
  namespace F = torch::nn::functional;
  torch::manual_seed(5);
  const int64_t B = 3, T = 5, D = 8, V = 37;
  const auto hs = torch::randn({B, T, D}, torch::requires_grad());
  const auto ws = (0.5 * torch::randn({V, D})).requires_grad_(true);
  const auto ht = torch::randn({B, T, D}), wt = 0.5 * torch::randn({V, D});
  for (double temperature : {1.0, 2.0}) {
    for (KlReduction r : {KlReduction::sequence_sum, KlReduction::token_mean}) {
      const bool seq = r == KlReduction::sequence_sum;
      SCOPED_TRACE(std::string(seq ? "sequence_sum" : "token_mean") + ", temperature " + std::to_string(temperature));
      auto ls = torch::matmul(hs, ws.t()) / temperature, lt = torch::matmul(ht, wt.t()) / temperature;  // (B, T, V)
      if (!seq) ls = ls.reshape({B * T, V}), lt = lt.reshape({B * T, V});
      const auto ref = F::kl_div(torch::log_softmax(ls, -1), torch::softmax(lt, -1),
                                 F::KLDivFuncOptions().reduction(torch::kBatchMean)) * (temperature * temperature);
      const auto g_ref = torch::autograd::grad({ref}, {hs, ws});
      const auto whole = kd_kl(torch::matmul(hs, ws.t()), torch::matmul(ht, wt.t()), temperature, r);
      const auto g_whole = torch::autograd::grad({whole}, {hs, ws});
      EXPECT_NEAR(whole.item<double>(), ref.item<double>(), 1e-5 * ref.item<double>());
      EXPECT_LT(test::max_rel(g_whole[0], g_ref[0]), 1e-5) << "whole logits: d student hidden";
      EXPECT_LT(test::max_rel(g_whole[1], g_ref[1]), 1e-5) << "whole logits: d head";
      for (int64_t chunk : {4, 15, 100}) {
        const auto part = kd_kl_chunked(hs, ws, ht, wt, temperature, chunk, r);
        const auto g_part = torch::autograd::grad({part}, {hs, ws});
        EXPECT_NEAR(part.item<double>(), ref.item<double>(), 1e-5 * ref.item<double>()) << "chunk " << chunk;
        EXPECT_LT(test::max_rel(g_part[0], g_ref[0]), 1e-5) << "chunk " << chunk << ": d student hidden";
        EXPECT_LT(test::max_rel(g_part[1], g_ref[1]), 1e-5) << "chunk " << chunk << ": d head";
      }
    }
  }
  // The two differ by T exactly where the reference says they should.
  const auto logits_s = torch::randn({B, T, V}), logits_t = torch::randn({B, T, V});
  EXPECT_NEAR(kd_kl(logits_s, logits_t, 1.0, KlReduction::sequence_sum).item<double>(),
              T * kd_kl(logits_s, logits_t, 1.0, KlReduction::token_mean).item<double>(), 1e-4);
  EXPECT_HAS(test::error_of([&] { kd_kl(logits_s.reshape({B * T, V}), logits_t.reshape({B * T, V}), 1.0,
                                        KlReduction::sequence_sum); }),
             "kd_kl: sequence_sum needs (B, T, ...) inputs");
  EXPECT_EQ(kl_reduction_from_name("sequence_sum"), KlReduction::sequence_sum);
  EXPECT_HAS(test::error_of([] { kl_reduction_from_name("batchmean"); }), "must be token_mean or sequence_sum");
}

TEST(Losses, HiddenMseSumsLayers) {
  std::vector<torch::Tensor> s = {torch::ones({1, 2, 2}), torch::zeros({1, 2, 2})};
  std::vector<torch::Tensor> t = {torch::zeros({1, 2, 2}), torch::full({1, 2, 2}, 2.0)};
  EXPECT_NEAR(hidden_mse(s, t).item<double>(), 1.0 + 4.0, 1e-6);
}

TEST(Losses, CrossEntropyOfUniformLogitsIsLogV) {
  EXPECT_NEAR(next_token_ce(torch::zeros({2, 3, 10}), torch::zeros({2, 3}, torch::kLong)).item<double>(),
              std::log(10.0), 1e-6);
}

TEST(Schedule, WarmupThenCosineToFloor) {
  Schedule s;
  s.total_steps = 100;
  s.warmup_ratio = 0.1;
  s.min_lr_ratio = 0.1;
  EXPECT_EQ(s.warmup_steps(), 10);
  EXPECT_NEAR(s.factor(0), 0.1, 1e-12);
  EXPECT_NEAR(s.factor(9), 1.0, 1e-12);
  EXPECT_NEAR(s.factor(10), 1.0, 1e-12);
  EXPECT_NEAR(s.factor(55), 0.1 + 0.9 * 0.5, 1e-12);  // half way through the decay
  EXPECT_NEAR(s.factor(100), 0.1, 1e-12);
  s.kind = "linear";
  EXPECT_NEAR(s.factor(55), 0.1 + 0.9 * 0.5, 1e-12);
  s.kind = "constant";
  EXPECT_NEAR(s.factor(90), 1.0, 1e-12);
}

// The one version-dependent API the trainer uses (modules/torch_compat.h), on whichever libtorch this build has:
// Debian 12's 1.13 in CI, trixie's 2.6 under scripts/check_torch2.sh.
TEST(TorchCompat, CudaAutocastTurnsOnInBf16AndOffAgain) {
  ASSERT_FALSE(compat::cuda_autocast_enabled());
  compat::set_cuda_autocast(true, at::kBFloat16);
  EXPECT_TRUE(compat::cuda_autocast_enabled());
#if BMOS_TORCH_AT_LEAST(2, 4)
  EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCUDA), at::kBFloat16);
#else
  EXPECT_EQ(at::autocast::get_autocast_gpu_dtype(), at::kBFloat16);
#endif
  compat::set_cuda_autocast(false, at::kBFloat16);
  EXPECT_FALSE(compat::cuda_autocast_enabled());
}

}  // namespace
}  // namespace bmos
