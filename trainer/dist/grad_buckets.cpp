#include "trainer/dist/grad_buckets.h"

#include <chrono>

namespace bmos {

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> params, int64_t bucket_bytes) : params_(std::move(params)) {
  int64_t bytes = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t b = params_[i].numel() * int64_t(params_[i].element_size());
    if (buckets_.empty() || (bytes > 0 && bytes + b > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().push_back(i);
    bytes += b;
  }
}

double GradientBuckets::average(ProcessGroup& group) {
  if (!group.active()) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const double world = group.world();
  for (const auto& bucket : buckets_) {
    std::vector<torch::Tensor> grads;
    for (size_t i : bucket) {
      torch::Tensor& p = params_[i];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);  // unused this step: contributes zero
      grads.push_back(p.grad().reshape({-1}));
    }
    std::vector<torch::Tensor> flat{torch::cat(grads)};
    group.all_reduce_sum(flat, "gradient all-reduce");
    flat[0].div_(world);
    int64_t offset = 0;
    for (size_t i : bucket) {
      torch::Tensor g = params_[i].grad();
      g.copy_(flat[0].narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace bmos
