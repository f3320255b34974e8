#include "kernels/cpu/cpu_isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace bmos::kernels {

bool cpu_has_bf16_dot() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
  return cpu_supports(CpuIsa::kAvx512) && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

bool cpu_supports(CpuIsa isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // libgcc's __builtin_cpu_supports also checks XGETBV, i.e. that the OS saves the AVX / AVX-512 registers.
  switch (isa) {
    case CpuIsa::kScalar: return true;
    case CpuIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::kAvx512:
      return cpu_supports(CpuIsa::kAvx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return isa == CpuIsa::kScalar;
#endif
}

const char* isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
  }
  return "?";
}

namespace {
CpuIsa detect() {
  CpuIsa best = cpu_supports(CpuIsa::kAvx512) ? CpuIsa::kAvx512
                : cpu_supports(CpuIsa::kAvx2) ? CpuIsa::kAvx2
                                              : CpuIsa::kScalar;
  if (const char* env = std::getenv("BMOS_CPU_ISA")) {
    CpuIsa asked;
    if (!std::strcmp(env, "scalar")) asked = CpuIsa::kScalar;
    else if (!std::strcmp(env, "avx2")) asked = CpuIsa::kAvx2;
    else if (!std::strcmp(env, "avx512")) asked = CpuIsa::kAvx512;
    else {
      std::fprintf(stderr, "binarymos: ignoring BMOS_CPU_ISA=%s (expected scalar, avx2 or avx512)\n", env);
      return best;
    }
    if (static_cast<int>(asked) < static_cast<int>(best)) return asked;
  }
  return best;
}
}  // namespace

CpuIsa best_cpu_isa() {
  static const CpuIsa isa = detect();
  return isa;
}

}  // namespace bmos::kernels
