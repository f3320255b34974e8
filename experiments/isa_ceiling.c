// The instruction-throughput ceiling of a 128-token prefill of +-1 weights on this CPU, for the LUT kernel we ship
// and for the int8 routes issue 19 suggested. Each loop repeats one candidate's inner-loop instruction mix with
// independent registers (no memory traffic, no dependency chains), so its time is the ports' limit, not a kernel's:
//   fp32 LUT (kernels/cpu/matmul_avx512.cpp, 2 tokens x 4 tiles): per 5-column group 8 vpermi2ps + 8 FMAs + 4
//     shifts = 8 x 16 rows x 5 columns = 640 multiply-adds; exact fp32 tables;
//   int8 VNNI on expanded +-1 weights: 1 vpdpbusd = 16 rows x 4 columns; needs int8 activations;
//   int16-table LUT: per 4 groups of 4 columns and 16 rows, 2 vpermb (table low and high bytes) + 2 vpdpbusd = 256;
//     tables exact for activations quantized to ~13 bits;
//   int8-table LUT (T-MAC-like): 1 vpermb + 1 vpdpbusd = 256; table entries (sums of 4 activations) rounded to int8.
// Build and run (any x86-64 with AVX-512 VBMI and VNNI):
//   gcc -O2 -mavx512f -mavx512bw -mavx512vbmi -mavx512vnni experiments/isa_ceiling.c -o /tmp/isa_ceiling && /tmp/isa_ceiling
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define ITERS 20000000L
// fp32 LUT: 8 vpermi2ps (zmm0-7), 8 FMAs into zmm8-15, 4 shifts of zmm20-23.
static double fp32_lut(void) {
  // Zero sums and factors: garbage would reach denormals or infinities, whose microcode assists are 50x slower.
  __asm__ volatile(
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t vpxord %%zmm9, %%zmm9, %%zmm9\n\t vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t vpxord %%zmm12, %%zmm12, %%zmm12\n\t vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
      "vpxord %%zmm14, %%zmm14, %%zmm14\n\t vpxord %%zmm15, %%zmm15, %%zmm15\n\t vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
      "vpxord %%zmm19, %%zmm19, %%zmm19\n\t" ::: "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
      "xmm18", "xmm19");
  double t = now();
  for (long i = 0; i < ITERS; ++i)
    __asm__ volatile(
        "vpermi2ps %%zmm16, %%zmm17, %%zmm0\n\t vfmadd231ps %%zmm18, %%zmm19, %%zmm8\n\t"
        "vpermi2ps %%zmm16, %%zmm17, %%zmm1\n\t vfmadd231ps %%zmm18, %%zmm19, %%zmm9\n\t"
        "vpsrld $5, %%zmm20, %%zmm20\n\t"
        "vpermi2ps %%zmm16, %%zmm17, %%zmm2\n\t vfmadd231ps %%zmm18, %%zmm19, %%zmm10\n\t"
        "vpermi2ps %%zmm16, %%zmm17, %%zmm3\n\t vfmadd231ps %%zmm18, %%zmm19, %%zmm11\n\t"
        "vpsrld $5, %%zmm21, %%zmm21\n\t"
        "vpermi2ps %%zmm16, %%zmm17, %%zmm4\n\t vfmadd231ps %%zmm18, %%zmm19, %%zmm12\n\t"
        "vpermi2ps %%zmm16, %%zmm17, %%zmm5\n\t vfmadd231ps %%zmm18, %%zmm19, %%zmm13\n\t"
        "vpsrld $5, %%zmm22, %%zmm22\n\t"
        "vpermi2ps %%zmm16, %%zmm17, %%zmm6\n\t vfmadd231ps %%zmm18, %%zmm19, %%zmm14\n\t"
        "vpermi2ps %%zmm16, %%zmm17, %%zmm7\n\t vfmadd231ps %%zmm18, %%zmm19, %%zmm15\n\t"
        "vpsrld $5, %%zmm23, %%zmm23\n\t" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm20", "xmm21", "xmm22", "xmm23");
  return (now() - t) / ITERS;  // seconds per 640 multiply-adds
}
// int8 VNNI: 8 independent vpdpbusd.
static double vnni(void) {
  double t = now();
  for (long i = 0; i < ITERS; ++i)
    __asm__ volatile(
        "vpdpbusd %%zmm16, %%zmm17, %%zmm0\n\t vpdpbusd %%zmm16, %%zmm17, %%zmm1\n\t"
        "vpdpbusd %%zmm16, %%zmm17, %%zmm2\n\t vpdpbusd %%zmm16, %%zmm17, %%zmm3\n\t"
        "vpdpbusd %%zmm16, %%zmm17, %%zmm4\n\t vpdpbusd %%zmm16, %%zmm17, %%zmm5\n\t"
        "vpdpbusd %%zmm16, %%zmm17, %%zmm6\n\t vpdpbusd %%zmm16, %%zmm17, %%zmm7\n\t" ::: "xmm0", "xmm1", "xmm2",
        "xmm3", "xmm4", "xmm5", "xmm6", "xmm7");
  return (now() - t) / ITERS;  // seconds per 8 x 64 multiply-adds
}
// vpermb + vpdpbusd pairs: 4 lookups into zmm0-3, 4 sums into zmm8-11.
static double lut8(void) {
  double t = now();
  for (long i = 0; i < ITERS; ++i)
    __asm__ volatile(
        "vpermb %%zmm16, %%zmm17, %%zmm0\n\t vpdpbusd %%zmm18, %%zmm19, %%zmm8\n\t"
        "vpermb %%zmm16, %%zmm17, %%zmm1\n\t vpdpbusd %%zmm18, %%zmm19, %%zmm9\n\t"
        "vpermb %%zmm16, %%zmm17, %%zmm2\n\t vpdpbusd %%zmm18, %%zmm19, %%zmm10\n\t"
        "vpermb %%zmm16, %%zmm17, %%zmm3\n\t vpdpbusd %%zmm18, %%zmm19, %%zmm11\n\t" ::: "xmm0", "xmm1", "xmm2",
        "xmm3", "xmm8", "xmm9", "xmm10", "xmm11");
  return (now() - t) / ITERS;  // seconds per 4 pairs
}

int main(void) {
  if (!__builtin_cpu_supports("avx512vbmi") || !__builtin_cpu_supports("avx512vnni")) {
    printf("isa_ceiling: this CPU lacks AVX-512 VBMI or VNNI\n");
    return 1;
  }
  for (int round = 1; round <= 3; ++round) {
    const double f = fp32_lut(), v = vnni(), p = lut8();
    const double fp32 = 640 / (f * 1e9);         // multiply-adds per ns
    const double int8 = 8 * 64 / (v * 1e9);
    const double t16 = 4 * 256 / 2 / (p * 1e9);  // two pairs per 256
    const double t8 = 4 * 256 / (p * 1e9);
    printf("round %d: multiply-adds per ns at the ports' limit: fp32 LUT (shipped) %.0f | int8 VNNI %.0f (%.2fx) | "
           "int16-table LUT %.0f (%.2fx) | int8-table LUT %.0f (%.2fx)\n",
           round, fp32, int8, int8 / fp32, t16, t16 / fp32, t8, t8 / fp32);
  }
  return 0;
}
