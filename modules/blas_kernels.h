// Which kernels OpenBLAS runs torch's fp32 matmuls with, and the fix for a CPU it does not know.
// Debian 12's OpenBLAS (0.3.21, built for every x86 core) picks its kernels from the CPU model when it loads. A CPU
// newer than it gets the generic Prescott (SSE3) kernels: on this project's Xeon (family 6, model 207) sgemm ran at
// 12 GFLOP/s on one core against 49-100 with its SkylakeX kernels, and a C4 + WikiText-2 student (dim 256) trained at
// 325 tok/s instead of 1,627. OPENBLAS_CORETYPE names the kernels to use, but OpenBLAS reads it only when it loads,
// before main(): so bmos re-executes itself with it set (restart_with_blas_fix).
#pragma once

#include <string>

namespace bmos {

// The kernels OpenBLAS chose ("Prescott", "SkylakeX", ...), or "" when the process has no OpenBLAS.
std::string openblas_core();

// The OPENBLAS_CORETYPE to ask for: "SkylakeX" (AVX-512 F/BW/VL/DQ) or "Haswell" (AVX2 + FMA) when OpenBLAS chose a
// core without AVX2 (a fallback: it did not know the CPU) on a CPU that has them; otherwise "" (OpenBLAS knew it, or
// the CPU is that old, or there is no OpenBLAS). Plain, for tests.
std::string blas_core_fix(const std::string& openblas_core, bool avx2_fma, bool avx512);

// At the top of main(): when OPENBLAS_CORETYPE is unset and blas_core_fix() names a fix for this CPU, says so on
// stderr, sets it and re-executes /proc/self/exe with the same arguments (does not return). Otherwise, or when the
// exec fails (a warning), returns and the process goes on as it is.
void restart_with_blas_fix(char** argv);

}  // namespace bmos
