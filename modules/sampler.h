// Next-token choice from logits, llama2.c semantics: temperature 0 = argmax; otherwise softmax(logits / T), then
// top-p (nucleus) sampling when 0 < top_p < 1, else sampling from the full distribution. Seeded, reproducible.
#pragma once

#include <cstdint>
#include <vector>

namespace bmos {

class Sampler {
 public:
  Sampler(int64_t vocab, double temperature, double top_p, uint64_t seed);
  int32_t sample(const float* logits);  // logits (vocab)
  uint64_t rng_state() const { return state_; }

 private:
  float random_f32();  // [0, 1)
  int64_t vocab_;
  double temperature_, top_p_;
  uint64_t state_;
  std::vector<float> probs_;
  std::vector<int32_t> order_;
};

}  // namespace bmos
