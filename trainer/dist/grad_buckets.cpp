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

torch::Tensor flatten_grads(std::vector<torch::Tensor>& params, const std::vector<size_t>& bucket) {
  std::vector<torch::Tensor> grads;
  for (size_t i : bucket) {
    torch::Tensor& p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);  // unused this step: contributes zero
    grads.push_back(p.grad().reshape({-1}));
  }
  return torch::cat(grads);
}

namespace {
template <class Target>
void unflatten(const torch::Tensor& flat, std::vector<torch::Tensor>& params, const std::vector<size_t>& bucket,
               Target target) {
  int64_t offset = 0;
  for (size_t i : bucket) {
    torch::Tensor t = target(params[i]);
    t.copy_(flat.narrow(0, offset, t.numel()).view_as(t));
    offset += t.numel();
  }
}
}  // namespace

void unflatten_into_grads(const torch::Tensor& flat, std::vector<torch::Tensor>& params,
                          const std::vector<size_t>& bucket) {
  unflatten(flat, params, bucket, [](torch::Tensor& p) { return p.grad(); });
}

void unflatten_into_params(const torch::Tensor& flat, std::vector<torch::Tensor>& params,
                           const std::vector<size_t>& bucket) {
  unflatten(flat, params, bucket, [](torch::Tensor& p) { return p.detach(); });
}

double GradientBuckets::average(ProcessGroup& group) {
  if (!group.active()) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const double world = group.world();
  for (const auto& bucket : buckets_) {
    std::vector<torch::Tensor> flat{flatten_grads(params_, bucket)};
    group.all_reduce_sum(flat, "gradient all-reduce");
    unflatten_into_grads(flat[0].div_(world), params_, bucket);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace bmos
