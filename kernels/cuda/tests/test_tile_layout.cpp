// Host unit test of the CUDA kernels' index arithmetic (tile_layout.h, launch_plan.h), compiled by the plain C++
// compiler so that it runs on machines without a GPU or nvcc. Besides bijection checks it emulates, lane by lane, what
// the kernels feed the tensor cores (A fragments unpacked from the tiled words, B fragments from the lane-major
// activations as the GEMV reads them, or through the swizzled shared-memory stage + ldmatrix as the GEMM reads them),
// applies mma.m16n8k16's documented fragment layout, and holds the result to binary_matmul_ref.
// Prints "N passed, N failed"; exit status 1 on any failure.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

// One named check; prints the first failure detail of the case.
struct Case {
  std::string name;
  int failures = 0;
  explicit Case(std::string n) : name(std::move(n)) {}
  void expect(bool ok, const std::string& detail) {
    if (!ok && failures++ == 0) std::printf("  FAIL %s: %s\n", name.c_str(), detail.c_str());
  }
  ~Case() {
    if (failures == 0) {
      ++g_passed;
      std::printf("  ok   %s\n", name.c_str());
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
  test_smem_swizzle();
  test_launch_plan();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
