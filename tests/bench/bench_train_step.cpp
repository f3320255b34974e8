// One KD training step (teacher forward + student forward/backward + AdamW) at the stories260K shape, batch 16 x 256:
// the number issue 4's speed goal is about. Baseline in the same run: the same step with an FP student (no
// binarization), i.e. what plain autograd costs for this model. BMOS_PROFILE_TRACE=FILE writes libtorch's per-op
// profile of the timed steps (a chrome://tracing JSON) to FILE: how the attention and allocator costs were found.
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <cstdlib>

#include "modules/replace.h"
#include "modules/threads.h"
#include "tests/bench/bench_ratio.h"
#include "trainer/losses.h"

namespace bmos {
namespace {

LlamaConfig stories260k() {
  LlamaConfig c;  // dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512
  c.max_seq_len = 256;
  return c;
}

void train_step(benchmark::State& state, const std::string& method, int64_t experts) {
  bmos::set_compute_threads(int(state.range(0)));
  torch::manual_seed(0);
  Llama teacher(stories260k());
  teacher->init_random(1);
  Llama student(stories260k());
  {
    torch::NoGradGuard ng;
    auto src = teacher->named_parameters();
    for (auto& p : student->named_parameters()) p.value().copy_(src[p.key()]);
  }
  QuantSpec spec;
  spec.method = method;
  spec.experts = experts;
  replace_linears(student, spec);
  torch::optim::AdamW opt(student->parameters(), torch::optim::AdamWOptions(1e-3));
  const auto batch = torch::randint(0, 512, {16, 257}, torch::kLong);
  const auto in = batch.narrow(1, 0, 256);
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;  // written when it goes out of scope
  const char* trace = std::getenv("BMOS_PROFILE_TRACE");
  for (auto _ : state) {
    if (trace && !profile) profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
    opt.zero_grad();
    LlamaOutput t;
    {
      torch::NoGradGuard ng;
      t = teacher->forward(in, true);
    }
    auto s = student->forward(in, true);
    auto loss = kd_kl(s.logits, t.logits, 1.0) + 10.0 * hidden_mse(s.hidden, t.hidden);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(student->parameters(), 1.0);
    opt.step();
  }
  state.counters["tok/s"] = benchmark::Counter(16.0 * 256 * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_TrainStep_FpStudent(benchmark::State& s) { train_step(s, "none", 1); }
void BM_TrainStep_BinaryMoS_E4(benchmark::State& s) { train_step(s, "binarymos", 4); }
void BM_TrainStep_BinaryMoS_E1(benchmark::State& s) { train_step(s, "binarymos", 1); }
BENCHMARK(BM_TrainStep_FpStudent)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);
BENCHMARK(BM_TrainStep_BinaryMoS_E4)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);
BMOS_BENCH_BASELINE(BM_TrainStep_BinaryMoS_E4, BM_TrainStep_FpStudent);
BMOS_BENCH_BASELINE(BM_TrainStep_BinaryMoS_E1, BM_TrainStep_FpStudent);
BENCHMARK(BM_TrainStep_BinaryMoS_E1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);

}  // namespace
}  // namespace bmos
