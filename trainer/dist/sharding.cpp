#include "trainer/dist/sharding.h"

#include "trainer/dist/grad_buckets.h"

#include <chrono>
#include <cmath>

namespace bmos {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

OptimizerShards::OptimizerShards(std::vector<torch::Tensor> params, int world, int64_t bucket_bytes)
    : params_(std::move(params)) {
  int64_t total = 0;
  for (const auto& p : params_) total += p.numel();
  // Contiguous runs: parameter i goes to the rank whose equal share of the elements its first element falls in.
  int64_t seen = 0;
  for (const auto& p : params_) {
    owner_.push_back(static_cast<int>(std::min<int64_t>(world - 1, seen * world / std::max<int64_t>(total, 1))));
    seen += p.numel();
  }
  int64_t bytes = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t b = params_[i].numel() * int64_t(params_[i].element_size());
    if (buckets_.empty() || buckets_.back().owner != owner_[i] || (bytes > 0 && bytes + b > bucket_bytes)) {
      buckets_.push_back({owner_[i], {}});
      bytes = 0;
    }
    buckets_.back().params.push_back(i);
    bytes += b;
  }
}

std::vector<torch::Tensor> OptimizerShards::owned(int rank) const {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i)
    if (owner_[i] == rank) out.push_back(params_[i]);
  return out;
}

int64_t OptimizerShards::owned_numel(int rank) const {
  int64_t n = 0;
  for (const auto& p : owned(rank)) n += p.numel();
  return n;
}

double OptimizerShards::reduce_to_owners(ProcessGroup& group) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  for (const auto& b : buckets_) {
    std::vector<torch::Tensor> flat{flatten_grads(params_, b.params)};
    group.reduce_sum(flat, b.owner, "gradient reduce to its shard's owner");
    if (b.owner == group.rank())
      unflatten_into_grads(flat[0].div_(double(group.world())), params_, b.params);
    else
      for (size_t i : b.params) params_[i].mutable_grad() = torch::Tensor();  // another rank's shard: no gradient kept
  }
  return since(t0);
}

double OptimizerShards::clip(ProcessGroup& group, double max_norm) {
  torch::NoGradGuard no_grad;
  double sq = 0;
  for (size_t i = 0; i < params_.size(); ++i)
    if (owner_[i] == group.rank() && params_[i].grad().defined()) sq += params_[i].grad().pow(2).sum().item<double>();
  const double norm = std::sqrt(group.all_reduce_sum(sq, "gradient norm"));
  const double coef = max_norm / (norm + 1e-6);  // torch::nn::utils::clip_grad_norm_'s rule
  if (std::isfinite(norm) && coef < 1)
    for (size_t i = 0; i < params_.size(); ++i)
      if (owner_[i] == group.rank() && params_[i].grad().defined()) params_[i].grad().mul_(coef);
  return norm;
}

double OptimizerShards::broadcast_params(ProcessGroup& group) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  for (const auto& b : buckets_) {
    std::vector<torch::Tensor> parts;
    for (size_t i : b.params) parts.push_back(params_[i].detach().reshape({-1}));
    std::vector<torch::Tensor> flat{torch::cat(parts)};
    group.broadcast(flat, b.owner, "parameters from their shard's owner");
    if (b.owner != group.rank()) unflatten_into_params(flat[0], params_, b.params);
  }
  return since(t0);
}

}  // namespace bmos
