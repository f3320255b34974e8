// Tokens/s of generation (modules/generate.h: prompt prefill, then KV-cache decode one token at a time, what
// `bmos generate` runs) on stories260K as a BinaryMoS E=4 student: the exported packed model (kernels/cpu) against
// the training graph it came from (torch, sign(W) recomputed every call). Greedy, 256 positions from BOS; both
// produce the same tokens, so the time ratio is the speed ratio. Arg = threads (1 or 2).
// Needs ../shared/data/models/stories260K/stories260K.bin (or $BMOS_DATA); skipped with a message without it.
#include <cstdlib>
#include <filesystem>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "modules/generate.h"
#include "modules/io/model_loader.h"
#include "modules/replace.h"
#include "modules/threads.h"
#include "tests/bench/bench_ratio.h"
#include "trainer/export/export.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;

struct Models {
  Llama train{nullptr}, packed{nullptr};
  std::string error;
};

// Built once: stories260K -> BinaryMoS E=4 (SVD init) -> exported with the defaults (fp16 scales) -> loaded back.
Models& models() {
  static Models m = [] {
    Models out;
    const char* env = std::getenv("BMOS_DATA");
    const fs::path data = env ? fs::path(env) : fs::path(BMOS_SOURCE_DIR) / ".." / "shared" / "data";
    const fs::path bin = data / "models" / "stories260K" / "stories260K.bin";
    if (!fs::exists(bin)) {
      out.error = "SKIPPED: " + bin.string() + " not found (set BMOS_DATA)";
      return out;
    }
    out.train = load_model(bin.string()).model;
    replace_linears(out.train, QuantSpec{});
    out.train->eval();
    const fs::path dir = fs::temp_directory_path() / "bmos_bench_generate";
    ExportOptions o;
    o.sample_sequences = 1;
    o.sample_len = 8;
    export_packed(out.train, (dir / "stories260k-e4").string(), o);
    out.packed = load_model((dir / "stories260k-e4").string()).model;
    return out;
  }();
  return m;
}

void run_generate(benchmark::State& state, bool packed) {
  Models& m = models();
  if (!m.error.empty()) {
    state.SkipWithError(m.error.c_str());
    return;
  }
  bmos::set_compute_threads(static_cast<int>(state.range(0)));
  Llama& model = packed ? m.packed : m.train;
  GenerateOptions g;
  g.steps = 256;
  g.temperature = 0.0;
  int64_t tokens = 0;
  for (auto _ : state) tokens += static_cast<int64_t>(generate(model, {1}, g).size()) - 1;
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["tokens"] = static_cast<double>(tokens) / state.iterations();
}

void BM_Generate_Stories260K_TrainingGraph(benchmark::State& s) { run_generate(s, false); }
void BM_Generate_Stories260K_Packed(benchmark::State& s) { run_generate(s, true); }
BENCHMARK(BM_Generate_Stories260K_TrainingGraph)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Generate_Stories260K_Packed)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BMOS_BENCH_BASELINE(BM_Generate_Stories260K_Packed, BM_Generate_Stories260K_TrainingGraph);

}  // namespace
}  // namespace bmos
