// The two small kernels that run before the matmul: router logits (split over K so that K = 11008 does not serialise
// on one SM), then the softmax gates and x * s_in written zero-padded, in the layout the matmul kernel reads; the
// second also zeroes the call's split-K counters (epilogue.cuh).
#include "kernels/cuda/launchers.cuh"

namespace bmos::kernels::device {

constexpr int kWarpsPerPrologue = tiles::kPrologueThreads / 32;

// grid (router_blocks, M). logits[(m * router_blocks + b) * E + e] = sum over this block's columns of x[m] . router[e].
template <typename T>
__global__ void __launch_bounds__(tiles::kPrologueThreads)
    router_logits_kernel(const T* __restrict__ x, const T* __restrict__ router, std::int64_t K, int E,
                         float* __restrict__ logits) {
  allow_dependent_launch();  // the next kernel only prefetches weights until it waits for this grid
  const std::int64_t m = blockIdx.y, k0 = static_cast<std::int64_t>(blockIdx.x) * tiles::kRouterColumns;
  float acc[tiles::kMaxExperts];
#pragma unroll
  for (int e = 0; e < tiles::kMaxExperts; ++e) acc[e] = 0.0f;
#pragma unroll 4
  for (int i = 0; i < tiles::kRouterColumns / tiles::kPrologueThreads; ++i) {
    const std::int64_t k = k0 + i * tiles::kPrologueThreads + threadIdx.x;
    if (k < K) {
      const float xv = load_float(x, m * K + k);
#pragma unroll
      for (int e = 0; e < tiles::kMaxExperts; ++e)
        if (e < E) acc[e] += xv * load_float(router, e * K + k);
    }
  }
  __shared__ float partial[tiles::kMaxExperts][kWarpsPerPrologue];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int e = 0; e < tiles::kMaxExperts; ++e) {
    if (e < E) {
      float v = acc[e];
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == 0) partial[e][warp] = v;
    }
  }
  __syncthreads();
  if (threadIdx.x < E) {
    float v = 0.0f;
    for (int w = 0; w < kWarpsPerPrologue; ++w) v += partial[threadIdx.x][w];
    logits[(m * gridDim.x + blockIdx.x) * E + threadIdx.x] = v;
  }
}

// grid (prologue_blocks, M). Each thread writes 8 consecutive positions (16 bytes) of token m's activation row, and
// the grid zeroes counters [0, n_counters).
// (The min-blocks hint of 1 lets ptxas use more than 32 registers; without it the unrolled loop spilled.)
template <typename T>
__global__ void __launch_bounds__(tiles::kPrologueThreads, 1)
    scale_activations_kernel(const T* __restrict__ x, const T* __restrict__ s_in, const float* __restrict__ logits,
                             std::int64_t K, int E, std::int64_t router_blocks, tiles::ActLayout layout,
                             T* __restrict__ act, float* __restrict__ gates, unsigned int* __restrict__ counters,
                             int n_counters) {
  const std::int64_t m = blockIdx.y, KP = tiles::padded_k(K);
  __shared__ float g[tiles::kMaxExperts];
  // The matmul may launch now and stream its weights while this grid (and router_logits_kernel) run: it waits for
  // this grid to finish before reading act or gates.
  allow_dependent_launch();
  wait_for_producer();  // logits come from router_logits_kernel
  // The split-K counters of this call start at zero, whatever an earlier call left in them. After the wait, so that
  // no earlier kernel still counts with them; the matmul waits for this grid before it does (epilogue.cuh).
  for (std::int64_t i = (m * gridDim.x + blockIdx.x) * tiles::kPrologueThreads + threadIdx.x; i < n_counters;
       i += static_cast<std::int64_t>(gridDim.x) * gridDim.y * tiles::kPrologueThreads)
    counters[i] = 0u;
  if (E > 1) {
    if (threadIdx.x < E) {
      float v = 0.0f;
      for (std::int64_t b = 0; b < router_blocks; ++b) v += logits[(m * router_blocks + b) * E + threadIdx.x];
      g[threadIdx.x] = v;
    }
    __syncthreads();
    if (threadIdx.x == 0) {  // softmax over E <= 16 values in fp32, max-subtracted
      float mx = g[0];
      for (int e = 1; e < E; ++e) mx = fmaxf(mx, g[e]);
      float z = 0.0f;
      for (int e = 0; e < E; ++e) z += (g[e] = __expf(g[e] - mx));
      for (int e = 0; e < E; ++e) g[e] = __fdividef(g[e], z);  // z >= 1: the fast division is accurate here
    }
  } else if (threadIdx.x == 0) {
    g[0] = 1.0f;
  }
  __syncthreads();
  if (blockIdx.x == 0 && threadIdx.x < E) gates[m * E + threadIdx.x] = g[threadIdx.x];

  const std::int64_t p0 = (static_cast<std::int64_t>(blockIdx.x) * tiles::kPrologueThreads + threadIdx.x) * 8;
  if (p0 >= KP) return;
  std::uint32_t out[4];  // 8 values as 4 x (low, high) 16-bit pairs, kept in registers
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const std::int64_t k = tiles::act_column(p0 + i, layout);
    float v = 0.0f;
    if (k < K) {
      v = load_float(x, m * K + k);
      if (s_in != nullptr) {
        float s = 0.0f;
        for (int e = 0; e < E; ++e) s += g[e] * load_float(s_in, e * K + k);
        v *= s;
      }
    }
    const std::uint32_t bits = bits16(Elem<T>::from_float(v));
    out[i / 2] = (i & 1) ? (out[i / 2] | (bits << 16)) : bits;
  }
  *reinterpret_cast<uint4*>(act + m * KP + p0) = make_uint4(out[0], out[1], out[2], out[3]);
}

}  // namespace bmos::kernels::device

namespace bmos::kernels::detail {

template <typename T>
void launch_router_logits(const T* x, const T* router, std::int64_t M, std::int64_t K, int E,
                          std::int64_t router_blocks, float* logits, cudaStream_t stream) {
  // First kernel of the layer: a normal launch, so everything before it in the stream (x) is complete.
  launch("router_logits_kernel", device::router_logits_kernel<T>,
         dim3(static_cast<unsigned>(router_blocks), static_cast<unsigned>(M)), dim3(tiles::kPrologueThreads), 0, stream,
         false, x, router, K, E, logits);
}

template <typename T>
void launch_scale_activations(const T* x, const T* s_in, const float* logits, std::int64_t M, std::int64_t K, int E,
                              std::int64_t router_blocks, std::int64_t prologue_blocks, tiles::ActLayout layout, T* act,
                              float* gates, unsigned int* counters, int n_counters, cudaStream_t stream, bool pdl) {
  launch("scale_activations_kernel", device::scale_activations_kernel<T>,
         dim3(static_cast<unsigned>(prologue_blocks), static_cast<unsigned>(M)), dim3(tiles::kPrologueThreads), 0,
         stream, pdl, x, s_in, logits, K, E, router_blocks, layout, act, gates, counters, n_counters);
}

#define BMOS_INSTANTIATE(T)                                                                                          \
  template void launch_router_logits<T>(const T*, const T*, std::int64_t, std::int64_t, int, std::int64_t, float*,   \
                                        cudaStream_t);                                                               \
  template void launch_scale_activations<T>(const T*, const T*, const float*, std::int64_t, std::int64_t, int,       \
                                            std::int64_t, std::int64_t, tiles::ActLayout, T*, float*, unsigned int*, \
                                            int, cudaStream_t, bool);
BMOS_INSTANTIATE(__half)
BMOS_INSTANTIATE(__nv_bfloat16)
#undef BMOS_INSTANTIATE

}  // namespace bmos::kernels::detail
