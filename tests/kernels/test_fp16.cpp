// kernels/cpu/fp16.h: the plain conversions against an independent field-by-field decoder and a nearest-value search,
// and each ISA's array conversions against the plain ones, bitwise.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "kernels/cpu/fp16.h"

namespace bmos {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The fp16 nearest to a finite f, ties to the even pattern, by binary search over the positive finite patterns
// (0x0000 .. 0x7bff, increasing in value) in double; past 65504 + half an ulp, infinity.
uint16_t nearest_fp16(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7c00;
  uint16_t lo = 0, hi = 0x7bff;  // value(lo) <= a < value(hi + 1) once narrowed
  while (lo < hi) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (test::fp16_value(mid) <= a) lo = mid;
    else hi = static_cast<uint16_t>(mid - 1);
  }
  if (lo == 0x7bff) return sign | lo;
  const double below = a - test::fp16_value(lo), above = test::fp16_value(static_cast<uint16_t>(lo + 1)) - a;
  const uint16_t pick = below < above ? lo : above < below ? static_cast<uint16_t>(lo + 1)
                                                            : static_cast<uint16_t>(lo & 1 ? lo + 1 : lo);
  return sign | pick;
}

// The rounding cases: every fp16 value, every midpoint between neighbours and the fp32 values just beside it,
// the overflow edge, fp32 subnormals, signed zeros, infinities, NaNs, and random floats over fp16's range and beyond.
std::vector<float> narrowing_cases() {
  std::vector<float> v;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float a = test::fp16_value(static_cast<uint16_t>(h));
    const float mid = static_cast<float>((static_cast<double>(a) + test::fp16_value(static_cast<uint16_t>(h + 1))) / 2);
    for (float x : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      v.push_back(x);
      v.push_back(-x);
    }
  }
  for (float x : {65504.0f, 65519.99f, 65520.0f, 65536.0f, 1e6f, 3.4e38f, INFINITY, 1e-30f, 1e-45f, 5.9604645e-8f,
                  2.9802322e-8f, 2.9802326e-8f}) {
    v.push_back(x);
    v.push_back(-x);
  }
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> e(-30.0f, 20.0f);
  for (int i = 0; i < 100000; ++i) v.push_back((rng() & 1 ? -1.0f : 1.0f) * std::exp2(e(rng)));
  for (int i = 0; i < 10000; ++i) v.push_back(from_bits(static_cast<uint32_t>(rng())));  // any pattern, NaNs too
  return v;
}

bool same_fp16(uint16_t a, uint16_t b) {
  const bool nan_a = (a & 0x7c00) == 0x7c00 && (a & 0x3ff), nan_b = (b & 0x7c00) == 0x7c00 && (b & 0x3ff);
  return nan_a || nan_b ? nan_a && nan_b : a == b;
}

TEST(Fp16, PlainWideningIsExactForEveryPattern) {
  int64_t wrong = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float want = test::fp16_value(static_cast<uint16_t>(h));
    const float got = kernels::fp16_to_float(static_cast<uint16_t>(h));
    const bool same = std::isnan(want) ? std::isnan(got) : bits_of(want) == bits_of(got);
    if (!same && wrong++ < 5) ADD_FAILURE() << "0x" << std::hex << h << ": got " << got << ", want " << want;
  }
  EXPECT_EQ(wrong, 0);
}

TEST(Fp16, PlainNarrowingRoundsToNearestEven) {
  int64_t wrong = 0;
  for (float x : narrowing_cases()) {
    const uint16_t got = kernels::float_to_fp16(x);
    const uint16_t want = std::isnan(x) ? static_cast<uint16_t>(std::signbit(x) ? 0xfe00 : 0x7e00) : nearest_fp16(x);
    if (got != want && wrong++ < 5)
      ADD_FAILURE() << x << " (0x" << std::hex << bits_of(x) << "): got 0x" << got << ", want 0x" << want;
  }
  EXPECT_EQ(wrong, 0);
  // Round trips: every finite fp16 narrows back to itself.
  for (uint32_t h = 0; h < 65536; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaN
    ASSERT_EQ(kernels::float_to_fp16(kernels::fp16_to_float(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

class Fp16Arrays : public test::IsaTest {};

TEST_P(Fp16Arrays, WidenAndNarrowAsThePlainConversions) {
  std::vector<uint16_t> all(65536 + 7);  // every pattern, then a tail that is not a multiple of the vector width
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> wide(all.size());
  kernels::fp16_to_float(all.data(), static_cast<int64_t>(all.size()), wide.data(), isa());
  for (size_t i = 0; i < all.size(); ++i) {
    const float want = kernels::fp16_to_float(all[i]);
    ASSERT_TRUE(std::isnan(want) ? std::isnan(wide[i]) : bits_of(want) == bits_of(wide[i]))
        << "0x" << std::hex << all[i];
  }
  const std::vector<float> xs = narrowing_cases();
  std::vector<uint16_t> narrow(xs.size());
  kernels::float_to_fp16(xs.data(), static_cast<int64_t>(xs.size()), narrow.data(), isa());
  for (size_t i = 0; i < xs.size(); ++i)
    ASSERT_TRUE(same_fp16(narrow[i], kernels::float_to_fp16(xs[i])))
        << xs[i] << ": 0x" << std::hex << narrow[i] << " vs 0x" << kernels::float_to_fp16(xs[i]);
}

BMOS_INSTANTIATE_ISAS(Fp16Arrays);

}  // namespace
}  // namespace bmos
