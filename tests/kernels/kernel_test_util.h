// Helpers of the kernel tests (plain C++, no torch): random packed matrices and activations, and a comparison that
// reports the largest absolute and relative difference when it fails.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/packed_format.h"

namespace bmos::test {

// Unit roundoff of fp32.
constexpr double kFp32Eps = 1.0 / (1 << 24);

// The value of an fp16 bit pattern, field by field (independent of kernels/cpu/fp16.h).
inline float fp16_value(uint16_t h) {
  const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (exp == 31) return mant ? std::numeric_limits<float>::quiet_NaN() : sign * INFINITY;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -24);
  return sign * std::ldexp(static_cast<float>(1024 + mant), exp - 25);
}

// Canonical packed bits of a random +-1 (N, K) matrix; with dirty_padding the padding bits are random too (kernels
// must ignore them).
inline std::vector<packed::Word> random_bits(int64_t N, int64_t K, std::mt19937& rng, bool dirty_padding = false) {
  std::vector<packed::Word> bits(packed::packed_words(N, K));
  for (auto& w : bits) w = rng();
  if (!dirty_padding && K % 32) {
    const packed::Word mask = (packed::Word{1} << (K % 32)) - 1;
    const int64_t wpr = packed::words_per_row(K);
    for (int64_t n = 0; n < N; ++n) bits[n * wpr + wpr - 1] &= mask;
  }
  return bits;
}

// Activations of magnitude in [0.5, 1.5] and random sign: one wrong weight moves an output by at least 1, far above
// the fp32 rounding tolerance of the shapes tested, so a layout bug cannot hide in the tolerance.
inline std::vector<float> random_activations(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> mag(0.5f, 1.5f);
  std::vector<float> v(n);
  for (auto& x : v) x = (rng() & 1 ? 1.0f : -1.0f) * mag(rng);
  return v;
}

// |got - want| <= tol[i] everywhere; the message names the worst element, the max abs and max rel difference.
inline ::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                            const std::vector<double>& tol) {
  double max_abs = 0.0, max_rel = 0.0, worst_excess = 0.0;
  int64_t worst = -1, bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    max_abs = std::max(max_abs, d);
    if (want[i] != 0.0f) max_rel = std::max(max_rel, d / std::fabs(want[i]));
    if (!(d <= tol[i])) {  // also catches NaN
      ++bad;
      if (worst < 0 || d - tol[i] > worst_excess) worst_excess = d - tol[i], worst = static_cast<int64_t>(i);
    }
  }
  std::ostringstream msg;
  msg << "max abs diff " << max_abs << ", max rel diff " << max_rel;
  if (bad == 0) return ::testing::AssertionSuccess() << msg.str();
  msg << "; " << bad << " of " << want.size() << " elements outside tolerance, worst at " << worst << ": got "
      << got[worst] << ", want " << want[worst] << ", tol " << tol[worst];
  return ::testing::AssertionFailure() << msg.str();
}

}  // namespace bmos::test

namespace bmos::kernels {
// How gtest (and so ctest's test names) print an ISA parameter.
inline void PrintTo(CpuIsa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace bmos::kernels

namespace bmos::test {

// A test run once per CPU kernel (BMOS_INSTANTIATE_ISAS): the instances for an instruction set this CPU lacks are
// skipped, and ctest counts them as skipped.
class IsaTest : public ::testing::TestWithParam<kernels::CpuIsa> {
 protected:
  void SetUp() override {
    if (!kernels::cpu_supports(GetParam()))
      GTEST_SKIP() << "SKIPPED: this CPU lacks the " << kernels::isa_name(GetParam()) << " instructions";
  }
  kernels::CpuIsa isa() const { return GetParam(); }
};

}  // namespace bmos::test

#define BMOS_INSTANTIATE_ISAS(suite)                                                                          \
  INSTANTIATE_TEST_SUITE_P(Isa, suite,                                                                        \
                           ::testing::Values(::bmos::kernels::CpuIsa::kScalar, ::bmos::kernels::CpuIsa::kAvx2, \
                                             ::bmos::kernels::CpuIsa::kAvx512),                               \
                           [](const ::testing::TestParamInfo<::bmos::kernels::CpuIsa>& i) {                   \
                             return std::string(::bmos::kernels::isa_name(i.param));                          \
                           })
