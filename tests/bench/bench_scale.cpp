// The choices the memory/device work made, measured in one run:
//   TeacherForward  a frozen teacher's forward at a 1.1B layer shape (TinyLlama: dim 2048, hidden 5632, 32 heads,
//                   4 kv heads), 2 layers, 1 x 512 tokens, fp32 vs bf16 weights: teacher.dtype auto's choice per device
//   ScaleInit       the rank-1 factors of |W| by SVD (double) vs power iteration: quant.init auto's threshold
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "modules/binarymos_linear.h"
#include "modules/llama.h"
#include "modules/threads.h"
#include "tests/bench/bench_ratio.h"

namespace bmos {
namespace {

void teacher_forward(benchmark::State& state, torch::Dtype dtype) {
  set_compute_threads(int(state.range(0)));
  LlamaConfig c;
  c.dim = 2048;
  c.hidden_dim = 5632;
  c.n_layers = 2;
  c.n_heads = 32;
  c.n_kv_heads = 4;
  c.vocab_size = 32000;
  c.max_seq_len = 512;
  c.tie_embeddings = false;
  torch::manual_seed(0);
  Llama model(c);
  model->init_random(1);
  model->to(dtype);
  model->eval();
  const auto tokens = torch::randint(3, c.vocab_size, {1, 512}, torch::kLong);
  torch::NoGradGuard ng;
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(tokens, true).logits);
  state.counters["tok/s"] = benchmark::Counter(512.0 * state.iterations(), benchmark::Counter::kIsRate);
}
void BM_TeacherForward_fp32(benchmark::State& s) { teacher_forward(s, torch::kFloat32); }
void BM_TeacherForward_bf16(benchmark::State& s) { teacher_forward(s, torch::kBFloat16); }
BENCHMARK(BM_TeacherForward_fp32)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2);
BENCHMARK(BM_TeacherForward_bf16)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2);
BMOS_BENCH_BASELINE(BM_TeacherForward_bf16, BM_TeacherForward_fp32);

void scale_init(benchmark::State& state, bool power) {
  set_compute_threads(2);
  torch::manual_seed(0);
  const auto A = torch::randn({state.range(0), state.range(1)}).abs();
  const auto [u, v] = rank1_svd(A);
  const auto want = torch::outer(u, v);
  double err = 0;
  for (auto _ : state) {
    const auto f = power ? rank1_power(A) : rank1_svd(A);
    err = ((torch::outer(f.first, f.second) - want).abs().max() / want.abs().max()).item<double>();
  }
  state.counters["max_rel_vs_svd"] = err;
}
void BM_ScaleInit_Svd(benchmark::State& s) { scale_init(s, false); }
void BM_ScaleInit_Power(benchmark::State& s) { scale_init(s, true); }
BENCHMARK(BM_ScaleInit_Svd)->Args({512, 512})->Args({1024, 1024})->Args({2048, 5632})->Unit(benchmark::kMillisecond)
    ->UseRealTime()->Iterations(1);
BENCHMARK(BM_ScaleInit_Power)->Args({512, 512})->Args({1024, 1024})->Args({2048, 5632})->Unit(benchmark::kMillisecond)
    ->UseRealTime()->Iterations(1);
BMOS_BENCH_BASELINE(BM_ScaleInit_Power, BM_ScaleInit_Svd);

}  // namespace
}  // namespace bmos
