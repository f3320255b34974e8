// Ratios against a baseline from the same run: a benchmark declares its baseline, and bmos_bench's main prints,
// after the usual table, "candidate/args: X.XXx faster than baseline/args" for every pair with the same arguments.
#pragma once

#include <string>
#include <vector>

namespace bmos::bench {

struct BaselinePair {
  std::string candidate, baseline;  // benchmark function names (without the /args suffix)
};
std::vector<BaselinePair>& baseline_pairs();
struct RegisterBaseline {
  RegisterBaseline(const char* candidate, const char* baseline) { baseline_pairs().push_back({candidate, baseline}); }
};

}  // namespace bmos::bench

#define BMOS_BENCH_BASELINE(candidate, baseline) \
  static ::bmos::bench::RegisterBaseline bmos_baseline_##candidate(#candidate, #baseline)
