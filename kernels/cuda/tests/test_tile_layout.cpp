// Host unit test of the CUDA kernels' index arithmetic (tile_layout.h, launch_plan.h), compiled by the plain C++
// compiler so that it runs on machines without a GPU or nvcc. Besides bijection checks it emulates, lane by lane, what
// the kernels feed the tensor cores (A fragments unpacked from the tiled words, B fragments from the lane-major
// activations as the GEMV reads them, or through the swizzled shared-memory stage + ldmatrix as the GEMM reads them),
// applies mma.m16n8k16's documented fragment layout, and holds the result to binary_matmul_ref: first one warp's
// 16 x 8 tiles, then whole blocks of both kernels with their output stages (the accumulator fragments placed with the
// kernels' own acc_row / acc_token, the GEMV's shared-memory reduction, split-K with its counters).
// Prints every case (the emulations with their largest error), then "N passed, N failed"; exit status 1 on any
// failure.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "kernels/cpu/reference.h"
#include "kernels/cuda/binarymos_cuda.h"
#include "kernels/cuda/launch_plan.h"
#include "kernels/cuda/tile_layout.h"

namespace {

using namespace bmos::kernels;
using namespace bmos::kernels::tiles;

int g_passed = 0, g_failed = 0;

// One named check; prints the first failure detail of the case, and `note` (e.g. the largest error) when it passes.
struct Case {
  std::string name, note;
  int failures = 0;
  explicit Case(std::string n) : name(std::move(n)) {}
  void expect(bool ok, const std::string& detail) {
    if (!ok && failures++ == 0) std::printf("  FAIL %s: %s\n", name.c_str(), detail.c_str());
  }
  ~Case() {
    if (failures == 0) {
      ++g_passed;
      std::printf("  ok   %s%s%s\n", name.c_str(), note.empty() ? "" : ": ", note.c_str());
    } else {
      ++g_failed;
      std::printf("  FAIL %s (%d failed checks)\n", name.c_str(), failures);
    }
  }
};

std::string nk(std::int64_t N, std::int64_t K) { return "N=" + std::to_string(N) + " K=" + std::to_string(K); }

const std::vector<std::pair<std::int64_t, std::int64_t>> kShapes = {
    {1, 1}, {16, 256}, {17, 33}, {31, 257}, {48, 300}, {5, 1000}, {100, 513}, {64, 64}, {33, 777}};

std::vector<bmos::packed::Word> random_bits(std::int64_t N, std::int64_t K, std::mt19937& rng) {
  std::vector<float> w(N * K);
  std::normal_distribution<float> nd;
  for (auto& v : w) v = nd(rng);
  std::vector<bmos::packed::Word> bits(bmos::packed::packed_words(N, K));
  bmos::packed::pack(w.data(), N, K, bits.data());
  return bits;
}

// Value of one 16-bit lane of an unpacked A register: must be exactly +1 or -1 of the type.
double decode_pm1(std::uint32_t half_bits, bool bf16, bool& ok) {
  const std::uint32_t plus = bf16 ? 0x3F80u : 0x3C00u, minus = bf16 ? 0xBF80u : 0xBC00u;
  if (half_bits == plus) return 1.0;
  if (half_bits == minus) return -1.0;
  ok = false;
  return 0.0;
}

// ------------------------------------------------------------------------------------------------------ bijections
void test_tile_coord_bijection() {
  for (auto [N, K] : kShapes) {
    Case c("tile_coord/tile_row_col are inverse bijections, " + nk(N, K));
    const std::int64_t NP = padded_rows(N), KP = padded_k(K);
    std::vector<char> seen(NP * KP, 0);
    for (std::int64_t i = 0; i < tiled_words(N, K); ++i) {
      for (int b = 0; b < 32; ++b) {
        const RowCol rc = tile_row_col(i, b, K);
        c.expect(rc.n >= 0 && rc.n < NP && rc.k >= 0 && rc.k < KP,
                 "word " + std::to_string(i) + " bit " + std::to_string(b) + " maps outside padding");
        if (rc.n < 0 || rc.n >= NP || rc.k < 0 || rc.k >= KP) continue;
        c.expect(!seen[rc.n * KP + rc.k]++,
                 "(n, k) hit twice: n=" + std::to_string(rc.n) + " k=" + std::to_string(rc.k));
        const TileCoord tc = tile_coord(rc.n, rc.k);
        c.expect(tile_word_index(tc, K) == i && tc.bit == b,
                 "tile_coord(tile_row_col(" + std::to_string(i) + ", " + std::to_string(b) + ")) differs");
      }
    }
    for (std::int64_t j = 0; j < NP * KP; ++j) c.expect(seen[j] == 1, "(n, k) never hit: " + std::to_string(j));
  }
}

void test_repack_roundtrip() {
  std::mt19937 rng(1);
  for (auto [N, K] : kShapes) {
    Case c("repack_tiles_host then unrepack equals canonical, padding zero, " + nk(N, K));
    const auto bits = random_bits(N, K, rng);
    std::vector<std::uint32_t> tiled(tiled_words(N, K));
    repack_tiles_host(bits.data(), N, K, tiled.data());
    for (std::int64_t n = 0; n < padded_rows(N); ++n)
      for (std::int64_t k = 0; k < padded_k(K); ++k) {
        const TileCoord tc = tile_coord(n, k);
        const std::uint32_t bit = (tiled[tile_word_index(tc, K)] >> tc.bit) & 1u;
        if (n < N && k < K) {
          const std::uint32_t want = (bits[bmos::packed::word_index(n, k, K)] >> bmos::packed::bit_index(k)) & 1u;
          c.expect(bit == want, "bit of (" + std::to_string(n) + ", " + std::to_string(k) + ") differs");
        } else {
          c.expect(bit == 0, "padding bit (" + std::to_string(n) + ", " + std::to_string(k) + ") is set");
        }
      }
  }
}

void test_act_layout_bijection() {
  Case c("act_position/act_column are inverse bijections on 3 sub-tiles, both layouts");
  for (ActLayout layout : {ActLayout::kPlain, ActLayout::kLaneMajor}) {
    std::vector<char> seen(3 * kSubTileK, 0);
    for (std::int64_t k = 0; k < 3 * kSubTileK; ++k) {
      const std::int64_t p = act_position(k, layout);
      c.expect(p >= 0 && p < 3 * kSubTileK && p / kSubTileK == k / kSubTileK, "position leaves its sub-tile");
      if (p < 0 || p >= 3 * kSubTileK) continue;
      c.expect(!seen[p]++, "position hit twice");
      c.expect(act_column(p, layout) == k, "act_column(act_position(k)) != k for k=" + std::to_string(k));
    }
  }
}

void test_unpack_pair_values() {
  Case c("unpack_pair gives +1 exactly where the tile bit is set (f16 and bf16)");
  std::mt19937 rng(2);
  for (int trial = 0; trial < 200; ++trial) {
    const std::uint32_t word = rng();
    for (int jj = 0; jj < 4; ++jj)
      for (int r = 0; r < 4; ++r)
        for (bool bf16 : {false, true}) {
          const std::uint32_t v = unpack_pair(word, jj, r, bf16 ? kMinusOnePairBF16 : kMinusOnePairF16);
          const int s = 4 * jj + r;
          bool ok = true;
          const double lo = decode_pm1(v & 0xFFFFu, bf16, ok), hi = decode_pm1(v >> 16, bf16, ok);
          c.expect(ok, "not +-1");
          c.expect(lo == (((word >> (15 - s)) & 1u) ? 1.0 : -1.0) && hi == (((word >> (31 - s)) & 1u) ? 1.0 : -1.0),
                   "sign does not follow bits 15-s / 31-s");
        }
  }
}

std::string err_string(double e) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", e);
  return buf;
}

// ------------------------------------------------------------------------------------------ warp-level emulation
// mma.m16n8k16 fragment layout (PTX ISA): lane L = 4g + t.
//   A (16x16): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..); low half = lower column.
//   B (16x8):  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g).
struct Frags {
  std::uint32_t a[32][4];
  double b[32][2][2];  // B values per lane as doubles (activations are not rounded in the emulation)
};

// D (16 x 8) += A B from per-lane fragments, A decoded from +-1 bit patterns.
void emulate_mma(const Frags& f, bool bf16, double (&d)[16][8], bool& ok) {
  double A[16][16] = {}, B[16][8] = {};
  for (int L = 0; L < 32; ++L) {
    const int g = L / 4, t = L % 4;
    for (int r = 0; r < 4; ++r)
      for (int e = 0; e < 2; ++e) {
        const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1) + e;
        A[row][col] = decode_pm1(e ? f.a[L][r] >> 16 : f.a[L][r] & 0xFFFFu, bf16, ok);
      }
    for (int h = 0; h < 2; ++h)
      for (int e = 0; e < 2; ++e) B[2 * t + 8 * h + e][g] = f.b[L][h][e];
  }
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j)
      for (int k = 0; k < 16; ++k) d[i][j] += A[i][k] * B[k][j];
}

// The GEMV's view: words from the tiled matrix, B from the lane-major activation buffer (act_position), exactly the
// offsets binary_gemv.cu uses (c * 256 + q * 64 + 16 t, words 2 jj and 2 jj + 1 of those 16 values).
// The GEMM's view: the stage written through act_smem_offset and read back with ldmatrix_offset.
void test_emulated_matmul(bool gemm_view, bool bf16) {
  std::mt19937 rng(gemm_view ? 3 : 4);
  for (auto [N, K] : kShapes) {
    for (std::int64_t M : {1, 3, 8, 13}) {
      Case c(std::string(gemm_view ? "GEMM" : "GEMV") + " warp emulation (" + (bf16 ? "bf16" : "f16") +
             " patterns) equals binary_matmul_ref, M=" + std::to_string(M) + " " + nk(N, K));
      const auto bits = random_bits(N, K, rng);
      std::vector<std::uint32_t> tiled(tiled_words(N, K));
      repack_tiles_host(bits.data(), N, K, tiled.data());
      std::vector<float> x(M * K);
      std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
      for (auto& v : x) v = ud(rng);
      std::vector<float> want(M * N);
      binary_matmul_ref(bits.data(), N, K, x.data(), M, want.data());

      // Activation buffer [M8][KP] in the layout of the kernel (zero past K and past M).
      const std::int64_t KP = padded_k(K), M8 = (M + 7) / 8 * 8;
      const ActLayout layout = gemm_view ? ActLayout::kPlain : ActLayout::kLaneMajor;
      std::vector<double> act(M8 * KP, 0.0);
      for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t k = 0; k < K; ++k) act[m * KP + act_position(k, layout)] = x[m * K + k];

      std::vector<double> got(M8 * padded_rows(N), 0.0);
      bool ok = true;
      for (std::int64_t R = 0; R < row_tiles(N); ++R)
        for (std::int64_t ch = 0; ch < chunks(K); ++ch)
          for (int q = 0; q < kWordsPerLane; ++q)
            for (std::int64_t t8 = 0; t8 < M8 / 8; ++t8) {
              // GEMM: build the shared-memory stage of 16 tokens (one ldmatrix.x4 covers 2 token tiles).
              std::vector<double> stage;
              const std::int64_t token0 = t8 / 2 * 16;
              if (gemm_view) {
                stage.assign(16 * kActRowBytes / 2, 0.0);
                for (int row = 0; row < 16; ++row)
                  for (int piece = 0; piece < kPiecesPerRow; ++piece)
                    for (int e = 0; e < 8; ++e) {
                      const std::int64_t tok = token0 + row;
                      stage[act_smem_offset(row, piece) / 2 + e] =
                          tok < M8 ? act[tok * KP + ch * kChunkK + q * kSubTileK + piece * 8 + e] : 0.0;
                    }
              }
              for (int jj = 0; jj < 4; ++jj) {
                Frags f{};
                for (int L = 0; L < 32; ++L) {
                  const int g = L / 4, t = L % 4;
                  const std::uint32_t word = tiled[((R * chunks(K) + ch) * kLanes + L) * kWordsPerLane + q];
                  for (int r = 0; r < 4; ++r)
                    f.a[L][r] = unpack_pair(word, jj, r, bf16 ? kMinusOnePairBF16 : kMinusOnePairF16);
                  if (!gemm_view) {
                    const std::int64_t tok = t8 * 8 + g;
                    const std::int64_t base = tok * KP + ch * kChunkK + q * kSubTileK + 16 * t + 4 * jj;
                    for (int h = 0; h < 2; ++h)
                      for (int e = 0; e < 2; ++e) f.b[L][h][e] = act[base + 2 * h + e];
                  } else {
                    // ldmatrix.x4: register i of lane (g, t) = row g of matrix i, elements 2t, 2t+1; matrix i's row
                    // addresses come from lanes 8i..8i+7. Token tile t8 % 2 uses registers 2 (t8 % 2), +1.
                    for (int h = 0; h < 2; ++h) {
                      const int i = 2 * (t8 % 2) + h;
                      const int addr = ldmatrix_offset(8 * i + g, jj, 0);  // byte offset in the 16-token stage
                      for (int e = 0; e < 2; ++e) f.b[L][h][e] = stage[addr / 2 + 2 * t + e];
                    }
                  }
                }
                double d[16][8] = {};
                emulate_mma(f, bf16, d, ok);
                for (int i = 0; i < 16; ++i)
                  for (int j = 0; j < 8; ++j) got[(t8 * 8 + j) * padded_rows(N) + R * 16 + i] += d[i][j];
              }
            }
      c.expect(ok, "an unpacked A value is not +-1");
      double max_err = 0.0;
      for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t n = 0; n < N; ++n)
          max_err = std::max(max_err, std::fabs(got[m * padded_rows(N) + n] - want[m * N + n]));
      c.expect(max_err < 1e-4, "max |emulated - reference| = " + std::to_string(max_err));
      c.note = "max|err| = " + err_string(max_err);
    }
  }
}

// ----------------------------------------------------------------------------------------- block-level emulation
// Whole blocks of binary_gemv.cu and binary_gemm.cu, every warp and lane, in the kernels' order: the warps' share of
// the split's chunks, the A and B fragments, mma.m16n8k16 with the D layout of the PTX ISA (mma_lanes, written here
// from the documentation, not from tile_layout.h), the fragments placed with the kernels' own acc_row / acc_token,
// the GEMV's shared-memory reduction red[warp][token][row], and the split-K hand-off of epilogue.cuh: each split
// writes partial sums, the block that arrives last at its tile's counter adds them in split order. A call runs its
// blocks in a shuffled order on counters left stale (as an aborted call leaves them), after zeroing
// split_counters(plan) of them as scale_activations_kernel does.

// acc (per lane) += A B. Element i of lane 4g + t is D[g + 8 (i / 2)][2t + i % 2].
struct LaneTile {
  double v[32][4] = {};
};

void mma_lanes(const Frags& f, LaneTile& acc, bool& ok) {
  double d[16][8] = {};
  emulate_mma(f, false, d, ok);
  for (int L = 0; L < 32; ++L)
    for (int i = 0; i < 4; ++i) acc.v[L][i] += d[L / 4 + (i >= 2 ? 8 : 0)][2 * (L % 4) + i % 2];
}

// One matmul and the state of one emulated call of it.
struct EmulatedCall {
  std::int64_t M, N, K, NR, NC, KP, NP;
  LaunchPlan plan;
  std::vector<std::uint32_t> tiled;
  std::vector<double> act;               // (M, KP) in the plan's activation layout, zero past K
  std::vector<float> want;               // (M, N) binary_matmul_ref
  std::vector<double> y, partials;       // (M, N) and [splits][M][NP], NaN until written
  std::vector<int> stores;               // times each output was stored
  std::vector<std::uint32_t> counters;   // the workspace's counter region
  bool in_bounds = true, mma_ok = true;  // fragments placed inside their tile, once; A values +-1

  EmulatedCall(std::int64_t m, std::int64_t n, std::int64_t k, std::mt19937& rng)
      : M(m), N(n), K(k), NR(row_tiles(n)), NC(chunks(k)), KP(padded_k(k)), NP(padded_rows(n)) {
    plan = plan_launch(M, N, K, 0, 1);
    const auto bits = random_bits(N, K, rng);
    tiled.resize(tiled_words(N, K));
    repack_tiles_host(bits.data(), N, K, tiled.data());
    std::vector<float> x(M * K);
    std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
    for (auto& v : x) v = ud(rng);
    want.resize(M * N);
    binary_matmul_ref(bits.data(), N, K, x.data(), M, want.data());
    act.assign(M * KP, 0.0);
    for (std::int64_t t = 0; t < M; ++t)
      for (std::int64_t kk = 0; kk < K; ++kk) act[t * KP + act_position(kk, plan.act_layout)] = x[t * K + kk];
  }

  // A new call with `splits` split-K parts: stale counters, zeroed for this call as the prologue does.
  void start(std::int64_t splits) {
    plan.splits = splits;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    y.assign(M * N, nan);
    partials.assign(splits * M * NP, nan);
    stores.assign(M * N, 0);
    counters.assign(kMaxCounters, 1u);
    for (std::int64_t i = 0; i < split_counters(plan); ++i) counters[i] = 0u;
  }

  std::uint32_t word(std::int64_t R, std::int64_t c, int lane, int q) const {
    return R < NR ? tiled[((R * NC + c) * kLanes + lane) * kWordsPerLane + q] : 0u;  // zero past the last row tile
  }
  void store(std::int64_t token, std::int64_t n, double v) {
    y[token * N + n] = v;
    ++stores[token * N + n];
  }
  double& partial(std::int64_t split, std::int64_t token, std::int64_t n) {
    return partials[(split * M + token) * NP + n];
  }
  double sum_partials(std::int64_t token, std::int64_t n) {
    double v = 0.0;
    for (std::int64_t s = 0; s < plan.splits; ++s) v += partial(s, token, n);
    return v;
  }
  // epilogue.cuh's arrive_last: atomicAdd on the tile's counter; the last block resets it.
  bool arrive_last(std::int64_t tile) {
    if (tile < 0 || tile >= kMaxCounters) {
      in_bounds = false;
      return false;
    }
    const std::uint32_t before = counters[tile]++;
    const bool last = before == static_cast<std::uint32_t>(plan.splits - 1);
    if (last) counters[tile] = 0u;
    return last;
  }

  // Every output stored once, within tolerance of the reference; the largest error goes into the case's note.
  void check(Case& c) const {
    double max_err = 0.0;
    bool finite = true, once = true;
    for (std::int64_t i = 0; i < M * N; ++i) {
      once = once && stores[i] == 1;
      finite = finite && std::isfinite(y[i]);
      if (std::isfinite(y[i])) max_err = std::max(max_err, std::fabs(y[i] - want[i]));
    }
    c.expect(mma_ok, "an unpacked A value is not +-1");
    c.expect(in_bounds, "a fragment lands outside its tile or twice on a reduction slot, or a counter is out of range");
    c.expect(once, "an output is stored never or twice");
    c.expect(finite, "an output is not finite (read an unwritten partial or reduction slot)");
    c.expect(max_err < 1e-4, "max |emulated - reference| = " + std::to_string(max_err));
    c.note = "max|err| = " + err_string(max_err);
  }
};

// One block (row group rg, split sp) of binary_gemv_kernel<T, NT>.
void emulate_gemv_block(EmulatedCall& e, std::int64_t rg, std::int64_t sp) {
  constexpr int kRT = kGemvRowTiles, kW = kGemvWarps, kRows = kRT * kTileRows;
  const int NT = e.plan.token_tiles, kTokens = NT * 8;
  const std::int64_t R0 = rg * kRT;
  const int nc = static_cast<int>(e.NC), splits = static_cast<int>(e.plan.splits), spi = static_cast<int>(sp);
  const std::int64_t c_begin = split_begin(nc, splits, spi), c_end = split_begin(nc, splits, spi + 1);

  std::vector<LaneTile> acc(kW * kRT * NT);  // [warp][rt][nt]
  for (int warp = 0; warp < kW; ++warp)
    for (std::int64_t c = c_begin + warp; c < c_end; c += kW)
      for (int q = 0; q < kWordsPerLane; ++q)
        for (int jj = 0; jj < 4; ++jj)
          for (int rt = 0; rt < kRT; ++rt)
            for (int nt = 0; nt < NT; ++nt) {
              Frags f{};
              for (int L = 0; L < 32; ++L) {
                const int g = L / 4, t = L % 4;
                const std::uint32_t w = e.word(R0 + rt, c, L, q);
                for (int r = 0; r < 4; ++r) f.a[L][r] = unpack_pair(w, jj, r, kMinusOnePairF16);
                // Token 8 nt + g: b[nt][jj / 2] = 8 values at c * 256 + q * 64 + 16 t + 8 (jj / 2); b0 is its
                // 32-bit word 2 (jj % 2) (.x or .z), b1 the next (.y or .w).
                const std::int64_t token = nt * 8 + g;
                for (int h = 0; h < 2; ++h)
                  for (int v = 0; v < 2; ++v)
                    f.b[L][h][v] = token < e.M ? e.act[token * e.KP + c * kChunkK + q * kSubTileK + 16 * t +
                                                       8 * (jj >> 1) + 4 * (jj & 1) + 2 * h + v]
                                               : 0.0;
              }
              mma_lanes(f, acc[(warp * kRT + rt) * NT + nt], e.mma_ok);
            }

  // red[warp][token][row], every slot written by exactly one fragment element.
  std::vector<double> red(kW * kTokens * kRows, std::numeric_limits<double>::quiet_NaN());
  std::vector<int> written(red.size(), 0);
  for (int warp = 0; warp < kW; ++warp)
    for (int rt = 0; rt < kRT; ++rt)
      for (int nt = 0; nt < NT; ++nt)
        for (int L = 0; L < 32; ++L)
          for (int i = 0; i < 4; ++i) {
            const int g = L / 4, t = L % 4;
            const int token = acc_token(nt * 8, t, i), row = acc_row(rt * kTileRows, g, i);
            if (token < 0 || token >= kTokens || row < 0 || row >= kRows) {
              e.in_bounds = false;
              continue;
            }
            const std::size_t at = (warp * kTokens + token) * kRows + row;
            red[at] = acc[(warp * kRT + rt) * NT + nt].v[L][i];
            ++written[at];
          }
  for (int w : written) e.in_bounds = e.in_bounds && w == 1;
  auto block_sum = [&](int token, int row) {
    double v = 0.0;
    for (int wi = 0; wi < kW; ++wi) v += red[(wi * kTokens + token) * kRows + row];
    return v;
  };

  const std::int64_t n0 = R0 * kTileRows;
  if (e.plan.splits == 1) {
    for (int i = 0; i < kTokens * kRows; ++i) {
      const int token = i / kRows, row = i % kRows;
      if (token < e.M && n0 + row < e.N) e.store(token, n0 + row, block_sum(token, row));
    }
    return;
  }
  for (int i = 0; i < kTokens * kRows; ++i) {
    const int token = i / kRows, row = i % kRows;
    if (token < e.M && n0 + row < e.NP) e.partial(sp, token, n0 + row) = block_sum(token, row);
  }
  if (!e.arrive_last(rg)) return;
  for (int i = 0; i < kTokens * kRows; ++i) {
    const int token = i / kRows, row = i % kRows;
    if (token < e.M && n0 + row < e.N) e.store(token, n0 + row, e.sum_partials(token, n0 + row));
  }
}

// One block (row group rg, token group tg, split sp) of binary_gemm_kernel<T, WM>.
void emulate_gemm_block(EmulatedCall& e, std::int64_t rg, std::int64_t tg, std::int64_t sp) {
  const int WM = e.plan.kind == KernelKind::kGemm64 ? 4 : 2, WN = kGemmWarps / WM;
  const int BM = WN * kGemmWarpTokens, kRTW = kGemmRowTiles / WM, kNT = kGemmWarpTokens / 8;
  const std::int64_t R0 = rg * kGemmRowTiles, T0 = tg * BM;
  const int nc = static_cast<int>(e.NC), splits = static_cast<int>(e.plan.splits), spi = static_cast<int>(sp);
  const std::int64_t kt_begin = split_begin(nc, splits, spi) * kWordsPerLane;
  const std::int64_t n_stages = split_begin(nc, splits, spi + 1) * kWordsPerLane - kt_begin;

  std::vector<LaneTile> acc(kGemmWarps * kRTW * kNT);  // [warp][rt][nt]
  std::vector<std::uint32_t> words(kGemmRowTiles * kLanes);
  std::vector<double> stage(BM * kActRowBytes / 2);  // 16-bit values by byte offset / 2
  for (std::int64_t s = 0; s < n_stages; ++s) {
    // The stage as load_stage fills it: thread tid copies word kt % 4 of lane tid % 32 in row tile R0 + tid / 32;
    // activation piece p (8 columns) of row p / 8 goes through the swizzle, zero past the last token.
    const std::int64_t kt = kt_begin + s, c = kt / kWordsPerLane;
    for (int tid = 0; tid < kGemmRowTiles * kLanes; ++tid)
      words[tid] = e.word(R0 + tid / kLanes, c, tid % kLanes, static_cast<int>(kt % kWordsPerLane));
    for (int piece_id = 0; piece_id < BM * kPiecesPerRow; ++piece_id) {
      const int row = piece_id / kPiecesPerRow, piece = piece_id % kPiecesPerRow;
      const std::int64_t token = T0 + row;
      for (int v = 0; v < 8; ++v)
        stage[act_smem_offset(row, piece) / 2 + v] =
            token < e.M ? e.act[token * e.KP + kt * kSubTileK + piece * 8 + v] : 0.0;
    }
    for (int warp = 0; warp < kGemmWarps; ++warp) {
      const int wm = warp % WM, wn = warp / WM;  // as binary_gemm.cu
      for (int jj = 0; jj < 4; ++jj) {
        // ldmatrix.x4 with lane L giving the row address ldmatrix_offset(L, jj, wn * 32 + 16 h): matrix m's 8 rows
        // come from lanes 8m .. 8m + 7, and register m of lane (g, t) is row g of matrix m, elements 2t, 2t + 1.
        // Registers (0, 1) are {b0, b1} of token tile 2h, (2, 3) those of 2h + 1.
        double reg[2][32][4][2];
        for (int h = 0; h < kNT / 2; ++h)
          for (int L = 0; L < 32; ++L)
            for (int m = 0; m < 4; ++m)
              for (int v = 0; v < 2; ++v) {
                const int addr = ldmatrix_offset(8 * m + L / 4, jj, wn * kGemmWarpTokens + 16 * h);
                reg[h][L][m][v] = stage[addr / 2 + 2 * (L % 4) + v];
              }
        for (int rt = 0; rt < kRTW; ++rt)
          for (int nt = 0; nt < kNT; ++nt) {
            Frags f{};
            for (int L = 0; L < 32; ++L) {
              for (int r = 0; r < 4; ++r)
                f.a[L][r] = unpack_pair(words[(wm * kRTW + rt) * kLanes + L], jj, r, kMinusOnePairF16);
              for (int b = 0; b < 2; ++b)
                for (int v = 0; v < 2; ++v) f.b[L][b][v] = reg[nt / 2][L][2 * (nt % 2) + b][v];
            }
            mma_lanes(f, acc[(warp * kRTW + rt) * kNT + nt], e.mma_ok);
          }
      }
    }
  }

  // for_each_output of binary_gemm.cu.
  auto for_each_output = [&](auto&& fn) {
    for (int warp = 0; warp < kGemmWarps; ++warp) {
      const int wm = warp % WM, wn = warp / WM;
      for (int rt = 0; rt < kRTW; ++rt)
        for (int nt = 0; nt < kNT; ++nt)
          for (int L = 0; L < 32; ++L)
            for (int i = 0; i < 4; ++i) {
              const int g = L / 4, t = L % 4;
              const std::int64_t n = acc_row((R0 + wm * kRTW + rt) * kTileRows, g, i);
              const std::int64_t token = acc_token(T0 + wn * kGemmWarpTokens + nt * 8, t, i);
              e.in_bounds = e.in_bounds && n >= R0 * kTileRows && n < (R0 + kGemmRowTiles) * kTileRows && token >= T0 &&
                            token < T0 + BM;
              fn(n, token, acc[(warp * kRTW + rt) * kNT + nt].v[L][i]);
            }
    }
  };
  if (e.plan.splits == 1) {
    for_each_output([&](std::int64_t n, std::int64_t token, double v) {
      if (token < e.M && n < e.N) e.store(token, n, v);
    });
    return;
  }
  for_each_output([&](std::int64_t n, std::int64_t token, double v) {
    if (token < e.M && n < e.NP) e.partial(sp, token, n) = v;
  });
  if (!e.arrive_last(rg * e.plan.token_groups + tg)) return;
  for_each_output([&](std::int64_t n, std::int64_t token, double) {
    if (token < e.M && n < e.N) e.store(token, n, e.sum_partials(token, n));
  });
}

// Every block of the grid (row_groups, token_groups, splits) in a shuffled order.
void emulate_call(EmulatedCall& e, std::mt19937& rng) {
  std::vector<std::array<std::int64_t, 3>> blocks;
  for (std::int64_t rg = 0; rg < e.plan.row_groups; ++rg)
    for (std::int64_t tg = 0; tg < e.plan.token_groups; ++tg)
      for (std::int64_t sp = 0; sp < e.plan.splits; ++sp) blocks.push_back({rg, tg, sp});
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (const auto& b : blocks) {
    if (e.plan.kind == KernelKind::kGemv)
      emulate_gemv_block(e, b[0], b[2]);
    else
      emulate_gemm_block(e, b[0], b[1], b[2]);
  }
}

// GEMV: 1, 2 and 4 token tiles, N not a multiple of 64 (a row group with a padding row tile), K not a multiple of 256,
// warps with 0 to 3 chunks. GEMM: both tile shapes, token padding, 2 token groups, 1 to 4 uneven splits.
void test_block_emulation(KernelKind family) {
  const bool gemv = family == KernelKind::kGemv;
  std::mt19937 rng(gemv ? 5 : 6);
  struct Shape {
    std::int64_t N, K;
    std::vector<std::int64_t> splits;
  };
  const std::vector<Shape> shapes = gemv ? std::vector<Shape>{{100, 2500, {1, 2, 3}}, {33, 300, {1, 2}}}
                                         : std::vector<Shape>{{200, 777, {1, 2, 3, 4}}, {72, 1300, {1, 2, 3, 4}}};
  const std::vector<std::int64_t> Ms =
      gemv ? std::vector<std::int64_t>{1, 8, 9, 17, 31, 32} : std::vector<std::int64_t>{33, 64, 65, 128, 200};
  for (const Shape& sh : shapes)
    for (std::int64_t M : Ms) {
      EmulatedCall e(M, sh.N, sh.K, rng);
      for (std::int64_t splits : sh.splits) {
        e.start(splits);
        Case c(std::string(kernel_kind_name(e.plan.kind)) + " block emulation" +
               (gemv ? " NT=" + std::to_string(e.plan.token_tiles) : std::string()) + ", M=" + std::to_string(M) + " " +
               nk(sh.N, sh.K) + " splits=" + std::to_string(splits) + ", output stage and split-K");
        c.expect((e.plan.kind == KernelKind::kGemv) == gemv, "plan_launch picked another kernel");
        emulate_call(e, rng);
        e.check(c);
      }
    }
}

// ------------------------------------------------------------------------------------------ shared-memory banks
void test_smem_swizzle() {
  Case c("GEMM stage swizzle: bijective, cp.async writes and ldmatrix reads conflict-free");
  constexpr int kRows = 128;
  std::set<int> offsets;
  for (int row = 0; row < kRows; ++row)
    for (int piece = 0; piece < kPiecesPerRow; ++piece) {
      const int off = act_smem_offset(row, piece);
      c.expect(off % 16 == 0 && off >= 0 && off < kRows * kActRowBytes, "offset outside the stage or unaligned");
      offsets.insert(off);
    }
  c.expect(static_cast<int>(offsets.size()) == kRows * kPiecesPerRow, "two pieces share an offset");
  // cp.async: 8 consecutive threads copy 8 consecutive pieces (piece_id = tid + i * 256).
  for (int first = 0; first < kRows * kPiecesPerRow; first += 8) {
    std::set<int> groups;
    for (int j = 0; j < 8; ++j) {
      const int id = first + j;
      groups.insert(act_smem_offset(id / kPiecesPerRow, id % kPiecesPerRow) / 16 % 8);
    }
    c.expect(groups.size() == 8, "cp.async phase with a bank conflict at piece " + std::to_string(first));
  }
  // ldmatrix: lanes 8i..8i+7 give the 8 row addresses of matrix i.
  for (int token0 = 0; token0 < kRows; token0 += 16)
    for (int jj = 0; jj < 4; ++jj)
      for (int i = 0; i < 4; ++i) {
        std::set<int> groups;
        for (int r = 0; r < 8; ++r) groups.insert(ldmatrix_offset(8 * i + r, jj, token0) / 16 % 8);
        c.expect(groups.size() == 8, "ldmatrix phase with a bank conflict");
      }
}

// --------------------------------------------------------------------------------------------------- launch plan
void test_launch_plan() {
  Case c("plan_launch: kinds, grids cover the output, splits cover every chunk once, workspace regions disjoint");
  const std::vector<std::int64_t> Ms = {1, 2, 8, 9, 16, 17, 32, 33, 64, 65, 256, 2048};
  const std::vector<std::pair<std::int64_t, std::int64_t>> shapes = {
      {4096, 4096}, {11008, 4096}, {4096, 11008}, {13824, 5120}, {1024, 4096}, {17, 33}, {64, 64}, {5, 100000}};
  for (int sms : {1, 108, 132})
    for (auto [N, K] : shapes)
      for (std::int64_t M : Ms)
        for (std::int64_t E : {0, 1, 4}) {
          const std::string at = "M=" + std::to_string(M) + " " + nk(N, K) + " sms=" + std::to_string(sms);
          const LaunchPlan p = plan_launch(M, N, K, E, sms);
          const std::int64_t NC = chunks(K);
          c.expect(p.kind == kernel_kind(M), "kind, " + at);
          c.expect(p.splits >= 1 && p.splits <= NC, "splits out of range, " + at);
          if (p.kind == KernelKind::kGemv) {
            c.expect(p.token_tiles * 8 >= M && (p.token_tiles == 1 || p.token_tiles == 2 || p.token_tiles == 4),
                     "token tiles, " + at);
            c.expect(p.row_groups * kGemvRowTiles >= row_tiles(N), "row groups, " + at);
            c.expect(p.act_layout == ActLayout::kLaneMajor, "GEMV reads lane-major activations, " + at);
            c.expect(p.splits == 1 || p.row_groups * p.splits <= gemv_blocks_per_sm(p.token_tiles) * sms,
                     "split GEMV grid exceeds one wave, " + at);
          } else {
            c.expect(p.row_groups * kGemmRowTiles >= row_tiles(N), "row groups, " + at);
            c.expect(p.token_groups * gemm_tokens(p.kind) >= M, "token groups, " + at);
            c.expect(p.act_layout == ActLayout::kPlain, "GEMM reads plain activations, " + at);
          }
          // Every chunk in exactly one split; in the GEMV every warp of a split block in turn.
          std::vector<int> hits(NC, 0);
          for (std::int64_t s = 0; s < p.splits; ++s) {
            const int nc = static_cast<int>(NC), sp = static_cast<int>(p.splits), si = static_cast<int>(s);
            const std::int64_t b = split_begin(nc, sp, si), e = split_begin(nc, sp, si + 1);
            c.expect(e > b, "empty split, " + at);
            if (p.kind == KernelKind::kGemv) {
              for (int w = 0; w < kGemvWarps; ++w)
                for (std::int64_t ch = b + w; ch < e; ch += kGemvWarps) ++hits[ch];
            } else {
              for (std::int64_t ch = b; ch < e; ++ch) ++hits[ch];
            }
          }
          for (std::int64_t ch = 0; ch < NC; ++ch) c.expect(hits[ch] == 1, "chunk not covered once, " + at);
          c.expect(p.router_blocks * kRouterColumns >= (E > 1 ? K : 0), "router blocks, " + at);
          c.expect(p.prologue_blocks * kProloguePositions >= padded_k(K), "prologue blocks, " + at);

          const WorkspaceLayout w = workspace_layout(p, M, N, K, E);
          const std::vector<std::pair<std::size_t, std::size_t>> regions = {{w.counters, w.counters_bytes},
                                                                            {w.act, w.act_bytes},
                                                                            {w.logits, w.logits_bytes},
                                                                            {w.gates, w.gates_bytes},
                                                                            {w.partials, w.partials_bytes}};
          c.expect(w.counters == 0, "counters at offset 0, " + at);
          for (std::size_t i = 0; i < regions.size(); ++i) {
            c.expect(regions[i].first % kWorkspaceAlign == 0, "unaligned region, " + at);
            c.expect(regions[i].first + regions[i].second <= w.total, "region past the end, " + at);
            for (std::size_t j = i + 1; j < regions.size(); ++j)
              c.expect(regions[i].first + regions[i].second <= regions[j].first, "regions overlap, " + at);
          }
          c.expect(w.act_bytes == static_cast<std::size_t>(M * padded_k(K) * 2), "act bytes, " + at);
          c.expect(
              w.partials_bytes == (p.splits > 1 ? static_cast<std::size_t>(p.splits * M * padded_rows(N) * 4) : 0u),
              "partials bytes, " + at);
        }
  // workspace_bytes_for covers each M below the maximum.
  for (std::int64_t m = 1; m <= 80; ++m)
    c.expect(workspace_layout(plan_launch(m, 4096, 4096, 4, 132), m, 4096, 4096, 4).total <=
                 workspace_bytes_for(80, 4096, 4096, 4, 132),
             "workspace_bytes_for(80) too small for M=" + std::to_string(m));
  bool threw = false;
  try {
    plan_launch(1, 16, 16, kMaxExperts + 1, 132);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  c.expect(threw, "E > kMaxExperts is refused");
}

}  // namespace

int main() {
  std::printf("test_cuda_tile_layout: index arithmetic of the CUDA kernels, checked on the host\n");
  test_tile_coord_bijection();
  test_repack_roundtrip();
  test_act_layout_bijection();
  test_unpack_pair_values();
  for (bool bf16 : {false, true}) {
    test_emulated_matmul(false, bf16);
    test_emulated_matmul(true, bf16);
  }
  test_block_emulation(KernelKind::kGemv);
  test_block_emulation(KernelKind::kGemm128);
  test_smem_swizzle();
  test_launch_plan();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
