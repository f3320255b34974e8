// Tokenization throughput (MB/s of text, "bytes_per_second" below). The target: `data prepare` with the Llama-2
// tokenizer at >= 5 MB/s of text on 2 cores (BM_PrepareC4_Llama2/2; MB_per_cpu_s is the same work per CPU-second of
// the whole process, the figure to read when the machine is shared). Needs ../shared/data (or $BMOS_DATA).
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <benchmark/benchmark.h>

#include "data/corpus_reader.h"
#include "data/prepare.h"
#include "data/tokenizers/tokenizer.h"
#include "data/tokenizers/tokenizer_llama2c.h"
#include "tests/bench/bench_ratio.h"

namespace fs = std::filesystem;

namespace {

std::string data_file(const std::string& rel) {
  const char* env = std::getenv("BMOS_DATA");
  const std::string dir = env ? env : std::string(BMOS_SOURCE_DIR) + "/../shared/data";
  return dir + "/" + rel;
}

// The first `bytes` of WikiText-2 test as one text.
std::string wiki_text(size_t bytes) {
  std::ifstream in(data_file("text/wikitext-2-raw/wiki.test.raw"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str().substr(0, bytes);
}

void encode_bench(benchmark::State& state, const std::string& tokenizer, size_t bytes) {
  if (!fs::exists(data_file(tokenizer))) {
    state.SkipWithError("shared data missing (set BMOS_DATA)");
    return;
  }
  const auto tok = bmos::load_tokenizer(data_file(tokenizer));
  const std::string text = wiki_text(bytes);
  size_t tokens = 0;
  for (auto _ : state) tokens = tok->encode(text).size();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

void BM_Encode_Llama2_SentencePiece(benchmark::State& s) { encode_bench(s, "models/llama2-tokenizer/tokenizer.model", 1 << 18); }
void BM_Encode_Llama2_Llama2cBin(benchmark::State& s) { encode_bench(s, "models/llama2-tokenizer/tokenizer.bin", 1 << 18); }
void BM_Encode_GPT2(benchmark::State& s) { encode_bench(s, "models/gpt2-tokenizer", 1 << 18); }

// llama2.c's merge loop (the reference) against the heap encoder, on one WikiText paragraph-sized text.
void llama2c_bench(benchmark::State& state, bool reference) {
  if (!fs::exists(data_file("models/llama2-tokenizer/tokenizer.bin"))) {
    state.SkipWithError("shared data missing (set BMOS_DATA)");
    return;
  }
  bmos::Llama2cTokenizer tok(data_file("models/llama2-tokenizer/tokenizer.bin"));
  // A different window of the text each iteration: the heap encoder's word cache helps as on real text, no more.
  const std::string text = wiki_text(1 << 20);
  const size_t n = state.range(0);
  size_t offset = 0;
  for (auto _ : state) {
    const std::string window = text.substr(offset, n);
    offset = (offset + n) % (text.size() - n);
    benchmark::DoNotOptimize(reference ? tok.encode_reference(window) : tok.encode(window));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
void BM_Llama2cEncode_Reference(benchmark::State& s) { llama2c_bench(s, true); }
void BM_Llama2cEncode_Heap(benchmark::State& s) { llama2c_bench(s, false); }

// The whole `data prepare` path on the C4 slice: read JSON lines, tokenize on N threads, write the HDF5 shard.
void BM_PrepareC4_Llama2(benchmark::State& state) {
  const std::string c4 = data_file("text/c4/c4-train.00000-of-01024.first1000.jsonl");
  const std::string model = data_file("models/llama2-tokenizer/tokenizer.model");
  if (!fs::exists(c4) || !fs::exists(model)) {
    state.SkipWithError("shared data missing (set BMOS_DATA)");
    return;
  }
  const auto tok = bmos::load_tokenizer(model);
  const std::string shard = (fs::temp_directory_path() / "bmos_bench_prepare.h5").string();
  bmos::CorpusOptions opt;
  opt.format = "jsonl";
  bmos::ShardInfo info;
  // The process's CPU time (all threads): on a shared, loaded machine wall time says little, CPU time still does.
  const auto cpu_seconds = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  };
  const double cpu0 = cpu_seconds();
  for (auto _ : state) info = bmos::tokenize_file(c4, opt, *tok, shard, static_cast<int>(state.range(0)), false);
  const double cpu = cpu_seconds() - cpu0;
  state.SetBytesProcessed(state.iterations() * info.text_bytes);
  state.counters["tokens"] = static_cast<double>(info.n_tokens);
  state.counters["MB_per_cpu_s"] = state.iterations() * info.text_bytes / 1e6 / cpu;
  fs::remove(shard);
}

}  // namespace

BENCHMARK(BM_Encode_Llama2_SentencePiece)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Encode_Llama2_Llama2cBin)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Encode_GPT2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Llama2cEncode_Reference)->Arg(2000)->Arg(8000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Llama2cEncode_Heap)->Arg(2000)->Arg(8000)->Unit(benchmark::kMillisecond)->UseRealTime();
BMOS_BENCH_BASELINE(BM_Llama2cEncode_Heap, BM_Llama2cEncode_Reference);
BENCHMARK(BM_PrepareC4_Llama2)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
