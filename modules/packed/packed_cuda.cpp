#include "modules/packed/packed_cuda.h"

#include <stdexcept>
#include <string>

#include "modules/packed/packed_binarymos_linear.h"

#ifdef BMOS_TORCH_CUDA
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/cuda/binarymos_cuda.h"
#endif

namespace bmos {

#ifdef BMOS_TORCH_CUDA

struct PackedCudaState {
  torch::Device device{torch::kCUDA};
  torch::Tensor tiles;  // (tiled_words(out, in)) int32: sign bits in the kernels' tile order
  torch::ScalarType dtype = torch::kHalf;
  torch::Tensor router, s_in, s_out, bias;  // in `dtype` on `device`; router and bias may be undefined
};

namespace {

// At most this many tokens per kernel call: bounds the shared workspace (2 K bytes per token of scaled activations)
// and stays below the kernels' 65535-token grid limit.
constexpr int64_t kMaxTokensPerCall = 8192;

// One workspace per (device, stream): calls on a stream are serialised, so its layers can share one buffer.
struct Workspace {
  torch::Tensor buffer;                          // uint8, zeroed when (re)allocated
  std::int64_t tokens = 0, n = 0, k = 0, e = 0;  // the largest shape it was sized for
};

Workspace& workspace_for(const c10::cuda::CUDAStream& stream) {
  static std::mutex mu;
  // Never destroyed: its tensors must not be freed after the CUDA allocator shuts down at exit.
  static auto* spaces = new std::map<std::tuple<int, std::int64_t>, Workspace>();
  std::lock_guard<std::mutex> lock(mu);
  return (*spaces)[{stream.device_index(), static_cast<std::int64_t>(stream.id())}];
}

torch::Tensor on(const torch::Tensor& t, torch::Device device, torch::ScalarType dtype) {
  return t.defined() ? t.detach().to(device, dtype).contiguous() : t;
}

// The layer's bits in tile order and its scales in `dtype` on `device` (remade when either changes).
void prepare(PackedCudaCache& cache, const PackedBinaryMoSLinearImpl& layer, torch::Device device,
             torch::ScalarType dtype, const c10::cuda::CUDAStream& stream) {
  if (cache && cache->device == device && cache->dtype == dtype) return;
  if (!cache || cache->device != device) {
    auto state = std::make_shared<PackedCudaState>();
    state->device = device;
    const int64_t N = layer.out_features(), K = layer.in_features();
    const torch::Tensor canonical = layer.bits().to(device);  // (N, words_per_row(K)) int32
    state->tiles = torch::empty({kernels::tiles::tiled_words(N, K)}, torch::dtype(torch::kInt32).device(device));
    kernels::repack_tiles_cuda(reinterpret_cast<const packed::Word*>(canonical.data_ptr<int32_t>()), N, K,
                               reinterpret_cast<std::uint32_t*>(state->tiles.data_ptr<int32_t>()), stream.stream());
    cache = std::move(state);
  }
  cache->dtype = dtype;
  cache->router = layer.experts() > 1 ? on(layer.router, device, dtype) : torch::Tensor();
  cache->s_in = on(layer.s_in, device, dtype);
  cache->s_out = on(layer.s_out, device, dtype);
  cache->bias = on(layer.bias, device, dtype);
}

// y (M, N) = layer(x (M, K)), M <= kMaxTokensPerCall, both contiguous in the cache's dtype.
void run_kernels(const PackedCudaState& cache, const torch::Tensor& x, const torch::Tensor& y, int64_t N, int64_t K,
                 int64_t E, const c10::cuda::CUDAStream& stream) {
  const int64_t M = x.size(0);
  Workspace& ws = workspace_for(stream);
  if (M > ws.tokens || N > ws.n || K > ws.k || E > ws.e) {
    // Grow to cover this call and every earlier one (the layout depends on all four). The old buffer goes back to
    // the caching allocator in stream order, after the kernels already queued on it.
    ws.tokens = std::max(ws.tokens, M);
    ws.n = std::max(ws.n, N);
    ws.k = std::max(ws.k, K);
    ws.e = std::max(ws.e, E);
    const std::size_t bytes = kernels::binarymos_cuda_workspace_bytes(ws.tokens, ws.n, ws.k, ws.e);
    ws.buffer = torch::empty({static_cast<int64_t>(bytes)}, torch::dtype(torch::kUInt8).device(x.device()));
    kernels::binarymos_cuda_workspace_init(ws.buffer.data_ptr(), bytes, stream.stream());
  }
  kernels::BinaryMoSCudaArgs a;
  a.dtype = cache.dtype == torch::kBFloat16 ? kernels::CudaDType::kBF16 : kernels::CudaDType::kF16;
  a.M = M;
  a.N = N;
  a.K = K;
  a.E = E;
  a.tiles = reinterpret_cast<const std::uint32_t*>(cache.tiles.data_ptr<int32_t>());
  a.router = cache.router.defined() ? cache.router.data_ptr() : nullptr;
  a.s_in = cache.s_in.data_ptr();
  a.s_out = cache.s_out.data_ptr();
  a.bias = cache.bias.defined() ? cache.bias.data_ptr() : nullptr;
  a.x = x.data_ptr();
  a.y = y.data_ptr();
  a.workspace = ws.buffer.data_ptr();
  a.workspace_bytes = static_cast<std::size_t>(ws.buffer.numel());
  a.stream = stream.stream();
  kernels::binarymos_forward_cuda(a);
}

}  // namespace

bool packed_cuda_built() { return true; }

torch::Tensor packed_cuda_forward(PackedCudaCache& cache, const PackedBinaryMoSLinearImpl& layer,
                                  const torch::Tensor& x2d) {
  const c10::cuda::CUDAGuard guard(x2d.device());
  const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(x2d.device().index());
  const torch::ScalarType out_dtype = x2d.scalar_type();
  const torch::ScalarType dtype = out_dtype == torch::kBFloat16 ? torch::kBFloat16 : torch::kHalf;
  prepare(cache, layer, x2d.device(), dtype, stream);
  const int64_t N = layer.out_features(), K = layer.in_features(), E = layer.experts();
  const torch::Tensor x = x2d.to(dtype).contiguous();             // (M, K)
  const torch::Tensor y = torch::empty({x.size(0), N}, x.options());  // (M, N)
  for (int64_t m0 = 0; m0 < x.size(0); m0 += kMaxTokensPerCall) {
    const int64_t M = std::min(kMaxTokensPerCall, x.size(0) - m0);
    run_kernels(*cache, x.narrow(0, m0, M), y.narrow(0, m0, M), N, K, E, stream);  // contiguous row ranges
  }
  return y.to(out_dtype);
}

#else  // no CUDA libtorch, or no nvcc: no kernels/cuda in this build

struct PackedCudaState {};

bool packed_cuda_built() { return false; }

torch::Tensor packed_cuda_forward(PackedCudaCache&, const PackedBinaryMoSLinearImpl&, const torch::Tensor& x2d) {
  throw std::invalid_argument("PackedBinaryMoSLinear: input on " + x2d.device().str() +
                              ", but this build of binarymos has no CUDA path (it needs a libtorch with CUDA and "
                              "nvcc at build time); run exported models with --device cpu");
}

#endif

}  // namespace bmos
