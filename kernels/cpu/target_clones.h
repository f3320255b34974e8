// BMOS_CLONES before a plain loop function compiles it for AVX-512, AVX2 and the x86-64 baseline; the dynamic loader
// picks the best the CPU has (GCC's target_clones, an ifunc). For the small vector loops of generic code (scales,
// norms, attention) that would otherwise run as SSE2; the matmul kernels have their own per-ISA files. Results may
// differ by ISA in the last bits (FMA contraction), never by thread count.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define BMOS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BMOS_CLONES
#endif
