#include "trainer/schedule.h"

#include <algorithm>
#include <cmath>

namespace bmos {

int64_t Schedule::warmup_steps() const { return int64_t(std::ceil(warmup_ratio * double(total_steps))); }

double Schedule::factor(int64_t step) const {
  const int64_t warm = warmup_steps();
  if (step < warm) return double(step + 1) / double(warm);  // reaches 1 at the last warmup step
  if (kind == "constant") return 1.0;
  const double span = double(std::max<int64_t>(1, total_steps - warm));
  const double progress = std::clamp(double(step - warm) / span, 0.0, 1.0);
  const double decay = kind == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
  return min_lr_ratio + (1.0 - min_lr_ratio) * decay;
}

}  // namespace bmos
