// Data-parallel gradient averaging over flattened buckets: the trainable parameters in the model's fixed order are cut
// into buckets of at most `bucket_bytes`; after backward each bucket's gradients are copied into one flat tensor,
// summed over the ranks with one all-reduce and divided by the world size. Same order on every rank, so every rank
// ends with bitwise the same gradients (and so the same clipping, the same AdamW step, the same weights).
// The all-reduces run after backward (not overlapped with it): measured in the closing note of the issue.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "trainer/dist/process_group.h"

namespace bmos {

// The gradients of params[i] for i in `bucket`, flattened into one tensor (a missing gradient counts as zeros and is
// created), and the way back: flat values copied into those gradients (or into the parameters themselves).
torch::Tensor flatten_grads(std::vector<torch::Tensor>& params, const std::vector<size_t>& bucket);
void unflatten_into_grads(const torch::Tensor& flat, std::vector<torch::Tensor>& params, const std::vector<size_t>& bucket);
void unflatten_into_params(const torch::Tensor& flat, std::vector<torch::Tensor>& params,
                           const std::vector<size_t>& bucket);

class GradientBuckets {
 public:
  GradientBuckets(std::vector<torch::Tensor> params, int64_t bucket_bytes = int64_t{25} << 20);
  // Replaces every gradient by its mean over the ranks; returns the seconds spent in the collectives.
  double average(ProcessGroup& group);
  size_t buckets() const { return buckets_.size(); }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<std::vector<size_t>> buckets_;  // indices into params_
};

}  // namespace bmos
