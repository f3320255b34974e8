// CUDA kernels for the packed BinaryMoS layer: plain C++ interface over raw device pointers (no CUDA or torch headers
// needed to include it). Every function checks shapes and arguments, launches on the given stream, checks each launch
// and throws std::invalid_argument (bad arguments) or std::runtime_error (CUDA errors) with a message that says what to
// fix. Implemented in binarymos_cuda.cu.
//
// Use:
//   1. Weights: repack the canonical bits (kernels/packed_format.h) once into the kernels' tile order
//      (tile_layout.h): repack_tiles_host() before upload, or repack_tiles_cuda() on the device.
//      Tiled size: tiles::tiled_words(N, K) 32-bit words.
//   2. Workspace: binarymos_cuda_workspace_bytes(max_tokens, N, K, E) bytes of device memory. It may be shared by
//      layers (size it for the largest), but not by two streams at the same time: calls on one workspace must be
//      serialised. No call depends on what an earlier one left in it (each call zeroes the split-K counters it uses
//      in its prologue), so an aborted call (a kernel fault, a launch error, a captured graph torn down) does not
//      spoil later ones.
//   3. binarymos_forward_cuda(args) per call: y = ((x * s_in) @ sign(W)^T) * s_out + bias with token scales from the
//      router (see kernels/cpu/reference.h), fp32 accumulation.
//
// Kernels (dispatched on M): M <= 32 a decode GEMV that streams each weight bit once (128-bit loads, tensor-core mma
// with sign bits turned into +-1 in registers, split-K across blocks when N is small); M > 32 a tiled tensor-core GEMM
// with a cp.async pipeline. Before either, at most two small prologue kernels compute the router softmax and write
// x * s_in into the workspace. On sm_90 the later kernels use programmatic dependent launch (PDL) so that their weight
// loads overlap the prologue. To compare without it: BinaryMoSCudaArgs::allow_pdl = false for one call, or the
// environment variable BMOS_CUDA_PDL=0 for every call of the process (read once, at the first call; 1 or unset: on,
// anything else is refused). Results are the same either way.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/tile_layout.h"
#include "kernels/packed_format.h"

namespace bmos::kernels {

enum class CudaDType : int { kF16 = 0, kBF16 = 1 };

struct BinaryMoSCudaArgs {
  CudaDType dtype = CudaDType::kF16;     // type of x, y, router, s_in, s_out, bias
  std::int64_t M = 0;                    // tokens
  std::int64_t N = 0;                    // output features
  std::int64_t K = 0;                    // input features
  std::int64_t E = 0;                    // experts; 0 = no scales (plain binary matmul), 1 = OneBit (no router)
  const std::uint32_t* tiles = nullptr;  // (tiled_words(N, K)) sign bits in tile order
  const void* router = nullptr;          // (E, K), required when E > 1
  const void* s_in = nullptr;            // (E, K) input scale experts, required when E >= 1
  const void* s_out = nullptr;           // (E, N) output scale experts, required when E >= 1
  const void* bias = nullptr;            // (N) or nullptr
  const void* x = nullptr;               // (M, K) row-major
  void* y = nullptr;                     // (M, N) row-major; must not overlap x
  void* workspace = nullptr;             // binarymos_cuda_workspace_bytes(>= M, N, K, E) bytes, 256-byte aligned
  std::size_t workspace_bytes = 0;
  void* stream = nullptr;  // cudaStream_t (nullptr = legacy default stream)
  bool allow_pdl = true;   // false: no programmatic dependent launch; used only on sm_90+ and without BMOS_CUDA_PDL=0
};

// Device workspace bytes that serve every call with M <= max_tokens on the current device.
std::size_t binarymos_cuda_workspace_bytes(std::int64_t max_tokens, std::int64_t N, std::int64_t K, std::int64_t E);
// Zeroes a workspace. Optional (calls do not read what they did not write in the same call); kept so that a new
// workspace holds no stale bytes.
void binarymos_cuda_workspace_init(void* workspace, std::size_t bytes, void* stream);

// The whole layer (see BinaryMoSCudaArgs). Asynchronous on args.stream.
void binarymos_forward_cuda(const BinaryMoSCudaArgs& args);

// Canonical packed bits (packed_words(N, K) words) -> tile order (tiles::tiled_words(N, K) words), on the host.
inline void repack_tiles_host(const packed::Word* canonical, std::int64_t N, std::int64_t K, std::uint32_t* tiles) {
  const std::int64_t words = tiles::tiled_words(N, K);
  for (std::int64_t i = 0; i < words; ++i) tiles[i] = tiles::tiled_word(canonical, N, K, i);
}
// The same on the device (both pointers device memory), asynchronous on stream.
void repack_tiles_cuda(const packed::Word* canonical, std::int64_t N, std::int64_t K, std::uint32_t* tiles,
                       void* stream);

// Name of the kernel binarymos_forward_cuda picks for M tokens ("gemv", "gemm64", "gemm128"), for logs and benchmarks.
const char* binarymos_cuda_kernel_name(std::int64_t M);

}  // namespace bmos::kernels
