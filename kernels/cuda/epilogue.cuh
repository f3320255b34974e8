// The end of both matmul kernels: y = acc * s_out + bias with s_out = gates @ S_out per token, and the split-K
// hand-off (each split writes fp32 partial sums; the last block of an output tile to arrive, found with an atomic
// counter, adds them in split order and runs the epilogue, so the result does not depend on arrival order).
//
// The counters start every call at zero, whatever an earlier call left in them (a kernel fault, a launch error between
// kernels or a captured graph torn down can stop a call half-way): scale_activations_kernel, which always runs just
// before the matmul, zeroes the split_counters(plan) of them (launch_plan.h) after its own griddepcontrol.wait, and
// the matmul counts only after its griddepcontrol.wait, which returns once that grid has finished and its writes are
// visible (without PDL, stream order gives the same). The zeroing cannot race an earlier call either: the call's first
// kernel (router_logits_kernel, or the scale kernel itself when there is no router) is launched without PDL, so it
// starts after the previous call's matmul has finished, and the scale kernel's wait covers the router kernel.
#pragma once

#include <cstdint>

#include "kernels/cuda/device_primitives.cuh"

namespace bmos::kernels::device {

template <typename T>
struct Epilogue {
  const T* s_out;      // (E, N) or nullptr: no output scale
  const float* gates;  // (M, E) softmax weights written by the prologue (1.0 when E == 1)
  int E;
  const T* bias;  // (N) or nullptr
  T* y;           // (M, N)
  std::int64_t M, N;
};

// Stores output (token, n) from its fp32 accumulator. Callers guarantee token < M and n < N.
template <typename T>
__device__ __forceinline__ void store_output(const Epilogue<T>& ep, std::int64_t token, std::int64_t n, float acc) {
  if (ep.s_out != nullptr) {
    float s = 0.0f;
    for (int e = 0; e < ep.E; ++e) s += ep.gates[token * ep.E + e] * load_float(ep.s_out, e * ep.N + n);
    acc *= s;
  }
  if (ep.bias != nullptr) acc += load_float(ep.bias, n);
  ep.y[token * ep.N + n] = Elem<T>::from_float(acc);
}

// Split-K bookkeeping shared by the GEMV and the GEMM.
struct SplitK {
  float* partials;         // [splits][M][padded_rows] fp32
  unsigned int* counters;  // one per output tile, zeroed by the prologue of each call
  std::int64_t splits;
  std::int64_t padded_rows;
};

__device__ __forceinline__ float* partial_at(const SplitK& sk, std::int64_t split, std::int64_t M, std::int64_t token,
                                             std::int64_t n) {
  return sk.partials + (split * M + token) * sk.padded_rows + n;
}

// Called by every thread of a block after it wrote its partial sums. Returns true in the block that arrived last for
// `tile`; that block may then read every split's partials (with __ldcg) and must finish the tile. It also puts the
// counter back to zero. Nothing depends on that any more (see the top of this file), but without the store ptxas
// allocated the 64-token GEMM's registers differently and spilled, so it stays.
__device__ __forceinline__ bool arrive_last(const SplitK& sk, std::int64_t tile) {
  __shared__ bool last;
  __threadfence();  // this block's partials are visible device-wide before it counts itself in
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned int before = atomicAdd(sk.counters + tile, 1u);
    last = before == static_cast<unsigned int>(sk.splits - 1);
    if (last) sk.counters[tile] = 0u;  // every split has arrived: nobody else touches this counter in this call
  }
  __syncthreads();
  if (last) __threadfence();  // order the reads of other blocks' partials after the counter
  return last;
}

// Sum of a partial over all splits, in split order.
__device__ __forceinline__ float sum_partials(const SplitK& sk, std::int64_t M, std::int64_t token, std::int64_t n) {
  float v = 0.0f;
  for (std::int64_t s = 0; s < sk.splits; ++s) v += __ldcg(partial_at(sk, s, M, token, n));
  return v;
}

}  // namespace bmos::kernels::device
