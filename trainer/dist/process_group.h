// The process group of a data-parallel run: LibTorch's c10d (TCPStore rendezvous; ProcessGroupGloo on the CPU,
// ProcessGroupNCCL on CUDA where the build has it, else Gloo, which stages CUDA tensors through the host), set
// up from the torchrun environment, so torchrun, Slurm or `bmos train --nproc N` start the ranks. The one file that
// knows c10d; the trainer sees ranks, a world size and a few collectives.
//
//   RANK, WORLD_SIZE            this process's rank and the number of ranks (absent: one process, no group)
//   LOCAL_RANK, LOCAL_WORLD_SIZE  its rank on this host (the CUDA device it takes: cuda:LOCAL_RANK)
//   MASTER_ADDR, MASTER_PORT    where rank 0 serves the TCPStore
//   GLOO_SOCKET_IFNAME          the network interface this rank talks on (many hosts; default: this host's name)
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace bmos {

struct DistEnv {
  int rank = 0, world = 1, local_rank = 0, local_world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // From the environment; a malformed or inconsistent variable is an error naming it.
  static DistEnv from_environment();
};

class ProcessGroup {
 public:
  // world == 1: no group, every collective is the identity. Otherwise joins the store and the group (NCCL when
  // `device` is CUDA and nccl_built(), else Gloo), waiting at most `timeout` for the other ranks (an error naming this
  // rank and the address when they do not come).
  ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout, torch::Device device = torch::kCPU);
  ~ProcessGroup();

  int rank() const { return env_.rank; }
  int local_rank() const { return env_.local_rank; }
  int world() const { return env_.world; }
  bool active() const { return env_.world > 1; }
  const std::string& backend() const { return backend_; }  // "gloo" | "nccl" | "none" (world 1)
  // True when this build has c10d's NCCL backend (a CUDA libtorch and nccl.h at build time).
  static bool nccl_built();

  // In place, every rank's tensors summed (fp32/fp64, on the group's device: CPU for Gloo, the rank's GPU for NCCL).
  // `what` names the step in errors.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors, const char* what);
  // Scalars, summed over the ranks (through the group's device).
  std::vector<double> all_reduce_sum(const std::vector<double>& values, const char* what);
  double all_reduce_sum(double value, const char* what);
  double all_reduce_max(double value, const char* what);
  void broadcast(std::vector<torch::Tensor>& tensors, int root, const char* what);
  // Sums onto `root` (the others' tensors are left undefined in value).
  void reduce_sum(std::vector<torch::Tensor>& tensors, int root, const char* what);
  void barrier(const char* what);

 private:
  struct Impl;
  DistEnv env_;
  std::string backend_ = "none";
  std::unique_ptr<Impl> impl_;
};

}  // namespace bmos
