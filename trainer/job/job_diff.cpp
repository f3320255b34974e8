#include "trainer/job/job_diff.h"

#include <set>

namespace bmos {

namespace {

// Keys (or sections, ending in '.') that do not change what a run computes. See job_diff.h for why each is here.
const char* const kRunOnly[] = {
    "run.name", "run.out_dir", "run.tensorboard", "train.log_every", "eval.", "checkpoint.", "generate.",
    "data.cache_dir",
};
// Keys that change how the same computation runs: allowed, but the bits may differ from an uninterrupted run's.
const char* const kSameMath[] = {
    "run.device", "run.threads", "run.dist_timeout_s", "train.activation_checkpointing", "train.shard_optimizer",
    "train.attention_chunk", "train.logit_chunk",
};

bool listed(const std::string& key, const char* const* begin, const char* const* end) {
  for (auto it = begin; it != end; ++it) {
    const std::string p = *it;
    if (p.back() == '.' ? key.rfind(p, 0) == 0 : key == p) return true;
  }
  return false;
}

}  // namespace

std::vector<JobChange> job_changes(const JobConfig& before, const JobConfig& now) {
  std::set<std::string> keys;
  for (const auto& [k, v] : before.resolved) keys.insert(k);
  for (const auto& [k, v] : now.resolved) keys.insert(k);
  std::vector<JobChange> out;
  for (const auto& k : keys) {
    const auto a = before.resolved.find(k), b = now.resolved.find(k);
    const std::string va = a == before.resolved.end() ? "(absent)" : a->second;
    const std::string vb = b == now.resolved.end() ? "(absent)" : b->second;
    if (va == vb) continue;
    const bool rounding = listed(k, std::begin(kSameMath), std::end(kSameMath));
    out.push_back({k, va, vb, !rounding && !listed(k, std::begin(kRunOnly), std::end(kRunOnly)), rounding});
  }
  return out;
}

std::string describe_changes(const std::vector<JobChange>& changes, bool blocking) {
  std::string s;
  for (const auto& c : changes)
    if (c.blocks == blocking) s += (s.empty() ? "" : ", ") + c.key + " " + c.before + " -> " + c.after;
  return s;
}

}  // namespace bmos
