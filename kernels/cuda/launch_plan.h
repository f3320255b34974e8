// Host-side choice of kernel, grid and split-K for one call, and the workspace carve-up that goes with it.
// Plain C++ (no CUDA types) so that test_tile_layout.cpp checks it on a CPU: every chunk covered by exactly one
// split, workspace regions disjoint and aligned.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/tile_layout.h"

namespace bmos::kernels::tiles {

// Decode GEMV (M <= kGemvMaxTokens): a block of kGemvWarps warps owns kGemvRowTiles row tiles and one split of the
// chunks; its warps take the split's chunks in turn and add their accumulators in shared memory at the end.
constexpr int kGemvMaxTokens = 32;  // up to 4 n8 token tiles per mma
constexpr int kGemvRowTiles = 4;
constexpr int kGemvWarps = 4;
// Prefill GEMM: a CTA owns kGemmRowTiles row tiles (128 rows) x BM tokens, 8 warps, kGemmStages-deep cp.async ring of
// 64-column stages. Two shapes: BM = 64 (4 x 2 warps) and BM = 128 (2 x 4 warps); each warp computes 32 tokens.
constexpr int kGemmRowTiles = 8;
constexpr int kGemmWarps = 8;
constexpr int kGemmWarpTokens = 32;
constexpr int kGemmStages = 4;
constexpr int kGemmBlocksPerSm = 2;  // 256 threads x <= 128 registers, <= 68 KB shared memory
// Prologue kernels: router partial logits over kRouterColumns columns per block; activation scaling writes
// kProloguePositions positions per block.
constexpr int kPrologueThreads = 256;
constexpr int kRouterColumns = 2048;
constexpr int kProloguePositions = kPrologueThreads * 8;
constexpr int kMaxExperts = 16;
// Split-K counters live at the start of the workspace, in a region of fixed size, so that workspaces shared by layers
// of different shapes never overlap one layer's counters with another's partial sums. A call uses split_counters(plan)
// of them and zeroes those in its prologue (epilogue.cuh says why that is in time).
constexpr std::int64_t kMaxCounters = 16384;
constexpr std::size_t kWorkspaceAlign = 256;

// Blocks of the GEMV resident per SM, by n8 token tiles (ptxas, CUDA 13: at most 94, 119 and 166 registers x 128
// threads; rounded down so that a grid sized by it never spills into a second wave).
inline std::int64_t gemv_blocks_per_sm(int token_tiles) { return token_tiles >= 4 ? 2 : 4; }

enum class KernelKind : int { kGemv = 0, kGemm64 = 1, kGemm128 = 2 };

struct LaunchPlan {
  KernelKind kind = KernelKind::kGemv;
  int token_tiles = 1;            // GEMV: n8 token tiles (1, 2 or 4)
  std::int64_t row_groups = 0;    // grid.x
  std::int64_t token_groups = 1;  // grid.y (GEMM token tiles)
  std::int64_t splits = 1;        // grid.z: split-K parts over the chunks
  ActLayout act_layout = ActLayout::kLaneMajor;
  std::int64_t router_blocks = 0;    // prologue 1 blocks per token (0: no router, E <= 1)
  std::int64_t prologue_blocks = 0;  // prologue 2 blocks per token
};

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Split-K counters a call uses: one per output tile of the grid, number row_group * token_groups + token_group; none
// without split-K.
inline std::int64_t split_counters(const LaunchPlan& p) { return p.splits > 1 ? p.row_groups * p.token_groups : 0; }

inline int gemm_tokens(KernelKind kind) { return kind == KernelKind::kGemm64 ? 64 : 128; }

// The kernel that serves M tokens.
inline KernelKind kernel_kind(std::int64_t M) {
  if (M <= kGemvMaxTokens) return KernelKind::kGemv;
  return M <= 64 ? KernelKind::kGemm64 : KernelKind::kGemm128;
}

inline const char* kernel_kind_name(KernelKind kind) {
  switch (kind) {
    case KernelKind::kGemv: return "gemv";
    case KernelKind::kGemm64: return "gemm64";
    case KernelKind::kGemm128: return "gemm128";
  }
  return "?";
}

// num_sms: the device's multiprocessor count (sizes split-K so that small grids still fill the GPU).
inline LaunchPlan plan_launch(std::int64_t M, std::int64_t N, std::int64_t K, std::int64_t E, int num_sms) {
  if (M < 1 || N < 1 || K < 1 || E < 0 || E > kMaxExperts || num_sms < 1)
    throw std::invalid_argument("plan_launch: need M, N, K >= 1, 0 <= E <= " + std::to_string(kMaxExperts) +
                                " and num_sms >= 1 (got M=" + std::to_string(M) + " N=" + std::to_string(N) +
                                " K=" + std::to_string(K) + " E=" + std::to_string(E) + ")");
  LaunchPlan p;
  const std::int64_t NR = row_tiles(N), NC = chunks(K);
  p.kind = kernel_kind(M);
  if (p.kind == KernelKind::kGemv) {
    // 1, 2 or 4 n8 tiles (17..24 tokens use 4: one kernel instance fewer, and 3 tiles spilled registers).
    p.token_tiles = M <= 8 ? 1 : M <= 16 ? 2 : 4;
    p.row_groups = ceil_div(NR, kGemvRowTiles);
    p.act_layout = ActLayout::kLaneMajor;
    // As many splits as fit in one wave of resident blocks (a second, partial wave would double the latency of a
    // memory-bound call), while every warp of a block keeps at least one chunk.
    const std::int64_t want = gemv_blocks_per_sm(p.token_tiles) * num_sms / p.row_groups;
    p.splits = std::clamp<std::int64_t>(want, 1, std::max<std::int64_t>(1, NC / kGemvWarps));
  } else {
    p.row_groups = ceil_div(NR, kGemmRowTiles);
    p.token_groups = ceil_div(M, gemm_tokens(p.kind));
    p.act_layout = ActLayout::kPlain;
    // Split K only when the output tiles alone leave SMs idle (kGemmBlocksPerSm CTAs fit on an SM); the partial
    // sums then cost splits x M x N x 4 bytes of mostly-L2 traffic.
    const std::int64_t tiles = p.row_groups * p.token_groups, slots = kGemmBlocksPerSm * num_sms;
    p.splits = tiles >= slots ? 1 : std::clamp<std::int64_t>(slots / tiles, 1, std::min<std::int64_t>(8, NC));
  }
  if (NC * p.splits >= (1LL << 31) || NR >= (1LL << 31) / kTileRows)
    throw std::invalid_argument("plan_launch: N=" + std::to_string(N) + " K=" + std::to_string(K) +
                                " is too large for the kernels' 32-bit tile arithmetic");
  if (split_counters(p) > kMaxCounters)
    throw std::invalid_argument("plan_launch: " + std::to_string(p.row_groups * p.token_groups) +
                                " output tiles exceed the split-K counter region (" + std::to_string(kMaxCounters) +
                                "); N=" + std::to_string(N) + " is too large for one call");
  p.router_blocks = E > 1 ? ceil_div(K, kRouterColumns) : 0;
  p.prologue_blocks = ceil_div(padded_k(K), kProloguePositions);
  return p;
}

// Byte offsets of the workspace regions for one call. Unused regions have size 0.
struct WorkspaceLayout {
  std::size_t counters = 0, counters_bytes = 0;  // uint32 [kMaxCounters], each call zeroes those it uses
  std::size_t act = 0, act_bytes = 0;            // 16-bit [M][padded_k(K)], scaled activations
  std::size_t logits = 0, logits_bytes = 0;      // float [M][router_blocks][E], partial router logits
  std::size_t gates = 0, gates_bytes = 0;        // float [M][E], softmax of the router logits
  std::size_t partials = 0, partials_bytes = 0;  // float [splits][M][padded_rows(N)], split-K partial sums
  std::size_t total = 0;
};

inline std::size_t align_up(std::size_t x) { return (x + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }

inline WorkspaceLayout workspace_layout(const LaunchPlan& p, std::int64_t M, std::int64_t N, std::int64_t K,
                                        std::int64_t E) {
  WorkspaceLayout w;
  std::size_t at = 0;
  auto take = [&at](std::size_t bytes, std::size_t& offset, std::size_t& size) {
    offset = at;
    size = bytes;
    at = align_up(at + bytes);
  };
  take(kMaxCounters * sizeof(std::uint32_t), w.counters, w.counters_bytes);
  take(static_cast<std::size_t>(M * padded_k(K)) * 2, w.act, w.act_bytes);
  take(static_cast<std::size_t>(M * p.router_blocks * E) * sizeof(float), w.logits, w.logits_bytes);
  take(static_cast<std::size_t>(M * E) * sizeof(float), w.gates, w.gates_bytes);
  take(p.splits > 1 ? static_cast<std::size_t>(p.splits * M * padded_rows(N)) * sizeof(float) : 0, w.partials,
       w.partials_bytes);
  w.total = at;
  return w;
}

// Workspace bytes enough for every M in [1, max_tokens] (the plan, and so the layout, changes with M).
inline std::size_t workspace_bytes_for(std::int64_t max_tokens, std::int64_t N, std::int64_t K, std::int64_t E,
                                       int num_sms) {
  std::size_t most = 0;
  for (std::int64_t m = 1; m <= max_tokens; ++m)
    most = std::max(most, workspace_layout(plan_launch(m, N, K, E, num_sms), m, N, K, E).total);
  return most;
}

}  // namespace bmos::kernels::tiles
