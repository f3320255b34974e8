#include "kernels/cpu/binary_matmul.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cpu/aligned_buffer.h"
#include "kernels/cpu/matmul_job.h"
#include "kernels/cpu/spin_pool.h"

namespace bmos::kernels {

namespace {

using Kernel = void (*)(const detail::MatmulJob&);

Kernel kernel_for(CpuIsa isa) {
  if (!cpu_supports(isa))
    throw std::invalid_argument(std::string("binary_matmul: this CPU cannot run the ") + isa_name(isa) +
                                " kernels; use best_cpu_isa()");
#if defined(__x86_64__)  // other CPUs build only the scalar kernel (cpu_supports says so)
  switch (isa) {
    case CpuIsa::kAvx512: return detail::matmul_avx512;
    case CpuIsa::kAvx2: return detail::matmul_avx2;
    case CpuIsa::kScalar: break;
  }
#endif
  return detail::matmul_scalar;
}

// Part `part` of `parts` of [0, n), in multiples of `step` (the last part takes the rest).
void split(int64_t n, int64_t step, int part, int parts, int64_t* begin, int64_t* end) {
  const int64_t chunks = (n + step - 1) / step;
  *begin = std::min(n, chunks * part / parts * step);
  *end = part + 1 == parts ? n : std::min(n, chunks * (part + 1) / parts * step);
}

// Tables of kMaxTokenTile tokens (fp32) or kInt8TokenTile tokens (int8); one per thread, kept between calls.
float* thread_scratch(const PreparedBinaryMatrix& B) {
  thread_local AlignedBuffer<float> scratch;
  const int64_t fp32 = detail::kMaxTokenTile * B.words_per_row() * detail::kLut5PerWord;
  const int64_t int8_bytes = detail::kInt8TokenTile * B.words_per_row() * (detail::kLut8PerWord + 8) +
                             B.words_per_row() * detail::kInt8BuildFloatsPerWord * 4;
  return scratch.at_least(static_cast<std::size_t>(std::max(fp32, (int8_bytes + 3) / 4)));
}

}  // namespace

bool cpu_supports_int8_lut() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return cpu_supports(CpuIsa::kAvx512) && __builtin_cpu_supports("avx512vbmi") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

const char* lut_precision_name(LutPrecision p) { return p == LutPrecision::kInt8 ? "int8" : "fp32"; }

LutPrecision parse_lut_precision(const std::string& name) {
  if (name == "fp32") return LutPrecision::kFp32;
  if (name == "int8") return LutPrecision::kInt8;
  throw std::invalid_argument("unknown table precision '" + name + "' (expected fp32 or int8)");
}

void binary_matmul(const PreparedBinaryMatrix& B, const float* x, int64_t M, float* y, int threads, CpuIsa isa) {
  binary_matmul(B, x, M, y, threads, isa, {});
}

void binary_matmul(const PreparedBinaryMatrix& B, const float* x, int64_t M, float* y, int threads, CpuIsa isa,
                   const std::function<void(int64_t, int64_t, int64_t, int64_t)>& done, LutPrecision lut) {
  if (B.rows() == 0) throw std::invalid_argument("binary_matmul: the PreparedBinaryMatrix is empty");
  if (M < 0 || threads < 1)
    throw std::invalid_argument("binary_matmul: need M >= 0 and threads >= 1, got M=" + std::to_string(M) +
                                " threads=" + std::to_string(threads));
  if (M == 0) return;
  Kernel kernel = kernel_for(isa);
  if (lut == LutPrecision::kInt8 && M >= 2) {
#if defined(__x86_64__)
    if (!cpu_supports_int8_lut())
      throw std::invalid_argument("binary_matmul: int8 tables need AVX-512 VBMI and VNNI, which this CPU lacks");
    kernel = detail::matmul_int8_avx512;
#else
    throw std::invalid_argument("binary_matmul: int8 tables need an x86-64 CPU with AVX-512 VBMI and VNNI");
#endif
  }
  detail::MatmulJob base{B.tile_words(0), B.tile_stride(), B.words_per_row(), B.rows(), B.cols(), x, y,
                         0, M, 0, B.tiles(), nullptr};
  // Split rows while each thread keeps whole 8-tile blocks (the AVX-512 GEMV's unit); else split tokens.
  const bool by_rows = B.tiles() >= 16 * threads || M < threads;
  auto run_part = [&](int part, int parts) {
    detail::MatmulJob job = base;
    if (by_rows) split(B.tiles(), 8, part, parts, &job.tile_begin, &job.tile_end);
    else split(M, 1, part, parts, &job.m_begin, &job.m_end);
    if (job.tile_begin >= job.tile_end || job.m_begin >= job.m_end) return;
    job.scratch = thread_scratch(B);
    kernel(job);
    if (done) done(job.m_begin, job.m_end, job.tile_begin * 16, std::min(B.rows(), job.tile_end * 16));
  };
  spin_pool_run(threads, run_part);
}

}  // namespace bmos::kernels
