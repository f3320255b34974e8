// Device repack of canonical packed bits into the kernels' tile order: one thread per tiled word, the same
// tiles::tiled_word the host repack uses.
#include "kernels/cuda/binarymos_cuda.h"
#include "kernels/cuda/launchers.cuh"

namespace bmos::kernels::device {

__global__ void repack_tiles_kernel(const packed::Word* __restrict__ canonical, std::int64_t N, std::int64_t K,
                                    std::uint32_t* __restrict__ tiled, std::int64_t words) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < words) tiled[i] = tiles::tiled_word(canonical, N, K, i);
}

}  // namespace bmos::kernels::device

namespace bmos::kernels {

void repack_tiles_cuda(const packed::Word* canonical, std::int64_t N, std::int64_t K, std::uint32_t* tiled,
                       void* stream) {
  if (N < 1 || K < 1)
    throw std::invalid_argument("repack_tiles_cuda: N and K must be >= 1 (got N=" + std::to_string(N) +
                                " K=" + std::to_string(K) + ")");
  if (canonical == nullptr || tiled == nullptr)
    throw std::invalid_argument("repack_tiles_cuda: canonical and tiles must be device pointers, got nullptr");
  const std::int64_t words = tiles::tiled_words(N, K);
  constexpr int kThreads = 256;
  detail::launch("repack_tiles_kernel", device::repack_tiles_kernel,
                 dim3(static_cast<unsigned>(tiles::ceil_div(words, kThreads))), dim3(kThreads), 0,
                 static_cast<cudaStream_t>(stream), false, canonical, N, K, tiled, words);
}

}  // namespace bmos::kernels
