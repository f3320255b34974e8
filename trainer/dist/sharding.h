// The sharded optimiser of a data-parallel run (train.shard_optimizer, ZeRO-2 style): the trainable parameters, in the
// model's order, are cut into `world` contiguous runs of about equal size, and rank r keeps AdamW state (and, after
// the reduction, gradients) only for run r. Per step:
//   reduce_to_owners  each run's gradients summed onto its owner in flat buckets and averaged there; the other ranks
//                     free theirs
//   clip              the global gradient norm from the owners' partial sums; owners scale their gradients
//   (the owner's AdamW steps its own run)
//   broadcast_params  each run sent from its owner, so every rank holds the same weights again
// Gloo in libtorch 1.13 has no reduce-scatter: a reduce per bucket does its work.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "trainer/dist/process_group.h"

namespace bmos {

class OptimizerShards {
 public:
  OptimizerShards(std::vector<torch::Tensor> params, int world, int64_t bucket_bytes = int64_t{25} << 20);
  int owner(size_t param) const { return owner_[param]; }
  // Parameters of rank r, in order (for its optimiser).
  std::vector<torch::Tensor> owned(int rank) const;
  int64_t owned_numel(int rank) const;

  // Returns seconds spent in the collectives.
  double reduce_to_owners(ProcessGroup& group);
  // Clips the owned gradients to a global norm of max_norm (infinity: no clipping); returns the global norm before.
  double clip(ProcessGroup& group, double max_norm);
  double broadcast_params(ProcessGroup& group);

 private:
  struct Bucket {
    int owner;
    std::vector<size_t> params;
  };
  std::vector<torch::Tensor> params_;
  std::vector<int> owner_;
  std::vector<Bucket> buckets_;
};

}  // namespace bmos
