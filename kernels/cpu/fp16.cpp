#include "kernels/cpu/fp16.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// GCC 12 false positive: the intrinsics' _mm512_undefined_*() self-initialises a variable on purpose.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/cpu/target_clones.h"

namespace bmos::kernels {

namespace {

BMOS_CLONES void widen_plain(const uint16_t* __restrict p, int64_t n, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_float(p[i]);
}

BMOS_CLONES void narrow_plain(const float* __restrict p, int64_t n, uint16_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = float_to_fp16(p[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

__attribute__((target("avx2,f16c"))) void widen_f16c(const uint16_t* p, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))));
  for (; i < n; ++i) out[i] = fp16_to_float(p[i]);
}

__attribute__((target("avx2,f16c"))) void narrow_f16c(const float* p, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(p + i), kRne));
  for (; i < n; ++i) out[i] = float_to_fp16(p[i]);
}

__attribute__((target("avx512f"))) void widen_avx512(const uint16_t* p, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i))));
  for (; i < n; ++i) out[i] = fp16_to_float(p[i]);
}

__attribute__((target("avx512f"))) void narrow_avx512(const float* p, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtps_ph(_mm512_loadu_ps(p + i), kRne));
  for (; i < n; ++i) out[i] = float_to_fp16(p[i]);
}

bool has_f16c() {
  static const bool yes = __builtin_cpu_supports("f16c");
  return yes;
}
#endif

}  // namespace

void fp16_to_float(const uint16_t* p, int64_t n, float* out, CpuIsa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == CpuIsa::kAvx512 && cpu_supports(CpuIsa::kAvx512)) return widen_avx512(p, n, out);
  if (isa == CpuIsa::kAvx2 && has_f16c()) return widen_f16c(p, n, out);
#endif
  (void)isa;
  widen_plain(p, n, out);
}

void float_to_fp16(const float* p, int64_t n, uint16_t* out, CpuIsa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa == CpuIsa::kAvx512 && cpu_supports(CpuIsa::kAvx512)) return narrow_avx512(p, n, out);
  if (isa == CpuIsa::kAvx2 && has_f16c()) return narrow_f16c(p, n, out);
#endif
  (void)isa;
  narrow_plain(p, n, out);
}

}  // namespace bmos::kernels
