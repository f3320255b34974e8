// Packed 1-bit kernels (kernels/cpu) against torch::matmul fp32, in one run:
//   BM_TorchGemv vs BM_PackedGemv_{Avx512,Avx2}   y = W x, W (N, K): 4096x4096, 11008x4096, 4096x11008
//   BM_TorchGemm vs BM_PackedGemm_{Avx512,Avx2}   Y = X W^T, X (M, 4096), W 4096x4096: M = 16 and 128 tokens
//   BM_PackedGemm_Avx512 vs BM_PackedGemm_Int8     the same with int8 tables (opt-in prefill, LutPrecision::kInt8)
//   BM_BinaryMosLayer_Avx512 vs BM_TorchGemv       the fused layer (router, scales, binary GEMV), E = 4
//   BM_PackedMatmulCold_Avx512                     M = 1, 16, 128 tokens at the three shapes, weights out of cache
//   BM_LinearChain_{Gemv,Layer}                    the 224 products of a LLaMA-2-7B token, bare and as BinaryMoS layers
// all with 1 and 2 threads. AVX2 is the required baseline, AVX-512 the default where the CPU has it (rows of an
// ISA the CPU lacks are skipped with a message). bmos_bench's summary prints each packed row's ratio to the torch
// row of the same arguments (bench_ratio.h); each packed row also carries counters: torch_us (that torch row, or
// measured on the spot when it was filtered out) and speedup_cpu, the ratio of process CPU times, which other
// processes on a shared machine disturb less than wall time for 1 thread. Run with OMP_WAIT_POLICY=PASSIVE.
#include <torch/torch.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/binary_matmul.h"
#include "kernels/cpu/binarymos_layer.h"
#include "kernels/packed_format.h"
#include "modules/threads.h"
#include "tests/bench/bench_ratio.h"

namespace {

using bmos::kernels::CpuIsa;
using bmos::kernels::PreparedBinaryMatrix;

// ------------------------------------------------------------------------------------------------ shared fixtures
// One fp32 weight per shape (shared by torch and the packed kernels: the packed bits are its signs), built once.
struct Weights {
  torch::Tensor W;  // (N, K) fp32
  PreparedBinaryMatrix B;
};

const Weights& weights(int64_t N, int64_t K) {
  static std::map<std::pair<int64_t, int64_t>, Weights> cache;
  auto it = cache.find({N, K});
  if (it != cache.end()) return it->second;
  torch::manual_seed(0);
  Weights w;
  w.W = torch::randn({N, K});
  std::vector<bmos::packed::Word> bits(bmos::packed::packed_words(N, K));
  bmos::packed::pack(w.W.data_ptr<float>(), N, K, bits.data());
  w.B = PreparedBinaryMatrix(bits.data(), N, K);
  return cache.emplace(std::make_pair(N, K), std::move(w)).first->second;
}

double process_cpu_us() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

// Wall and CPU microseconds per iteration of a benchmark loop.
struct Timing {
  double wall_us = 0, cpu_us = 0;
};

template <class F>
Timing time_loop(benchmark::State& state, F&& body) {
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = process_cpu_us();
  for (auto _ : state) body();
  const double n = static_cast<double>(state.iterations());
  return {std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n,
          (process_cpu_us() - c0) / n};
}

// The torch baselines of this run, by "gemv N K threads" / "gemm M N K threads"; the last call of a torch row (the
// one Google Benchmark reports) leaves its timing here.
std::map<std::string, Timing>& torch_timings() {
  static std::map<std::string, Timing> t;
  return t;
}

// The baseline for `key`, measured now (at least 10 iterations and 0.3 s) when its torch row did not run.
template <class F>
Timing torch_baseline(const std::string& key, F&& torch_call) {
  auto it = torch_timings().find(key);
  if (it != torch_timings().end()) return it->second;
  torch_call();
  int iters = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = process_cpu_us();
  double wall = 0;
  do {
    torch_call();
    ++iters;
    wall = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  } while (iters < 10 || wall < 3e5);
  return torch_timings()[key] = Timing{wall / iters, (process_cpu_us() - c0) / iters};
}

void report(benchmark::State& state, const Timing& packed, const Timing& torch) {
  state.counters["torch_us"] = torch.wall_us;
  state.counters["speedup_cpu"] = torch.cpu_us / packed.cpu_us;
}

// False (and the row skipped with a message) when this CPU lacks the ISA.
bool supported(benchmark::State& state, CpuIsa isa) {
  if (bmos::kernels::cpu_supports(isa)) return true;
  state.SkipWithError((std::string("SKIPPED: this CPU has no ") + bmos::kernels::isa_name(isa)).c_str());
  return false;
}

std::string gemv_key(int64_t N, int64_t K, int threads) {
  return "gemv " + std::to_string(N) + " " + std::to_string(K) + " " + std::to_string(threads);
}
std::string gemm_key(int64_t M, int64_t N, int64_t K, int threads) {
  return "gemm " + std::to_string(M) + " " + std::to_string(N) + " " + std::to_string(K) + " " + std::to_string(threads);
}

// ----------------------------------------------------------------------------------------------------------- GEMV
void BM_TorchGemv(benchmark::State& state) {
  const int64_t N = state.range(0), K = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  bmos::set_compute_threads(threads);
  const auto& w = weights(N, K);
  const auto x = torch::randn({K});
  torch_timings()[gemv_key(N, K, threads)] = time_loop(state, [&] { benchmark::DoNotOptimize(torch::matmul(w.W, x)); });
}

void packed_gemv(benchmark::State& state, CpuIsa isa) {
  const int64_t N = state.range(0), K = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  if (!supported(state, isa)) return;
  bmos::set_compute_threads(threads);
  const auto& w = weights(N, K);
  const auto x = torch::randn({K});
  const Timing torch = torch_baseline(gemv_key(N, K, threads), [&] { torch::matmul(w.W, x); });
  std::vector<float> y(N);
  const Timing packed = time_loop(state, [&] {
    bmos::kernels::binary_matmul(w.B, x.data_ptr<float>(), 1, y.data(), threads, isa);
    benchmark::DoNotOptimize(y.data());
  });
  report(state, packed, torch);
}

// ----------------------------------------------------------------------------------------------------------- GEMM
void BM_TorchGemm(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  bmos::set_compute_threads(threads);
  const auto& w = weights(N, K);
  const auto X = torch::randn({M, K});
  torch_timings()[gemm_key(M, N, K, threads)] =
      time_loop(state, [&] { benchmark::DoNotOptimize(torch::matmul(X, w.W.t())); });
}

void packed_gemm(benchmark::State& state, CpuIsa isa,
                 bmos::kernels::LutPrecision lut = bmos::kernels::LutPrecision::kFp32) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  if (!supported(state, isa)) return;
  bmos::set_compute_threads(threads);
  const auto& w = weights(N, K);
  const auto X = torch::randn({M, K});
  const Timing torch = torch_baseline(gemm_key(M, N, K, threads), [&] { torch::matmul(X, w.W.t()); });
  std::vector<float> Y(M * N);
  const Timing packed = time_loop(state, [&] {
    bmos::kernels::binary_matmul(w.B, X.data_ptr<float>(), M, Y.data(), threads, isa, {}, lut);
    benchmark::DoNotOptimize(Y.data());
  });
  report(state, packed, torch);
}

// ------------------------------------------------------------------------------------------------ out of cache
// The sign bits of a random N x K matrix (canonical layout) from a 64-bit LCG; `state` continues across calls.
std::vector<bmos::packed::Word> random_bits(int64_t N, int64_t K, uint64_t& state) {
  std::vector<bmos::packed::Word> bits(bmos::packed::packed_words(N, K));
  for (auto& w : bits)
    state = state * 6364136223846793005ull + 1442695040888963407ull, w = bmos::packed::Word(state >> 32);
  return bits;
}

// The same products with the weights out of cache: a set of copies of one random matrix, 512 MiB in all (twice the
// 260 MiB L3 this VM reports; more than any L3 we run on), used in turn, so every call reads its weights from DRAM
// as a model's decode does. Counter GB/s = weight bytes read per second. Args M (tokens), N, K, threads.
struct ColdSet {
  std::vector<PreparedBinaryMatrix> mats;
  size_t next = 0;
  const PreparedBinaryMatrix& take() { return mats[next++ % mats.size()]; }
};

ColdSet& cold_set(int64_t N, int64_t K) {
  static std::map<std::pair<int64_t, int64_t>, ColdSet> cache;
  if (cache.size() > 0 && !cache.count({N, K})) cache.clear();  // one shape's set at a time
  ColdSet& set = cache[{N, K}];
  if (set.mats.empty()) {
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    const std::vector<bmos::packed::Word> bits = random_bits(N, K, seed);
    const PreparedBinaryMatrix first(bits.data(), N, K);
    const int64_t count = ((int64_t{512} << 20) + first.bytes() - 1) / first.bytes();
    for (int64_t i = 0; i < count; ++i) set.mats.emplace_back(bits.data(), N, K);
  }
  return set;
}

void BM_PackedMatmulCold_Avx512(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  if (!supported(state, CpuIsa::kAvx512)) return;
  ColdSet& set = cold_set(N, K);
  const auto X = torch::randn({M, K});
  std::vector<float> Y(M * N);
  const Timing t = time_loop(state, [&] {
    bmos::kernels::binary_matmul(set.take(), X.data_ptr<float>(), M, Y.data(), threads, CpuIsa::kAvx512);
    benchmark::DoNotOptimize(Y.data());
  });
  state.counters["GB/s"] = set.mats[0].bytes() / t.wall_us / 1e3;
  state.counters["matrices"] = static_cast<double>(set.mats.size());
}

// ------------------------------------------------------------------------------------------- a 7B token's products
// The 224 packed products of one LLaMA-2-7B decode step, out of cache (32 layers of wq, wk, wv, wo at 4096x4096,
// w1, w3 at 11008x4096 and w2 at 4096x11008, random bits, 0.87 GB), one pass per iteration, without the rest of the
// model: BM_LinearChain_Gemv as bare products (binary_matmul), BM_LinearChain_Layer as BinaryMoS layers (E = 4:
// router, input- and output-scale mixes, binarymos_forward, the scales fp16 as an exported model keeps them). The
// difference is what a decoded token spends on its scales; BM_Decode (bench_decode.cpp) measures the whole model.
// Counters: ms/token, GB/s (bytes the pass reads).
struct ChainLinear {
  PreparedBinaryMatrix B;
  torch::Tensor router, s_in, s_out;  // (E, K), (E, K), (E, N) fp16
};

const std::vector<ChainLinear>& linear_chain() {
  static const std::vector<ChainLinear> chain = [] {
    constexpr int64_t E = 4;
    torch::manual_seed(0);
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    std::vector<ChainLinear> out;
    for (int layer = 0; layer < 32; ++layer)
      for (auto [N, K] : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 4096}, {4096, 4096}, {4096, 4096},
                          {11008, 4096}, {11008, 4096}, {4096, 11008}})  // wq wk wv wo w1 w3 w2
        out.push_back({PreparedBinaryMatrix(random_bits(N, K, seed).data(), N, K),
                       (torch::randn({E, K}) / std::sqrt(static_cast<double>(K))).to(torch::kHalf),
                       (torch::rand({E, K}) * 0.1).to(torch::kHalf),
                       (torch::rand({E, N}) * 0.1).to(torch::kHalf)});  // the scales of BM_BinaryMosLayer_Avx512
    return out;
  }();
  return chain;
}

void linear_chain(benchmark::State& state, bool layers) {
  const int threads = static_cast<int>(state.range(0));
  const auto& chain = linear_chain();
  const auto x = torch::randn({11008});
  std::vector<float> y(11008);
  double bytes = 0;
  for (const auto& l : chain)
    bytes += double(l.B.bytes()) + (layers ? 2.0 * double(l.router.numel() + l.s_in.numel() + l.s_out.numel()) : 0);
  const Timing t = time_loop(state, [&] {
    for (const auto& l : chain) {
      if (layers)
        bmos::kernels::binarymos_forward(l.B,
                                         bmos::kernels::MosScales{l.router.size(0), bmos::kernels::ScaleType::kF16,
                                                                  l.router.data_ptr(), l.s_in.data_ptr(),
                                                                  l.s_out.data_ptr()},
                                         nullptr, x.data_ptr<float>(), 1, y.data(), threads);
      else
        bmos::kernels::binary_matmul(l.B, x.data_ptr<float>(), 1, y.data(), threads);
    }
    benchmark::DoNotOptimize(y.data());
  });
  state.counters["ms/token"] = t.wall_us / 1e3;
  state.counters["GB/s"] = bytes / t.wall_us / 1e3;
}
void BM_LinearChain_Gemv(benchmark::State& state) { linear_chain(state, false); }
void BM_LinearChain_Layer(benchmark::State& state) { linear_chain(state, true); }

// ---------------------------------------------------------------------------------------------- fused layer (decode)
void BM_BinaryMosLayer_Avx512(benchmark::State& state) {
  const int64_t N = state.range(0), K = state.range(1), E = 4;
  const int threads = static_cast<int>(state.range(2));
  if (!supported(state, CpuIsa::kAvx512)) return;
  bmos::set_compute_threads(threads);
  const auto& w = weights(N, K);
  const auto x = torch::randn({K});
  const auto router = torch::randn({E, K}) / std::sqrt(static_cast<double>(K));
  const auto s_in = torch::rand({E, K}) * 0.1, s_out = torch::rand({E, N}) * 0.1, bias = torch::randn({N});
  const Timing torch = torch_baseline(gemv_key(N, K, threads), [&] { torch::matmul(w.W, x); });
  std::vector<float> y(N);
  const Timing packed = time_loop(state, [&] {
    bmos::kernels::binarymos_forward(w.B, E, router.data_ptr<float>(), s_in.data_ptr<float>(),
                                     s_out.data_ptr<float>(), bias.data_ptr<float>(), x.data_ptr<float>(), 1,
                                     y.data(), threads, CpuIsa::kAvx512);
    benchmark::DoNotOptimize(y.data());
  });
  report(state, packed, torch);
}

void BM_PackedGemv_Avx512(benchmark::State& state) { packed_gemv(state, CpuIsa::kAvx512); }
void BM_PackedGemv_Avx2(benchmark::State& state) { packed_gemv(state, CpuIsa::kAvx2); }
void BM_PackedGemm_Avx512(benchmark::State& state) { packed_gemm(state, CpuIsa::kAvx512); }
void BM_PackedGemm_Avx2(benchmark::State& state) { packed_gemm(state, CpuIsa::kAvx2); }
// The opt-in int8-table prefill kernel (binary_matmul.h LutPrecision::kInt8); its ratio is to the exact AVX-512 row.
void BM_PackedGemm_Int8(benchmark::State& state) {
  if (!bmos::kernels::cpu_supports_int8_lut()) {
    state.SkipWithError("SKIPPED: this CPU has no AVX-512 VBMI + VNNI");
    return;
  }
  packed_gemm(state, CpuIsa::kAvx512, bmos::kernels::LutPrecision::kInt8);
}

// ----------------------------------------------------------------------------------------------------- registration
// Torch rows first: each packed row reads the torch row of its arguments from earlier in the run.
void gemv_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "K", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (auto [N, K] : {std::pair<int64_t, int64_t>{4096, 4096}, {11008, 4096}, {4096, 11008}})
    for (int64_t threads : {1, 2}) b->Args({N, K, threads});
}
void gemm_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (int64_t M : {16, 128})
    for (int64_t threads : {1, 2}) b->Args({M, 4096, 4096, threads});
}
void cold_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (int64_t M : {1, 16, 128})
    for (auto [N, K] : {std::pair<int64_t, int64_t>{4096, 4096}, {11008, 4096}, {4096, 11008}})
      for (int64_t threads : {1, 2}) b->Args({M, N, K, threads});
}
void layer_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "K", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (int64_t threads : {1, 2}) b->Args({4096, 4096, threads});
}

BENCHMARK(BM_TorchGemv)->Apply(gemv_args);
BENCHMARK(BM_PackedGemv_Avx512)->Apply(gemv_args);
BENCHMARK(BM_PackedGemv_Avx2)->Apply(gemv_args);
BENCHMARK(BM_BinaryMosLayer_Avx512)->Apply(layer_args);
BENCHMARK(BM_TorchGemm)->Apply(gemm_args);
BENCHMARK(BM_PackedMatmulCold_Avx512)->Apply(cold_args);
BENCHMARK(BM_PackedGemm_Avx512)->Apply(gemm_args);
BENCHMARK(BM_PackedGemm_Avx2)->Apply(gemm_args);
BENCHMARK(BM_PackedGemm_Int8)->Apply(gemm_args);
BENCHMARK(BM_LinearChain_Gemv)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LinearChain_Layer)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BMOS_BENCH_BASELINE(BM_PackedGemv_Avx512, BM_TorchGemv);
BMOS_BENCH_BASELINE(BM_PackedGemv_Avx2, BM_TorchGemv);
BMOS_BENCH_BASELINE(BM_BinaryMosLayer_Avx512, BM_TorchGemv);
BMOS_BENCH_BASELINE(BM_PackedGemm_Avx512, BM_TorchGemm);
BMOS_BENCH_BASELINE(BM_PackedGemm_Avx2, BM_TorchGemm);
BMOS_BENCH_BASELINE(BM_PackedGemm_Int8, BM_PackedGemm_Avx512);
BMOS_BENCH_BASELINE(BM_LinearChain_Layer, BM_LinearChain_Gemv);

}  // namespace
