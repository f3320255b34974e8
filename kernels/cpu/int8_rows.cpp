#include "kernels/cpu/int8_rows.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cpu/spin_pool.h"

namespace bmos::kernels {

namespace {

void rows_scalar(const int8_t* codes, const float* scale, int64_t K, const float* x, int64_t M, float* y, int64_t N,
                 int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* row = codes + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * K;
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += xm[k] * static_cast<float>(row[k]);
      y[m * N + n] = acc * scale[n];
    }
  }
}

}  // namespace

void int8_rows_matmul_ref(const int8_t* codes, const float* scale, int64_t N, int64_t K, const float* x, int64_t M,
                          float* y) {
  rows_scalar(codes, scale, K, x, M, y, N, 0, N);
}

void int8_rows_matmul(const int8_t* codes, const float* scale, int64_t N, int64_t K, const float* x, int64_t M,
                      float* y, int threads, CpuIsa isa) {
  if (N < 0 || K < 0 || M < 0 || threads < 1)
    throw std::invalid_argument("int8_rows_matmul: need N, K, M >= 0 and threads >= 1");
  if (!cpu_supports(isa))
    throw std::invalid_argument(std::string("int8_rows_matmul: this CPU cannot run the ") + isa_name(isa) +
                                " kernels");
  if (N == 0 || M == 0) return;
  auto run_part = [&](int part, int parts) {
    const int64_t blocks = (N + 15) / 16;  // whole 16-row blocks per thread
    const int64_t b = std::min(N, blocks * part / parts * 16);
    const int64_t e = part + 1 == parts ? N : std::min(N, blocks * (part + 1) / parts * 16);
    if (b >= e) return;
#if defined(__x86_64__)
    if (isa == CpuIsa::kAvx512) return detail::int8_rows_avx512(codes, scale, K, x, M, y, N, b, e);
#endif
    rows_scalar(codes, scale, K, x, M, y, N, b, e);  // other ISAs: the plain loop (also the reference)
  };
  spin_pool_run(threads, run_part);
}

}  // namespace bmos::kernels
