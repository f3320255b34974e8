// The public entry points of binarymos_cuda.h: argument checks, the plan (launch_plan.h), the workspace carve-up and
// the kernel sequence  [router logits] -> scale activations -> GEMV or GEMM.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "kernels/cuda/binarymos_cuda.h"
#include "kernels/cuda/launchers.cuh"

namespace bmos::kernels {
namespace {

struct DeviceInfo {
  int sms = 0;
  int major = 0;
};

// Multiprocessor count and compute capability of the current device, cached per device id.
DeviceInfo current_device() {
  static std::mutex mu;
  static std::vector<DeviceInfo> cache;
  int dev = 0;
  detail::check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(cache.size()) <= dev) cache.resize(dev + 1);
  DeviceInfo& info = cache[dev];
  if (info.sms == 0) {
    detail::check_cuda(cudaDeviceGetAttribute(&info.major, cudaDevAttrComputeCapabilityMajor, dev),
                       "cudaDeviceGetAttribute(ComputeCapabilityMajor)");
    detail::check_cuda(cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, dev),
                       "cudaDeviceGetAttribute(MultiProcessorCount)");
    if (info.major < 8)
      throw std::runtime_error("binarymos CUDA: device " + std::to_string(dev) + " has compute capability " +
                               std::to_string(info.major) + ".x; the kernels need sm_80 or newer (A100, H100)");
  }
  return info;
}

// BMOS_CUDA_PDL from the environment, read once per process: false when it is "0" (binarymos_cuda.h).
bool pdl_allowed_by_environment() {
  static const bool allowed = [] {
    const char* v = std::getenv("BMOS_CUDA_PDL");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "1") == 0) return true;
    if (std::strcmp(v, "0") == 0) return false;
    throw std::invalid_argument(std::string("binarymos CUDA: environment variable BMOS_CUDA_PDL='") + v +
                                "': set it to 0 (no programmatic dependent launch) or 1, or unset it (the default, 1)");
  }();
  return allowed;
}

std::string shape(const BinaryMoSCudaArgs& a) {
  return "M=" + std::to_string(a.M) + " N=" + std::to_string(a.N) + " K=" + std::to_string(a.K) +
         " E=" + std::to_string(a.E);
}

void require(bool ok, const BinaryMoSCudaArgs& a, const std::string& what) {
  if (!ok) throw std::invalid_argument("binarymos_forward_cuda (" + shape(a) + "): " + what);
}

bool aligned(const void* p, std::size_t n) { return reinterpret_cast<std::uintptr_t>(p) % n == 0; }

void check_args(const BinaryMoSCudaArgs& a) {
  require(a.M >= 1 && a.N >= 1 && a.K >= 1, a, "M, N and K must be >= 1");
  require(a.M <= 65535, a, "at most 65535 tokens per call (grid.y); split the batch");
  require(a.E >= 0 && a.E <= tiles::kMaxExperts, a, "E must be in [0, " + std::to_string(tiles::kMaxExperts) + "]");
  require(a.tiles != nullptr && a.x != nullptr && a.y != nullptr, a, "tiles, x and y must be device pointers");
  require(aligned(a.tiles, 16), a, "tiles must be 16-byte aligned (cudaMalloc memory is)");
  require(aligned(a.x, 2) && aligned(a.y, 2), a, "x and y must be 2-byte aligned");
  require(a.E <= 1 || a.router != nullptr, a, "E > 1 needs the router weights (E, K)");
  require(a.E == 0 || (a.s_in != nullptr && a.s_out != nullptr), a, "E >= 1 needs s_in (E, K) and s_out (E, N)");
  require(a.E >= 1 || (a.s_in == nullptr && a.s_out == nullptr && a.router == nullptr), a,
          "E == 0 means no scales: pass router, s_in and s_out as nullptr (or set E)");
  const auto* x0 = static_cast<const char*>(a.x);
  const auto* y0 = static_cast<const char*>(a.y);
  require(y0 + a.M * a.N * 2 <= x0 || x0 + a.M * a.K * 2 <= y0, a, "y must not overlap x");
  require(a.workspace != nullptr && aligned(a.workspace, tiles::kWorkspaceAlign), a,
          "workspace must be a 256-byte aligned device buffer of binarymos_cuda_workspace_bytes(...) bytes");
}

template <typename T>
void forward(const BinaryMoSCudaArgs& a, const tiles::LaunchPlan& plan, const tiles::WorkspaceLayout& ws, bool pdl) {
  auto* base = static_cast<unsigned char*>(a.workspace);
  auto* counters = reinterpret_cast<unsigned int*>(base + ws.counters);
  auto* act = reinterpret_cast<T*>(base + ws.act);
  auto* logits = reinterpret_cast<float*>(base + ws.logits);
  auto* gates = reinterpret_cast<float*>(base + ws.gates);
  const auto* x = static_cast<const T*>(a.x);
  auto stream = static_cast<cudaStream_t>(a.stream);
  const int E = static_cast<int>(a.E);

  if (plan.router_blocks > 0)
    detail::launch_router_logits(x, static_cast<const T*>(a.router), a.M, a.K, E, plan.router_blocks, logits, stream);
  detail::launch_scale_activations(
      x, static_cast<const T*>(a.s_in), logits, a.M, a.K, E, plan.router_blocks, plan.prologue_blocks, plan.act_layout,
      act, gates, counters, static_cast<int>(tiles::split_counters(plan)), stream, pdl && plan.router_blocks > 0);

  const device::Epilogue<T> ep{static_cast<const T*>(a.s_out), gates, E,  static_cast<const T*>(a.bias),
                               static_cast<T*>(a.y),           a.M,   a.N};
  const device::SplitK sk{reinterpret_cast<float*>(base + ws.partials), counters, plan.splits, tiles::padded_rows(a.N)};
  if (plan.kind == tiles::KernelKind::kGemv)
    detail::launch_gemv(plan, a.tiles, act, a.K, ep, sk, stream, pdl);
  else
    detail::launch_gemm(plan, a.tiles, act, a.K, ep, sk, stream, pdl);
}

}  // namespace

std::size_t binarymos_cuda_workspace_bytes(std::int64_t max_tokens, std::int64_t N, std::int64_t K, std::int64_t E) {
  if (max_tokens < 1)
    throw std::invalid_argument("binarymos_cuda_workspace_bytes: max_tokens must be >= 1, got " +
                                std::to_string(max_tokens));
  return tiles::workspace_bytes_for(max_tokens, N, K, E, current_device().sms);
}

void binarymos_cuda_workspace_init(void* workspace, std::size_t bytes, void* stream) {
  if (workspace == nullptr || bytes < tiles::kMaxCounters * sizeof(std::uint32_t))
    throw std::invalid_argument("binarymos_cuda_workspace_init: need a device buffer of at least " +
                                std::to_string(tiles::kMaxCounters * sizeof(std::uint32_t)) + " bytes, got " +
                                std::to_string(bytes) + (workspace == nullptr ? " (nullptr)" : ""));
  detail::check_cuda(cudaMemsetAsync(workspace, 0, bytes, static_cast<cudaStream_t>(stream)),
                     "cudaMemsetAsync(workspace)");
}

void binarymos_forward_cuda(const BinaryMoSCudaArgs& a) {
  check_args(a);
  const DeviceInfo dev = current_device();
  const tiles::LaunchPlan plan = tiles::plan_launch(a.M, a.N, a.K, a.E, dev.sms);
  const tiles::WorkspaceLayout ws = tiles::workspace_layout(plan, a.M, a.N, a.K, a.E);
  require(a.workspace_bytes >= ws.total, a,
          "workspace of " + std::to_string(a.workspace_bytes) + " bytes is too small, this call needs " +
              std::to_string(ws.total) + " (size it with binarymos_cuda_workspace_bytes(max_tokens, N, K, E))");
  // Programmatic dependent launch exists from sm_90; the caller and the environment may turn it off.
  const bool pdl = pdl_allowed_by_environment() && a.allow_pdl && dev.major >= 9;
  if (a.dtype == CudaDType::kF16)
    forward<__half>(a, plan, ws, pdl);
  else
    forward<__nv_bfloat16>(a, plan, ws, pdl);
}

const char* binarymos_cuda_kernel_name(std::int64_t M) { return tiles::kernel_kind_name(tiles::kernel_kind(M)); }

}  // namespace bmos::kernels
