// The CUDA path of PackedBinaryMoSLinear: kernels/cuda/binarymos_cuda.h (router/scale prologue, the decode GEMV for
// 1-32 tokens, the tensor-core GEMM above) on the current CUDA stream.
//
// Built where libtorch has CUDA and nvcc compiled kernels/cuda (CMake defines BMOS_TORCH_CUDA); elsewhere every call
// throws, naming why, so that a CUDA input never falls back to the CPU silently.
//
// dtypes: the kernels compute in fp16 or bf16 with fp32 accumulation. A bf16 or fp16 input runs in its own type; an
// fp32 input runs in fp16 (10 mantissa bits: closer to the CPU's fp32 than bf16) and the output is returned in the
// input's dtype.
//
// Memory: on the first call on a device the layer uploads its canonical bits, repacks them on the GPU into the
// kernels' tile order (the same bits: 1 bit per weight plus tile padding) and keeps its scales in the kernel dtype.
// The workspace (scaled activations, router gates, split-K partial sums and counters) is one buffer per device and
// stream, shared by every layer (calls on one stream are serialised), grown to the largest call seen.
#pragma once

#include <memory>

#include <ATen/core/Tensor.h>

namespace bmos {

class PackedBinaryMoSLinearImpl;
struct PackedCudaState;
// A layer's device copies; empty until its first CUDA call.
using PackedCudaCache = std::shared_ptr<PackedCudaState>;

// True when this build can run packed layers on CUDA tensors.
bool packed_cuda_built();

// y (M, out) = layer(x2d (M, in)), x2d on a CUDA device.
at::Tensor packed_cuda_forward(PackedCudaCache& cache, const PackedBinaryMoSLinearImpl& layer, const at::Tensor& x2d);

}  // namespace bmos
