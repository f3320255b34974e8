// Forward + backward of one BinaryMoSLinear (E = 4) vs torch::nn::Linear, 1024 tokens, square layers.
// Read the ratio column: BinaryMoS time / Linear time from the same run.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "modules/binarymos_linear.h"
#include "modules/threads.h"
#include "tests/bench/bench_ratio.h"

namespace bmos {
namespace {

template <typename Make>
void fwd_bwd(benchmark::State& state, Make make) {
  bmos::set_compute_threads(2);
  const int64_t d = state.range(0);
  torch::manual_seed(0);
  auto layer = make(d);
  const auto x = torch::randn({1024, d}, torch::requires_grad());
  for (auto _ : state) {
    auto y = layer->forward(x);
    y.sum().backward();
  }
  state.counters["tok/s"] = benchmark::Counter(1024.0 * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_Linear_FwdBwd(benchmark::State& s) {
  fwd_bwd(s, [](int64_t d) { return torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)); });
}
void BM_BinaryMoS_E4_FwdBwd(benchmark::State& s) {
  fwd_bwd(s, [](int64_t d) { return BinaryMoSLinearImpl::from_linear(torch::randn({d, d}) * 0.02, {}, 4); });
}
BENCHMARK(BM_Linear_FwdBwd)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_BinaryMoS_E4_FwdBwd)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BMOS_BENCH_BASELINE(BM_BinaryMoS_E4_FwdBwd, BM_Linear_FwdBwd);

}  // namespace
}  // namespace bmos
