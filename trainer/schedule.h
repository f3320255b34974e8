// Learning-rate schedule: linear warmup over warmup_ratio of the steps, then cosine / linear decay (or constant)
// down to min_lr_ratio x the base rate. Returns the multiplier of the base rate for a step (0-based).
#pragma once

#include <cstdint>
#include <string>

namespace bmos {

struct Schedule {
  std::string kind = "cosine";  // cosine | linear | constant
  int64_t total_steps = 1;
  double warmup_ratio = 0.03;
  double min_lr_ratio = 0.0;

  double factor(int64_t step) const;
  int64_t warmup_steps() const;
};

}  // namespace bmos
