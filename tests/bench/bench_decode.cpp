// Whole-model decode and prefill of an exported packed model at real scale, against this machine's DRAM read
// roofline measured in the same run. $BMOS_DECODE_MODEL names the exported folder, e.g. a LLaMA-2-7B-shaped one:
//   bmos init-model --like configs/shapes/llama2-7b.json --out /big/l7
//   bmos export --from-teacher /big/l7 --out /big/l7-e4 --embedding_bits 8 --tokenizer .../tokenizer.model
//   BMOS_DECODE_MODEL=/big/l7-e4 build/bmos_bench --benchmark_filter='Dram|Decode|Prefill|WeightPages'
// Without it the benchmarks are skipped with a message; with BMOS_DECODE_NOMMAP=1 the model is read into huge-page
// memory instead of mapped (LoadOptions::map_weights = false, `--nommap`). Arg = threads (BM_Decode: threads, then
// raw = 1 for the raw one-token path of modules/decode_step.h, 0 for the torch ops it replaces).
//   BM_DramRead/T   sums a 2 GiB buffer (far past L3) on T threads: read GB/s (loads the model first).
//   BM_Decode/T     one token at a time after a 16-token prompt (positions 16..47): tok/s; bytes/token = what one
//                   token must read (packed bits, scales, routers, biases, the head, norms, the KV cache at the mean
//                   position); gemv_cache_GB/s = the packed GEMV's own ceiling on T threads: the weight bytes
//                   per second it consumes when they sit in cache (a 2048 x 4096 matrix, 1.1 MB), so a reader sees
//                   whether the kernel's arithmetic or DRAM bounds decode; roofline_tok/s = DRAM read bandwidth
//                   (BM_DramRead's probe, same T, the better of one just before and one just after the tokens) /
//                   bytes per token; share = tok/s / roofline; the time split in % (packed linears, head, the
//                   rest: attention, norms, embeddings, torch overhead);
//                   load_s and rss_GB right after load (a format_version 2 folder is mapped: its weights page in as
//                   they are first used), then first_token_s and rss1_GB after one token has touched every weight
//                   (the page-in: from the page cache when the file was read recently, else from disk).
//   BM_DecodeContext/threads:T/positions:P  16 tokens decoded after P positions already in the KV cache (random
//                   keys and values), the cache in fp32: tok/s, bytes/token (the weights and the cache at the mean
//                   position), the share of the DRAM roofline, kv_cache_GB (the cache's memory). BM_DecodeContextFp16
//                   the same with an fp16 cache (--kv_cache fp16), printed with its ratio to the fp32 row.
//   BM_Prefill/threads:T/last_only:L  128-token prompts through forward_cached (L = 1: the logits of the last
//                   position only, as generation asks): tok/s. BM_PrefillInt8 the same with the packed linears'
//                   int8 tables (--prefill_tables int8), printed with its ratio to the BM_Prefill row, and what they
//                   change: logit_rel_err (relative rms difference of all 128 positions' logits) and top1_agree.
//   BM_WeightPages/threads:T/huge:H  the packed GEMVs of one token and nothing else (the 224 of a LLaMA-2-7B), straight
//                   over the export's sign bits as the file maps them (H = 0: 4 KB page-cache pages) or as --nommap
//                   copies them (H = 1: transparent huge pages), 32 tokens: ms per token at the median, best and
//                   worst, weight GB/s at the median, and the page faults the process took in those tokens. A gap
//                   between the rows is what the pages cost here (on a VM that shadows the guest's page tables a
//                   mapping's 4 KB pages can be slow in bursts without a fault in the guest).
#include <sys/resource.h>
#include <unistd.h>

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "kernels/cpu/binary_matmul.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/packed_format.h"
#include "modules/io/model_loader.h"
#include "modules/packed/int8_rows_linear.h"
#include "modules/packed/packed_binarymos_linear.h"
#include "modules/threads.h"
#include "tests/bench/bench_ratio.h"

namespace bmos {
namespace {

using Clock = std::chrono::steady_clock;

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

double resident_gb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024 / 1e9;
  return 0;
}

// Times the layer it wraps (decode runs the model on one thread of control; the kernels' own threads are inside).
class TimedLinear : public LinearLike {
 public:
  TimedLinear(std::shared_ptr<LinearLike> inner, double* seconds) : inner_(std::move(inner)), seconds_(seconds) {}
  torch::Tensor forward(const torch::Tensor& x) override {
    const auto t0 = Clock::now();
    torch::Tensor y = inner_->forward(x);
    *seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
    return y;
  }
  bool has_raw_forward() const override { return inner_->has_raw_forward(); }
  void forward_raw(const float* x, int64_t M, float* y) override {
    const auto t0 = Clock::now();
    inner_->forward_raw(x, M, y);
    *seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  std::string kind() const override { return inner_->kind(); }

 private:
  std::shared_ptr<LinearLike> inner_;
  double* seconds_;
};

struct Loaded {
  Llama model{nullptr};
  double rss_gb = 0, load_s = 0, first_token_s = 0, rss1_gb = 0;
  double weight_bytes = 0;     // read once per token, whatever the position
  double linear_s = 0, head_s = 0;
  std::vector<std::shared_ptr<PackedBinaryMoSLinearImpl>> packed;  // the model's, inside their TimedLinear
  std::string error;
};

int64_t tensor_bytes(const torch::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

Loaded& loaded() {
  static Loaded m = [] {
    Loaded out;
    const char* dir = std::getenv("BMOS_DECODE_MODEL");
    if (!dir) {
      out.error = "SKIPPED: set BMOS_DECODE_MODEL to an exported packed folder (see tests/bench/bench_decode.cpp)";
      return out;
    }
    const auto t0 = Clock::now();
    LoadOptions options;
    options.map_weights = std::getenv("BMOS_DECODE_NOMMAP") == nullptr;
    out.model = load_model(dir, options).model;
    out.load_s = std::chrono::duration<double>(Clock::now() - t0).count();
    out.rss_gb = resident_gb();
    Llama& model = out.model;
    {
      torch::NoGradGuard no_grad;
      KVCache cache = model->new_cache(1, 1);
      const auto t1 = Clock::now();
      model->forward_cached(torch::full({1, 1}, 3, torch::kLong), cache);
      out.first_token_s = std::chrono::duration<double>(Clock::now() - t1).count();
      out.rss1_gb = resident_gb();
    }
    for (const auto& name : model->linear_names()) {
      auto l = model->get_linear(name);
      if (auto p = std::dynamic_pointer_cast<PackedBinaryMoSLinearImpl>(l)) {
        out.packed.push_back(p);
        out.weight_bytes += double(p->prepared_bytes() + tensor_bytes(p->router) + tensor_bytes(p->s_in) +
                                   tensor_bytes(p->s_out) + tensor_bytes(p->bias));
      } else {
        for (const auto& b : l->parameters()) out.weight_bytes += double(tensor_bytes(b));
      }
      model->set_linear(name, std::make_shared<TimedLinear>(l, &out.linear_s));
    }
    std::shared_ptr<LinearLike> head = model->output ? model->output : model->tied_head;
    if (head) {
      for (const auto& b : head->buffers()) out.weight_bytes += double(tensor_bytes(b));
      for (const auto& b : head->parameters()) out.weight_bytes += double(tensor_bytes(b));
      auto timed = std::make_shared<TimedLinear>(head, &out.head_s);
      if (model->output) model->output = timed;
      else model->tied_head = timed;
    } else {
      out.weight_bytes += double(tensor_bytes(model->tok_embeddings->weight));  // tied fp32 head
    }
    for (const auto& p : model->named_parameters())
      if (p.key().find("norm") != std::string::npos) out.weight_bytes += double(tensor_bytes(p.value()));
    return out;
  }();
  return m;
}

// Read bandwidth: a 2 GiB buffer summed by `threads` std::threads, each over its own contiguous half, with 512-bit
// loads where the CPU has them (4 independent accumulators: the loads, not the adds, are the limit), best of `reps`.
// (The compiler's baseline SSE2 loop reads ~40% slower than AVX-512 loads on one thread of this Xeon.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12: _mm512_reduce_add_ps's _mm512_undefined_ps() on purpose
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) float sum_avx512(const float* a, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (int64_t i = 0; i + 64 <= n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
    s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}
#pragma GCC diagnostic pop

float sum_plain(const float* a, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int64_t i = 0; i + 4 <= n; i += 4) s0 += a[i], s1 += a[i + 1], s2 += a[i + 2], s3 += a[i + 3];
  return s0 + s1 + s2 + s3;
}

double dram_read_gbs(int threads, int reps = 3) {
  constexpr int64_t kFloats = int64_t{1} << 29;  // 2 GiB
  static float* buf = [] {
    auto* b = static_cast<float*>(std::aligned_alloc(64, kFloats * sizeof(float)));
    for (int64_t i = 0; i < kFloats; ++i) b[i] = 1.0f;
    return b;
  }();
  const bool avx512 = kernels::cpu_supports(kernels::CpuIsa::kAvx512);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<float> partial(threads);
    std::vector<std::thread> pool;
    const auto t0 = Clock::now();
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const int64_t b = kFloats / threads * t, n = kFloats / threads;
        partial[t] = avx512 ? sum_avx512(buf + b, n) : sum_plain(buf + b, n);
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    benchmark::DoNotOptimize(partial.data());
    best = std::max(best, kFloats * sizeof(float) / s / 1e9);
  }
  return best;
}

// The one-token packed product's consumption of weights in cache (see gemv_cache_GB/s above): best of 5 rounds of
// 100 products of a random 2048 x 4096 matrix on `threads` threads (the decode's kernel and thread pool).
double gemv_in_cache_gbs(int threads) {
  static const kernels::PreparedBinaryMatrix B = [] {
    std::vector<packed::Word> bits(packed::packed_words(2048, 4096));
    uint64_t s = 1;
    for (auto& w : bits) s = s * 6364136223846793005ull + 1442695040888963407ull, w = packed::Word(s >> 32);
    return kernels::PreparedBinaryMatrix(bits.data(), 2048, 4096);
  }();
  std::vector<float> x(4096, 0.5f), y(2048);
  for (int i = 0; i < 20; ++i) kernels::binary_matmul(B, x.data(), 1, y.data(), threads);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < 100; ++i) kernels::binary_matmul(B, x.data(), 1, y.data(), threads);
    best = std::max(best, 100.0 * B.bytes() / std::chrono::duration<double>(Clock::now() - t0).count() / 1e9);
  }
  benchmark::DoNotOptimize(y.data());
  return best;
}

void BM_DramRead(benchmark::State& state) {
  loaded();  // the model first, so its resident memory is measured before this buffer exists
  double gbs = 0;
  for (auto _ : state) gbs = dram_read_gbs(static_cast<int>(state.range(0)), 1);
  state.counters["GB/s"] = gbs;
}

// Bytes a decoded token reads at a mean of `positions` cached positions: the weights and that much of the cache.
double token_bytes(const Loaded& m, double positions) {
  return m.weight_bytes + double(m.model->kv_cache_bytes_per_position()) * positions;
}

// The counters of a decode run against the roofline: `gbs` is the probe taken before the tokens; it is taken again
// after them and the better of the two kept (on a shared host one probe can land in a moment of another tenant's
// traffic and read low, which would overstate the share).
void roofline_counters(benchmark::State& state, int threads, double tokens, double decode_s, double bytes,
                       double gbs) {
  gbs = std::max(gbs, dram_read_gbs(threads));
  const double tok_s = tokens / decode_s;
  state.counters["tok/s"] = tok_s;
  state.counters["ms/token"] = 1e3 / tok_s;
  state.counters["bytes/token_GB"] = bytes / 1e9;
  state.counters["dram_GB/s"] = gbs;
  state.counters["roofline_tok/s"] = gbs * 1e9 / bytes;
  state.counters["share_%"] = 100.0 * tok_s / (gbs * 1e9 / bytes);
}

void BM_Decode(benchmark::State& state) {
  Loaded& m = loaded();
  if (!m.error.empty()) return state.SkipWithError(m.error.c_str());
  set_compute_threads(static_cast<int>(state.range(0)));
  LlamaRunOptions run = m.model->run_options();
  run.fast_decode = state.range(1) != 0;
  m.model->set_run_options(run);
  const double gbs = dram_read_gbs(static_cast<int>(state.range(0)));
  torch::NoGradGuard no_grad;
  const int64_t prompt = 16, steps = 32;
  const torch::Tensor ids = torch::randint(3, m.model->config.vocab_size, {1, prompt + steps}, torch::kLong);
  double decode_s = 0, linear_s = 0, head_s = 0;
  int64_t tokens = 0;
  for (auto _ : state) {
    KVCache cache = m.model->new_cache(1, prompt + steps);
    m.model->forward_cached(ids.slice(1, 0, prompt), cache);
    m.linear_s = m.head_s = 0;
    const auto t0 = Clock::now();
    for (int64_t i = prompt; i < prompt + steps; ++i) m.model->forward_cached(ids.slice(1, i, i + 1), cache);
    decode_s += std::chrono::duration<double>(Clock::now() - t0).count();
    linear_s += m.linear_s, head_s += m.head_s;
    tokens += steps;
  }
  roofline_counters(state, static_cast<int>(state.range(0)), double(tokens), decode_s,
                    token_bytes(m, prompt + steps / 2.0), gbs);
  state.counters["gemv_cache_GB/s"] = gemv_in_cache_gbs(static_cast<int>(state.range(0)));
  state.counters["linears_%"] = 100.0 * linear_s / decode_s;
  state.counters["head_%"] = 100.0 * head_s / decode_s;
  state.counters["rest_%"] = 100.0 * (decode_s - linear_s - head_s) / decode_s;
  state.counters["rss_GB"] = m.rss_gb;
  state.counters["load_s"] = m.load_s;
  state.counters["first_token_s"] = m.first_token_s;
  state.counters["rss1_GB"] = m.rss1_gb;
  run.fast_decode = true;
  m.model->set_run_options(run);
}

void set_tables(Loaded& m, kernels::LutPrecision tables) {
  for (const auto& p : m.packed) p->set_prefill_tables(tables);
}

void prefill(benchmark::State& state, bool int8) {
  Loaded& m = loaded();
  if (!m.error.empty()) return state.SkipWithError(m.error.c_str());
  set_compute_threads(static_cast<int>(state.range(0)));
  if (int8 && !kernels::cpu_supports_int8_lut())
    return state.SkipWithError("SKIPPED: this CPU has no AVX-512 VBMI + VNNI");
  torch::NoGradGuard no_grad;
  const int64_t T = 128;
  const torch::Tensor ids = torch::randint(3, m.model->config.vocab_size, {1, T}, torch::kLong);
  auto logits = [&] {  // (T, V): every position's
    KVCache cache = m.model->new_cache(1, T);
    return m.model->forward_cached(ids, cache, /*last_only=*/false).reshape({T, -1});
  };
  if (int8) {
    // What the rounding changes, on this model and these random tokens (untimed): the relative rms difference of
    // all positions' logits to the exact tables', and how often the top-1 token agrees.
    set_tables(m, kernels::LutPrecision::kFp32);
    const torch::Tensor exact = logits();
    set_tables(m, kernels::LutPrecision::kInt8);
    const torch::Tensor rounded = logits();
    state.counters["logit_rel_err"] = ((rounded - exact).norm() / exact.norm()).item<double>();
    state.counters["top1_agree"] = (rounded.argmax(-1) == exact.argmax(-1)).to(torch::kDouble).mean().item<double>();
  }
  int64_t tokens = 0;
  for (auto _ : state) {
    KVCache cache = m.model->new_cache(1, T);
    m.model->forward_cached(ids, cache, /*last_only=*/state.range(1) != 0);
    tokens += T;
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  set_tables(m, kernels::LutPrecision::kFp32);
}
// The export's packed linears as load_model builds them, mapped (huge = false) or read into huge pages (true), and
// their bits as the kernels read them.
struct WeightViews {
  std::string error;
  Llama model{nullptr};
  std::vector<const kernels::PreparedBinaryMatrix*> bits;  // model order
  int64_t max_dim = 0;
  double bytes = 0;
};

const WeightViews& weight_views(bool huge) {
  static std::unique_ptr<WeightViews> cached[2];
  std::unique_ptr<WeightViews>& w = cached[huge];
  if (w) return *w;
  w = std::make_unique<WeightViews>();
  const char* dir = std::getenv("BMOS_DECODE_MODEL");
  if (!dir) {
    w->error = "SKIPPED: set BMOS_DECODE_MODEL to an exported packed folder (see tests/bench/bench_decode.cpp)";
    return *w;
  }
  LoadOptions options;
  options.map_weights = !huge;
  w->model = load_model(dir, options).model;
  for (const auto& name : w->model->linear_names()) {
    auto p = std::dynamic_pointer_cast<PackedBinaryMoSLinearImpl>(w->model->get_linear(name));
    if (!p) continue;
    if (!p->bits_mapped()) {  // used in place from the file's mapping or its huge-page copy, as format 2 is
      w->error = std::string("SKIPPED: ") + dir + " is format_version 1 (its bits are repacked at load, not mapped)";
      return *w;
    }
    w->bits.push_back(&p->prepared());
    w->max_dim = std::max({w->max_dim, p->in_features(), p->out_features()});
    w->bytes += double(p->prepared_bytes());
  }
  return *w;
}

void BM_WeightPages(benchmark::State& state) {
  const WeightViews& w = weight_views(state.range(1) != 0);
  if (!w.error.empty() || w.bits.empty()) {
    state.SkipWithError(w.error.empty() ? "SKIPPED: the export has no packed linears" : w.error.c_str());
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  std::vector<float> x(w.max_dim, 0.5f), y(w.max_dim);
  auto token = [&] {
    const auto t0 = Clock::now();
    for (const auto* B : w.bits) kernels::binary_matmul(*B, x.data(), 1, y.data(), threads);
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  token();  // pages in (mapped) and warms the pool
  std::vector<double> ms;
  const long faults0 = minor_faults();
  for (auto _ : state)
    for (int i = 0; i < 32; ++i) ms.push_back(token());
  state.counters["page_faults"] = double(minor_faults() - faults0);
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  state.counters["median_ms"] = median;
  state.counters["best_ms"] = ms.front();
  state.counters["worst_ms"] = ms.back();
  state.counters["GB/s"] = w.bytes / median / 1e6;
}

// 16 tokens decoded after `positions` positions already in the cache (random keys and values: attention reads them
// as it would a prompt's), the cache in the model's fp32 or in fp16 (--kv_cache fp16).
void decode_context(benchmark::State& state, bool fp16) {
  Loaded& m = loaded();
  if (!m.error.empty()) return state.SkipWithError(m.error.c_str());
  const int threads = static_cast<int>(state.range(0));
  const int64_t positions = state.range(1), steps = 16;
  if (positions + steps > m.model->config.max_seq_len)
    return state.SkipWithError("SKIPPED: more positions than the model's context");
  set_compute_threads(threads);
  const LlamaRunOptions before = m.model->run_options();
  LlamaRunOptions run = before;
  run.fp16_kv_cache = fp16;
  m.model->set_run_options(run);
  torch::NoGradGuard no_grad;
  KVCache cache = m.model->new_cache(1, positions + steps);
  for (auto* side : {&cache.k, &cache.v})
    for (auto& t : *side) t.copy_(torch::randn(t.sizes()));
  const torch::Tensor ids = torch::randint(3, m.model->config.vocab_size, {1, steps}, torch::kLong);
  const double gbs = dram_read_gbs(threads);
  double decode_s = 0;
  int64_t tokens = 0;
  for (auto _ : state) {
    cache.len = positions;
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < steps; ++i) m.model->forward_cached(ids.slice(1, i, i + 1), cache);
    decode_s += std::chrono::duration<double>(Clock::now() - t0).count();
    tokens += steps;
  }
  roofline_counters(state, threads, double(tokens), decode_s, token_bytes(m, positions + steps / 2.0), gbs);
  state.counters["kv_cache_GB"] = double(m.model->kv_cache_bytes_per_position()) * (positions + steps) / 1e9;
  m.model->set_run_options(before);
}

void BM_DecodeContext(benchmark::State& state) { decode_context(state, false); }
void BM_DecodeContextFp16(benchmark::State& state) { decode_context(state, true); }

void BM_Prefill(benchmark::State& state) { prefill(state, false); }
void BM_PrefillInt8(benchmark::State& state) { prefill(state, true); }

BENCHMARK(BM_DramRead)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_Decode)->ArgNames({"threads", "raw"})->Args({1, 1})->Args({2, 1})->Args({1, 0})->Args({2, 0})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(BM_DecodeContext)->ArgNames({"threads", "positions"})->Args({2, 512})->Args({2, 2048})
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(BM_DecodeContextFp16)->ArgNames({"threads", "positions"})->Args({2, 512})->Args({2, 2048})
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BMOS_BENCH_BASELINE(BM_DecodeContextFp16, BM_DecodeContext);
BENCHMARK(BM_WeightPages)->ArgNames({"threads", "huge"})->Args({2, 0})->Args({2, 1})->Unit(benchmark::kMillisecond)
    ->UseRealTime()->Iterations(1);
BENCHMARK(BM_Prefill)
    ->ArgNames({"threads", "last_only"})
    ->Args({1, 1})
    ->Args({2, 1})
    ->Args({2, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);
BENCHMARK(BM_PrefillInt8)
    ->ArgNames({"threads", "last_only"})
    ->Args({1, 1})
    ->Args({2, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);
BMOS_BENCH_BASELINE(BM_PrefillInt8, BM_Prefill);

}  // namespace
}  // namespace bmos
