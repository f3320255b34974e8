#include "modules/blas_kernels.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/cpu_isa.h"

namespace bmos {

std::string openblas_core() {
  // OpenBLAS comes in through libblas (libtorch's dependency): look its getter up at run time, as threads.cpp does.
  using CoreName = char* (*)();
  auto f = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = f ? f() : nullptr;
  return name ? name : "";
}

std::string blas_core_fix(const std::string& openblas_core, bool avx2_fma, bool avx512) {
  if (openblas_core.empty() || !avx2_fma) return "";
  std::string core = openblas_core;
  std::transform(core.begin(), core.end(), core.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  // OpenBLAS 0.3.21's x86 cores without AVX2 kernels: what it falls back to for a CPU it does not know.
  static const char* const kPreAvx2[] = {"unknown",  "katmai",  "coppermine", "northwood", "prescott",
                                         "banias",   "atom",    "core2",      "penryn",    "dunnington",
                                         "nehalem",  "athlon",  "opteron",    "opteron(sse3)", "barcelona",
                                         "nano",     "bobcat",  "bulldozer",  "piledriver", "sandybridge"};
  for (const char* old : kPreAvx2)
    if (core == old) return avx512 ? "SkylakeX" : "Haswell";
  return "";
}

void restart_with_blas_fix(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // the user's (or our earlier run's) choice
  const std::string chosen = openblas_core();
  const std::string fix = blas_core_fix(chosen, kernels::cpu_supports(kernels::CpuIsa::kAvx2),
                                        kernels::cpu_supports(kernels::CpuIsa::kAvx512));
  if (fix.empty()) return;
  std::fprintf(stderr,
               "bmos: OpenBLAS does not know this CPU and chose its %s kernels (no AVX2); restarting with "
               "OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE to choose yourself)\n",
               chosen.c_str(), fix.c_str());
  setenv("OPENBLAS_CORETYPE", fix.c_str(), 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "bmos: could not restart (%s): going on with OpenBLAS's %s kernels\n", std::strerror(errno),
               chosen.c_str());
}

}  // namespace bmos
