// `bmos train JOB --nproc N`: starts N ranks of this same binary on this host with the torchrun environment (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, a free MASTER_PORT), prefixes each line they
// print with their rank, forwards Ctrl-C to all of them, and when one fails stops the others and returns non-zero
// naming it. On many hosts, start the ranks with torchrun or Slurm instead: they read the same variables.
#pragma once

#include <string>
#include <vector>

namespace bmos {

// `args` are bmos's arguments for each rank (e.g. {"train", "job.yaml", "--resume"}). Returns the exit status.
int launch_local_ranks(int nproc, const std::vector<std::string>& args);

}  // namespace bmos
