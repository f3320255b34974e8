// IEEE binary16 (fp16) <-> fp32: exact widening and round-to-nearest-even narrowing (what torch's .to(kHalf) does),
// as plain code, the reference, and as array conversions that use F16C or AVX-512 where the CPU has them, bitwise
// equal to it (tests/kernels/test_fp16.cpp: every fp16 value, the rounding ties, overflow, subnormals). Used by the
// fused layer's fp16 scales and by the fp16 KV cache of decode. Values are fp16 bit patterns (uint16_t).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cpu/cpu_isa.h"

namespace bmos::kernels {

// Exact for every fp16 value (subnormals, infinities and NaNs included) in plain integer and float operations (GCC
// 12's _Float16 calls a library function per value; this vectorises inside the callers' loops): the exponent and
// mantissa bits moved into place and rebiased; an fp16 subnormal is renormalised by subtracting 2^-14 (a subtraction
// of two normal fp32 numbers, exact, and immune to denormals-are-zero).
inline float fp16_to_float(uint16_t h) {
  constexpr uint32_t kExp = 0x7c00u << 13;  // the fp16 exponent field, moved to its fp32 place
  uint32_t u = uint32_t{h & 0x7fffu} << 13;
  const uint32_t exp = u & kExp;
  u += (127u - 15u) << 23;
  if (exp == kExp) u += (128u - 16u) << 23;  // infinity or NaN: the fp32 exponent is all ones
  float f;
  std::memcpy(&f, &u, sizeof f);
  const uint32_t renorm_bits = u + (1u << 23), magic_bits = 113u << 23;
  float renorm, magic;
  std::memcpy(&renorm, &renorm_bits, sizeof renorm);
  std::memcpy(&magic, &magic_bits, sizeof magic);
  if (exp == 0) f = renorm - magic;  // zero or subnormal
  uint32_t out;
  std::memcpy(&out, &f, sizeof out);
  out |= uint32_t{h & 0x8000u} << 16;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

// The nearest fp16, ties to even; beyond the largest (65504, up to half an ulp above it) +-infinity; a NaN becomes
// the quiet NaN 0x7e00 with its sign. An fp16 subnormal is rounded by one fp32 addition of a magic number whose ulp
// is fp16's smallest subnormal (2^-24), so the rounding is the FPU's own, to nearest even.
inline uint16_t float_to_fp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  if (u >= (143u << 23))  // |f| >= 2^16 (or inf / NaN): past anything that rounds to a finite fp16
    return static_cast<uint16_t>(sign | (u > (255u << 23) ? 0x7e00u : 0x7c00u));
  if (u < (113u << 23)) {  // |f| < 2^-14: an fp16 subnormal or zero
    constexpr uint32_t kMagicBits = 126u << 23;  // 0.5, whose ulp is 2^-24
    float a, magic;
    std::memcpy(&a, &u, sizeof a);
    std::memcpy(&magic, &kMagicBits, sizeof magic);
    a += magic;
    uint32_t r;
    std::memcpy(&r, &a, sizeof r);
    return static_cast<uint16_t>(sign | (r - kMagicBits));
  }
  const uint32_t odd = (u >> 13) & 1u;                      // ties go to the even mantissa
  u += ((15u - 127u) << 23) + 0xfffu + odd;                 // rebias and round the 13 dropped bits
  return static_cast<uint16_t>(sign | (u >> 13));           // a carry into the exponent is right (65520: infinity)
}

// n values; isa picks the instructions (kAvx512: AVX-512 F; kAvx2: F16C where the CPU has it; kScalar: the plain
// functions above), each bitwise equal to the plain one (a NaN stays a NaN; its payload may differ).
void fp16_to_float(const uint16_t* p, int64_t n, float* out, CpuIsa isa = best_cpu_isa());
void float_to_fp16(const float* p, int64_t n, uint16_t* out, CpuIsa isa = best_cpu_isa());

}  // namespace bmos::kernels
