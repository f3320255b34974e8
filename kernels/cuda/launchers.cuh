// Internal: the host launchers each kernel file defines (explicitly instantiated for __half and __nv_bfloat16), and the
// launch helper they share. binarymos_cuda.cu dispatches to them; nothing outside kernels/cuda includes this file.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cuda/epilogue.cuh"
#include "kernels/cuda/launch_plan.h"

namespace bmos::kernels::detail {

// Throws std::runtime_error naming the call when a CUDA runtime call failed.
inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("binarymos CUDA: ") + what + " failed: " + cudaGetErrorName(err) + " (" +
                             cudaGetErrorString(err) + ")");
}

// Launches kernel on stream; with pdl the launch may begin before the previous kernel in the stream has finished
// (programmatic dependent launch, sm_90+): the kernel must call device::wait_for_producer() before it reads anything
// the previous kernel writes. Checks the launch.
template <typename... Params, typename... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
            bool pdl, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = pdl ? attr : nullptr;
  cfg.numAttrs = pdl ? 1 : 0;
  check_cuda(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), name);
  check_cuda(cudaGetLastError(), name);
}

// Prologue 1: partial router logits, float [M][router_blocks][E].
template <typename T>
void launch_router_logits(const T* x, const T* router, std::int64_t M, std::int64_t K, int E,
                          std::int64_t router_blocks, float* logits, cudaStream_t stream);

// Prologue 2: gates (softmax of the summed logits; 1 when E == 1) and the scaled, zero-padded activations in
// `layout` order, T [M][padded_k(K)]; zeroes counters [0, n_counters) (n_counters = split_counters(plan)).
template <typename T>
void launch_scale_activations(const T* x, const T* s_in, const float* logits, std::int64_t M, std::int64_t K, int E,
                              std::int64_t router_blocks, std::int64_t prologue_blocks, tiles::ActLayout layout, T* act,
                              float* gates, unsigned int* counters, int n_counters, cudaStream_t stream, bool pdl);

// The matmul for a plan of kind kGemv (binary_gemv.cu) or kGemm64/kGemm128 (binary_gemm.cu).
template <typename T>
void launch_gemv(const tiles::LaunchPlan& plan, const std::uint32_t* tiled, const T* act, std::int64_t K,
                 const device::Epilogue<T>& ep, const device::SplitK& sk, cudaStream_t stream, bool pdl);
template <typename T>
void launch_gemm(const tiles::LaunchPlan& plan, const std::uint32_t* tiled, const T* act, std::int64_t K,
                 const device::Epilogue<T>& ep, const device::SplitK& sk, cudaStream_t stream, bool pdl);

}  // namespace bmos::kernels::detail
