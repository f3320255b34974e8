// Decode GEMV (1-32 tokens): y (M, N) = act (M, K) @ sign(W)^T on tensor cores, reading each weight bit once.
//
// Grid (row_groups, 1, splits); a block of kGemvWarps warps owns kGemvRowTiles row tiles (64 output rows) and one
// split of the 256-column chunks. Warp w takes chunks begin + w, begin + w + kGemvWarps, ...; per chunk it issues one
// 128-bit streaming load per row tile (the lane's 4 words = 16 mma steps), loads its B operands (token 8 nt + g of
// the lane-major activations: two 128-bit loads per 64 columns per n8 token tile nt) and runs
// 16 x kGemvRowTiles x NT mma.m16n8k16, the sign bits turned into +-1 in registers with one shift and one LOP3 per
// pair. The warps' accumulators are added in shared memory; with split-K the last block of a row group adds the
// splits' partial sums (epilogue.cuh). Weights are prefetched before waiting for the prologue kernel (PDL on sm_90).
#include "kernels/cuda/launchers.cuh"

namespace bmos::kernels::device {

constexpr int kRT = tiles::kGemvRowTiles;
constexpr int kWarps = tiles::kGemvWarps;

template <typename T, int NT>
__global__ void __launch_bounds__(kWarps * 32)
    binary_gemv_kernel(const uint4* __restrict__ tiled, const T* __restrict__ act, std::int64_t NR, std::int64_t NC,
                       Epilogue<T> ep, SplitK sk) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const std::int64_t rg = blockIdx.x, split = blockIdx.z, R0 = rg * kRT;
  const int nc = static_cast<int>(NC), splits = static_cast<int>(sk.splits), sp = static_cast<int>(split);
  const std::int64_t c_begin = tiles::split_begin(nc, splits, sp), c_end = tiles::split_begin(nc, splits, sp + 1);
  const std::int64_t KP = NC * tiles::kChunkK;

  auto load_weights = [&](std::int64_t c, uint4(&w)[kRT]) {
#pragma unroll
    for (int rt = 0; rt < kRT; ++rt) {
      const std::int64_t R = R0 + rt;
      w[rt] = R < NR ? load_stream_128(tiled + (R * NC + c) * tiles::kLanes + lane) : make_uint4(0, 0, 0, 0);
    }
  };

  float acc[kRT][NT][4];
#pragma unroll
  for (int rt = 0; rt < kRT; ++rt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[rt][nt][i] = 0.0f;

  std::int64_t c = c_begin + warp;
  uint4 w[kRT];
  if (c < c_end) load_weights(c, w);  // weights do not depend on the prologue: start streaming them now
  wait_for_producer();
  allow_dependent_launch();

  for (; c < c_end; c += kWarps) {
    uint4 w_next[kRT];
    if (c + kWarps < c_end) load_weights(c + kWarps, w_next);
#pragma unroll
    for (int q = 0; q < tiles::kWordsPerLane; ++q) {
      // B operands of the 4 steps of sub-tile q: 8 words per token tile, from 32 contiguous bytes.
      uint4 b[NT][2];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const std::int64_t token = nt * 8 + g;
        if (token < ep.M) {
          const T* p = act + token * KP + c * tiles::kChunkK + q * tiles::kSubTileK + 16 * t;
          b[nt][0] = load_128(p);
          b[nt][1] = load_128(p + 8);
        } else {
          b[nt][0] = b[nt][1] = make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
#pragma unroll
        for (int rt = 0; rt < kRT; ++rt) {
          const std::uint32_t word = q == 0 ? w[rt].x : q == 1 ? w[rt].y : q == 2 ? w[rt].z : w[rt].w;
          std::uint32_t a[4];
          unpack_a<T>(word, jj, a);
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            const uint4& bb = b[nt][jj >> 1];
            const std::uint32_t b0 = (jj & 1) ? bb.z : bb.x, b1 = (jj & 1) ? bb.w : bb.y;
            mma_16816<T>(acc[rt][nt], a, b0, b1);
          }
        }
      }
    }
#pragma unroll
    for (int rt = 0; rt < kRT; ++rt) w[rt] = w_next[rt];
  }

  // Add the warps' accumulators: red[warp][token][row] with the block's 64 rows contiguous for coalesced stores.
  constexpr int kRows = kRT * tiles::kTileRows, kTokens = NT * 8;
  __shared__ float red[kWarps][kTokens][kRows];
#pragma unroll
  for (int rt = 0; rt < kRT; ++rt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        red[warp][tiles::acc_token(nt * 8, t, i)][tiles::acc_row(rt * tiles::kTileRows, g, i)] = acc[rt][nt][i];
  __syncthreads();

  const std::int64_t n0 = R0 * tiles::kTileRows;
  if (sk.splits == 1) {
    for (int e = threadIdx.x; e < kTokens * kRows; e += kWarps * 32) {
      const int token = e / kRows, row = e % kRows;
      if (token >= ep.M || n0 + row >= ep.N) continue;
      float v = 0.0f;
#pragma unroll
      for (int wi = 0; wi < kWarps; ++wi) v += red[wi][token][row];
      store_output(ep, token, n0 + row, v);
    }
    return;
  }
  for (int e = threadIdx.x; e < kTokens * kRows; e += kWarps * 32) {
    const int token = e / kRows, row = e % kRows;
    if (token >= ep.M || n0 + row >= sk.padded_rows) continue;
    float v = 0.0f;
#pragma unroll
    for (int wi = 0; wi < kWarps; ++wi) v += red[wi][token][row];
    *partial_at(sk, split, ep.M, token, n0 + row) = v;
  }
  if (!arrive_last(sk, rg)) return;
  for (int e = threadIdx.x; e < kTokens * kRows; e += kWarps * 32) {
    const int token = e / kRows, row = e % kRows;
    if (token >= ep.M || n0 + row >= ep.N) continue;
    store_output(ep, token, n0 + row, sum_partials(sk, ep.M, token, n0 + row));
  }
}

}  // namespace bmos::kernels::device

namespace bmos::kernels::detail {

template <typename T, int NT>
void launch_gemv_nt(const tiles::LaunchPlan& plan, const std::uint32_t* tiled, const T* act, std::int64_t K,
                    const device::Epilogue<T>& ep, const device::SplitK& sk, cudaStream_t stream, bool pdl) {
  launch("binary_gemv_kernel", device::binary_gemv_kernel<T, NT>,
         dim3(static_cast<unsigned>(plan.row_groups), 1, static_cast<unsigned>(plan.splits)), dim3(device::kWarps * 32),
         0, stream, pdl, reinterpret_cast<const uint4*>(tiled), act, tiles::row_tiles(ep.N), tiles::chunks(K), ep, sk);
}

template <typename T>
void launch_gemv(const tiles::LaunchPlan& plan, const std::uint32_t* tiled, const T* act, std::int64_t K,
                 const device::Epilogue<T>& ep, const device::SplitK& sk, cudaStream_t stream, bool pdl) {
  switch (plan.token_tiles) {
    case 1: return launch_gemv_nt<T, 1>(plan, tiled, act, K, ep, sk, stream, pdl);
    case 2: return launch_gemv_nt<T, 2>(plan, tiled, act, K, ep, sk, stream, pdl);
    case 4: return launch_gemv_nt<T, 4>(plan, tiled, act, K, ep, sk, stream, pdl);
    default:
      throw std::invalid_argument("launch_gemv: token_tiles must be 1, 2 or 4, got " +
                                  std::to_string(plan.token_tiles));
  }
}

template void launch_gemv<__half>(const tiles::LaunchPlan&, const std::uint32_t*, const __half*, std::int64_t,
                                  const device::Epilogue<__half>&, const device::SplitK&, cudaStream_t, bool);
template void launch_gemv<__nv_bfloat16>(const tiles::LaunchPlan&, const std::uint32_t*, const __nv_bfloat16*,
                                         std::int64_t, const device::Epilogue<__nv_bfloat16>&, const device::SplitK&,
                                         cudaStream_t, bool);

}  // namespace bmos::kernels::detail
