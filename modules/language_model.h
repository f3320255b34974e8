// What evaluation and generation need from a model, whatever its kind (FP, training graph, packed export).
#pragma once

#include <torch/torch.h>

namespace bmos {

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  // tokens (B, T) int64 -> logits (B, T, vocab) fp32. No gradients are needed by callers of this interface.
  virtual torch::Tensor logits(const torch::Tensor& tokens) = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_seq_len() const = 0;
};

}  // namespace bmos
