// The one interface every decoder linear implements (FP, BinaryMoS, Sign, packed), so layer replacement can swap
// them by name without the model knowing which kind it holds.
#pragma once

#include <torch/torch.h>

namespace bmos {

class LinearLike : public torch::nn::Module {
 public:
  // x (..., in) -> (..., out)
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  virtual std::string kind() const = 0;  // "fp", "binarymos", "sign", "packed"

  // The serving fast path (modules/decode_step.h): x (M, in) -> y (M, out), fp32 rows on the CPU, no torch op and
  // no allocation; y must not overlap x. Only the packed serving layers have it (has_raw_forward()).
  virtual bool has_raw_forward() const { return false; }
  virtual void forward_raw(const float* /*x*/, int64_t /*M*/, float* /*y*/) {
    throw std::logic_error(kind() + " linear has no raw forward");
  }
};

// Token rows that are not an fp32 embedding weight (an exported model's int8 rows): LlamaImpl::token_rows.
class RowTable {
 public:
  virtual ~RowTable() = default;
  // ids (...) int64 -> (..., width) fp32
  virtual torch::Tensor rows(const torch::Tensor& ids) = 0;
};

// While one is alive (on this thread), new layers and models leave their weights uninitialised: torch::empty touches
// no page, so nothing becomes resident until a loader fills each parameter (a 7B model is never initialised only to
// be overwritten).
class SkipInitGuard {
 public:
  SkipInitGuard();
  ~SkipInitGuard();
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;
  static bool active();

 private:
  bool previous_;
};

// y = x W^T (+ b). Parameters "weight" (out, in) and optionally "bias" (out): the names of checkpoints.
class FpLinearImpl : public LinearLike {
 public:
  FpLinearImpl(int64_t in, int64_t out, bool bias = false);
  torch::Tensor forward(const torch::Tensor& x) override;
  int64_t in_features() const override { return weight.size(1); }
  int64_t out_features() const override { return weight.size(0); }
  std::string kind() const override { return "fp"; }

  torch::Tensor weight;  // (out, in)
  torch::Tensor bias;    // (out) or undefined
};
TORCH_MODULE(FpLinear);

}  // namespace bmos
