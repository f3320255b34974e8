// An exported model's int8 embeddings and head (embedding_bits 8) kept int8 in memory: codes (rows, width) int8 and
// one fp32 scale per row, W[r] = codes[r] * scale[r]. As the head (LinearLike) it runs kernels/cpu/int8_rows.h
// (x (..., width) -> (..., rows), fp32 arithmetic on the codes); as the token table (RowTable) it dequantizes just
// the rows looked up. 1 byte per weight resident instead of 4 (LLaMA-2-7B: 2 x 131 MB instead of 2 x 524 MB).
#pragma once

#include <torch/torch.h>

#include "modules/linear_like.h"

namespace bmos {

class Int8RowsLinearImpl : public LinearLike, public RowTable {
 public:
  // codes (rows, width) int8, scale (rows) float (kept as fp32). Shapes checked; errors name the tensor.
  Int8RowsLinearImpl(const torch::Tensor& codes, const torch::Tensor& scale);

  torch::Tensor forward(const torch::Tensor& x) override;  // (..., width) -> (..., rows); CPU
  torch::Tensor rows(const torch::Tensor& ids) override;    // ids (...) -> (..., width)
  int64_t in_features() const override { return codes.size(1); }
  int64_t out_features() const override { return codes.size(0); }
  std::string kind() const override { return "int8_rows"; }
  bool has_raw_forward() const override { return codes.device().is_cpu(); }
  void forward_raw(const float* x, int64_t M, float* y) override;  // x (M, width) -> y (M, rows), fp32, CPU

  torch::Tensor codes;  // (rows, width) int8
  torch::Tensor scale;  // (rows) fp32
};
TORCH_MODULE(Int8RowsLinear);

}  // namespace bmos
