// What a resume compares: the keys of two resolved jobs (JobConfig::resolved: every key with its value or default, so
// comments, layout and a default written out make no difference) and, for each key that differs, whether it changes
// what the run computes. Such a change blocks `bmos train --resume`; a change to how, where or what the run reports
// does not.
//
// Allowed (listed in job_diff.cpp, everything else blocks, new keys included):
//   reporting and housekeeping   run.name, run.out_dir, run.tensorboard, train.log_every, eval.*, checkpoint.*,
//                                generate.* (bmos data generate's section), data.cache_dir
//   how the same math runs       run.device, run.threads, run.dist_timeout_s, train.activation_checkpointing,
//                                train.shard_optimizer, train.attention_chunk, train.logit_chunk
// The second group computes the same function with another floating-point order or placement (as a resume at another
// world size does): the run goes on, but its weights agree with an uninterrupted run's to rounding, not bit for bit;
// the resume says so. Blocking: the model (teacher.*, tokenizer.*, quant.*), the data (data.seq_len, data.sources),
// the budget (train.steps, train.tokens, batch_size, grad_accum) and the recipe (lr*, betas, weight_decay, schedule,
// warmup, clip, freeze, distill.*, run.seed).
#pragma once

#include <string>
#include <vector>

#include "trainer/job/job_config.h"

namespace bmos {

struct JobChange {
  std::string key;     // e.g. "train.lr", "data.sources[1].files"
  std::string before;  // "(absent)" for a key only the other job has
  std::string after;
  bool blocks;         // changes what the run computes
  bool rounding;       // allowed, but changes the floating-point order (the second group above)
};

// Every key whose resolved value differs, in key order.
std::vector<JobChange> job_changes(const JobConfig& before, const JobConfig& now);
// "key before -> after, ..." of the changes with blocks == `blocking`.
std::string describe_changes(const std::vector<JobChange>& changes, bool blocking);

}  // namespace bmos
