// bmos_bench: Google Benchmark's main plus a summary of speed ratios against same-run baselines (bench_ratio.h).
#include <cstdio>
#include <map>

#include <benchmark/benchmark.h>

#include "modules/blas_kernels.h"
#include "tests/bench/bench_ratio.h"

namespace bmos::bench {

std::vector<BaselinePair>& baseline_pairs() {
  static std::vector<BaselinePair> pairs;
  return pairs;
}

namespace {

// Collects each run's real time per iteration while printing the normal console table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_type == Run::RT_Iteration && r.iterations > 0) times_[r.benchmark_name()] = r.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
  void print_ratios() const {
    bool header = false;
    for (const auto& [name, t] : times_) {
      const std::string fn = name.substr(0, name.find('/'));
      const std::string args = name.find('/') == std::string::npos ? "" : name.substr(name.find('/'));
      for (const auto& p : baseline_pairs()) {
        if (p.candidate != fn) continue;
        auto b = times_.find(p.baseline + args);
        if (b == times_.end()) continue;
        if (!header) std::printf("\nratios against the same-run baseline (baseline time / candidate time):\n");
        header = true;
        std::printf("  %-50s %7.2fx  vs %s\n", name.c_str(), b->second / t, b->first.c_str());
      }
    }
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace
}  // namespace bmos::bench

int main(int argc, char** argv) {
  bmos::restart_with_blas_fix(argv);  // the torch fp32 rows are measured with the kernels bmos itself would use
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  bmos::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  return 0;
}
