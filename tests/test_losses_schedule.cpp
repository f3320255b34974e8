// The KD loss terms and the learning-rate schedule against hand-computed values.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

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
