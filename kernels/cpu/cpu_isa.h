// Which instruction set the CPU kernels run on: picked once at run time from CPUID (and the OS's saved-register
// support), so one binary runs everywhere and uses AVX-512 where the machine has it.
#pragma once

namespace bmos::kernels {

enum class CpuIsa {
  kScalar,  // portable C++; any x86-64 (or other) CPU
  kAvx2,    // AVX2 + FMA: the required baseline of the fast path (8-lane vpermps lookups)
  kAvx512,  // AVX-512 F/BW/VL/DQ: 16-lane lookups in 32-entry tables (vpermi2ps)
};

// The best ISA this CPU and this build support. $BMOS_CPU_ISA=scalar|avx2|avx512 lowers it (never raises it above
// what the CPU supports): used to compare paths in benchmarks and to reproduce a fallback on a big machine.
CpuIsa best_cpu_isa();
// True when this CPU can run `isa` (kScalar always).
bool cpu_supports(CpuIsa isa);
const char* isa_name(CpuIsa isa);
// True when the CPU has bf16 dot-product instructions (AVX512_BF16), with which libtorch's bf16 matmul beats fp32
// (3.3x on a Zen 4 core: bmos_bench TeacherForward); without them bf16 is emulated and slower.
bool cpu_has_bf16_dot();

}  // namespace bmos::kernels
