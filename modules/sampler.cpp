#include "modules/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace bmos {

Sampler::Sampler(int64_t vocab, double temperature, double top_p, uint64_t seed)
    : vocab_(vocab), temperature_(temperature), top_p_(top_p), state_(seed ? seed : 0x9E3779B97F4A7C15ull),
      probs_(vocab), order_(vocab) {
  if (temperature < 0) throw std::invalid_argument("temperature must be >= 0");
  if (!(top_p > 0 && top_p <= 1)) throw std::invalid_argument("top_p must be in (0, 1]");
}

float Sampler::random_f32() {  // xorshift64*, as llama2.c
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return float((state_ * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

int32_t Sampler::sample(const float* logits) {
  if (temperature_ == 0.0) return int32_t(std::max_element(logits, logits + vocab_) - logits);
  const float mx = *std::max_element(logits, logits + vocab_);
  double z = 0.0;
  for (int64_t i = 0; i < vocab_; ++i) z += (probs_[i] = std::exp(float((logits[i] - mx) / temperature_)));
  for (int64_t i = 0; i < vocab_; ++i) probs_[i] = float(probs_[i] / z);
  const float coin = random_f32();
  if (top_p_ < 1.0) {
    std::iota(order_.begin(), order_.end(), 0);
    std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) { return probs_[a] > probs_[b]; });
    double cum = 0.0;
    int64_t last = vocab_ - 1;
    for (int64_t i = 0; i < vocab_; ++i) {
      cum += probs_[order_[i]];
      if (cum > top_p_) {
        last = i;
        break;
      }
    }
    const double r = coin * cum;
    double acc = 0.0;
    for (int64_t i = 0; i <= last; ++i) {
      acc += probs_[order_[i]];
      if (r < acc) return order_[i];
    }
    return order_[last];
  }
  double acc = 0.0;
  for (int64_t i = 0; i < vocab_; ++i) {
    acc += probs_[i];
    if (coin < acc) return int32_t(i);
  }
  return int32_t(vocab_ - 1);
}

}  // namespace bmos
