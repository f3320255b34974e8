// Prefill GEMM (more than 32 tokens): y (M, N) = act (M, K) @ sign(W)^T on tensor cores.
//
// Grid (row_groups, token_groups, splits); a CTA of 8 warps owns 128 output rows (8 row tiles) x BM tokens and one
// split of the chunks, and walks it in 64-column stages through a kGemmStages-deep cp.async ring in shared memory:
// per stage 8 x 32 weight words (4-byte copies: a lane's words are 16 bytes apart in the tile order) and BM x 64
// activations (16-byte copies into XOR-swizzled 128-byte rows, zero-filled past the last token). Warps are arranged
// WM (rows) x WN (tokens); each computes 128 / WM rows x 32 tokens: per 16-column step it turns its words into A
// fragments in registers (one shift + one LOP3 per +-1 pair), loads B with two ldmatrix.x4 and issues
// (8 / WM) x 4 mma.m16n8k16. Split-K as in the GEMV (epilogue.cuh).
#include <mutex>
#include <vector>

#include "kernels/cuda/launchers.cuh"

namespace bmos::kernels::device {

constexpr int kGemmThreads = tiles::kGemmWarps * 32;
constexpr int kWeightStageBytes = tiles::kGemmRowTiles * tiles::kLanes * 4;

template <int WM>
struct GemmShape {
  static constexpr int kWN = tiles::kGemmWarps / WM;
  static constexpr int kBM = kWN * tiles::kGemmWarpTokens;  // tokens per CTA
  static constexpr int kRTW = tiles::kGemmRowTiles / WM;    // row tiles per warp
  static constexpr int kNT = tiles::kGemmWarpTokens / 8;    // n8 token tiles per warp (4)
  static constexpr int kActStageBytes = kBM * tiles::kActRowBytes;
  static constexpr int kStageBytes = kActStageBytes + kWeightStageBytes;
  static constexpr int kSmemBytes = tiles::kGemmStages * kStageBytes;
  static_assert((kBM * tiles::kPiecesPerRow) % kGemmThreads == 0, "activation pieces split evenly over threads");
  static_assert(tiles::kGemmRowTiles * tiles::kLanes == kGemmThreads, "one weight word per thread per stage");
};

template <typename T, int WM>
__global__ void __launch_bounds__(kGemmThreads)
    binary_gemm_kernel(const std::uint32_t* __restrict__ tiled, const T* __restrict__ act, std::int64_t NR,
                       std::int64_t NC, Epilogue<T> ep, SplitK sk) {
  using S = GemmShape<WM>;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int wm = warp % WM, wn = warp / WM;
  const std::int64_t rg = blockIdx.x, tg = blockIdx.y, split = blockIdx.z;
  const std::int64_t R0 = rg * tiles::kGemmRowTiles, T0 = tg * S::kBM;
  const std::int64_t KP = NC * tiles::kChunkK;
  const int nc = static_cast<int>(NC), splits = static_cast<int>(sk.splits), sp = static_cast<int>(split);
  const std::int64_t kt_begin = tiles::split_begin(nc, splits, sp) * tiles::kWordsPerLane;
  const std::int64_t n_stages = tiles::split_begin(nc, splits, sp + 1) * tiles::kWordsPerLane - kt_begin;
  const std::uint32_t smem_base = smem_address(smem);

  // Weight words of stage kt: thread (rt, lane) copies word kt % 4 of its lane in row tile R0 + rt.
  const int w_rt = tid / tiles::kLanes, w_lane = tid % tiles::kLanes;
  const std::int64_t w_R = R0 + w_rt;
  auto load_stage = [&](std::int64_t kt, int slot) {
    const std::uint32_t stage = smem_base + slot * S::kStageBytes;
    const std::int64_t c = kt / tiles::kWordsPerLane;
    const std::uint32_t* src =
        w_R < NR ? tiled + ((w_R * NC + c) * tiles::kLanes + w_lane) * tiles::kWordsPerLane + kt % tiles::kWordsPerLane
                 : tiled;
    if (w_R < NR) cp_async_4(stage + S::kActStageBytes + tid * 4, src);
#pragma unroll
    for (int i = 0; i < S::kBM * tiles::kPiecesPerRow / kGemmThreads; ++i) {
      const int piece_id = tid + i * kGemmThreads, row = piece_id / tiles::kPiecesPerRow,
                piece = piece_id % tiles::kPiecesPerRow;
      const std::int64_t token = T0 + row;
      const bool valid = token < ep.M;
      const T* p = act + (valid ? token : 0) * KP + kt * tiles::kSubTileK + piece * 8;
      cp_async_16(stage + tiles::act_smem_offset(row, piece), p, valid ? 16 : 0);
    }
  };
  // Row tiles past the matrix read zero words (never stored, but keep them finite).
  if (w_R >= NR) {
    for (int s = 0; s < tiles::kGemmStages; ++s)
      *reinterpret_cast<std::uint32_t*>(smem + s * S::kStageBytes + S::kActStageBytes + tid * 4) = 0u;
  }

  float acc[S::kRTW][S::kNT][4];
#pragma unroll
  for (int rt = 0; rt < S::kRTW; ++rt)
#pragma unroll
    for (int nt = 0; nt < S::kNT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[rt][nt][i] = 0.0f;

  wait_for_producer();  // act comes from the prologue kernel
  allow_dependent_launch();

#pragma unroll
  for (int s = 0; s < tiles::kGemmStages - 1; ++s) {
    if (s < n_stages) load_stage(kt_begin + s, s);
    cp_async_commit();
  }
  for (std::int64_t i = 0; i < n_stages; ++i) {
    cp_async_wait<tiles::kGemmStages - 2>();
    __syncthreads();  // stage i is in shared memory for every thread; slot (i - 1) % stages is free again
    const std::int64_t next = i + tiles::kGemmStages - 1;
    if (next < n_stages) load_stage(kt_begin + next, static_cast<int>(next % tiles::kGemmStages));
    cp_async_commit();

    const int slot = static_cast<int>(i % tiles::kGemmStages);
    const std::uint32_t stage = smem_base + slot * S::kStageBytes;
    const std::uint32_t* words =
        reinterpret_cast<const std::uint32_t*>(smem + slot * S::kStageBytes + S::kActStageBytes);
    std::uint32_t word[S::kRTW];
#pragma unroll
    for (int rt = 0; rt < S::kRTW; ++rt) word[rt] = words[(wm * S::kRTW + rt) * tiles::kLanes + lane];
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      std::uint32_t b[S::kNT][2];
#pragma unroll
      for (int h = 0; h < S::kNT / 2; ++h)
        ldmatrix_x4(stage + tiles::ldmatrix_offset(lane, jj, wn * tiles::kGemmWarpTokens + 16 * h), b[2 * h][0],
                    b[2 * h][1], b[2 * h + 1][0], b[2 * h + 1][1]);
#pragma unroll
      for (int rt = 0; rt < S::kRTW; ++rt) {
        std::uint32_t a[4];
        unpack_a<T>(word[rt], jj, a);
#pragma unroll
        for (int nt = 0; nt < S::kNT; ++nt) mma_16816<T>(acc[rt][nt], a, b[nt][0], b[nt][1]);
      }
    }
  }
  cp_async_wait<0>();

  // acc[rt][nt][i]: element i of lane (g, t) in the 16 x 8 tile of row tile R0 + wm * kRTW + rt, tokens from
  // T0 + wn * 32 + 8 nt.
  auto for_each_output = [&](auto&& f) {
#pragma unroll
    for (int rt = 0; rt < S::kRTW; ++rt)
#pragma unroll
      for (int nt = 0; nt < S::kNT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const std::int64_t n = tiles::acc_row((R0 + wm * S::kRTW + rt) * tiles::kTileRows, g, i);
          const std::int64_t token = tiles::acc_token(T0 + wn * tiles::kGemmWarpTokens + nt * 8, t, i);
          f(n, token, acc[rt][nt][i]);
        }
  };
  if (sk.splits == 1) {
    for_each_output([&](std::int64_t n, std::int64_t token, float v) {
      if (token < ep.M && n < ep.N) store_output(ep, token, n, v);
    });
    return;
  }
  for_each_output([&](std::int64_t n, std::int64_t token, float v) {
    if (token < ep.M && n < sk.padded_rows) *partial_at(sk, split, ep.M, token, n) = v;
  });
  if (!arrive_last(sk, rg * gridDim.y + tg)) return;
  for_each_output([&](std::int64_t n, std::int64_t token, float) {
    if (token < ep.M && n < ep.N) store_output(ep, token, n, sum_partials(sk, ep.M, token, n));
  });
}

}  // namespace bmos::kernels::device

namespace bmos::kernels::detail {

template <typename T, int WM>
void launch_gemm_wm(const tiles::LaunchPlan& plan, const std::uint32_t* tiled, const T* act, std::int64_t K,
                    const device::Epilogue<T>& ep, const device::SplitK& sk, cudaStream_t stream, bool pdl) {
  using S = device::GemmShape<WM>;
  auto kernel = device::binary_gemm_kernel<T, WM>;
  {
    // Opt in to more than 48 KB of dynamic shared memory once per device (not on every call: a call may be inside a
    // CUDA graph capture).
    static std::mutex mu;
    static std::vector<char> done;
    int dev = 0;
    check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
    std::lock_guard<std::mutex> lock(mu);
    if (static_cast<int>(done.size()) <= dev) done.resize(dev + 1, 0);
    if (!done[dev]) {
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes),
                 "cudaFuncSetAttribute(binary_gemm_kernel, MaxDynamicSharedMemorySize)");
      done[dev] = 1;
    }
  }
  launch("binary_gemm_kernel", kernel,
         dim3(static_cast<unsigned>(plan.row_groups), static_cast<unsigned>(plan.token_groups),
              static_cast<unsigned>(plan.splits)),
         dim3(device::kGemmThreads), S::kSmemBytes, stream, pdl, tiled, act, tiles::row_tiles(ep.N), tiles::chunks(K),
         ep, sk);
}

template <typename T>
void launch_gemm(const tiles::LaunchPlan& plan, const std::uint32_t* tiled, const T* act, std::int64_t K,
                 const device::Epilogue<T>& ep, const device::SplitK& sk, cudaStream_t stream, bool pdl) {
  static_assert(device::GemmShape<4>::kBM == 64 && device::GemmShape<2>::kBM == 128, "plan's token tiles");
  switch (plan.kind) {
    case tiles::KernelKind::kGemm64: return launch_gemm_wm<T, 4>(plan, tiled, act, K, ep, sk, stream, pdl);
    case tiles::KernelKind::kGemm128: return launch_gemm_wm<T, 2>(plan, tiled, act, K, ep, sk, stream, pdl);
    default: throw std::invalid_argument("launch_gemm: the plan is not a GEMM plan");
  }
}

template void launch_gemm<__half>(const tiles::LaunchPlan&, const std::uint32_t*, const __half*, std::int64_t,
                                  const device::Epilogue<__half>&, const device::SplitK&, cudaStream_t, bool);
template void launch_gemm<__nv_bfloat16>(const tiles::LaunchPlan&, const std::uint32_t*, const __nv_bfloat16*,
                                         std::int64_t, const device::Epilogue<__nv_bfloat16>&, const device::SplitK&,
                                         cudaStream_t, bool);

}  // namespace bmos::kernels::detail
