// The knowledge-distillation loss, term by term, so logs show them apart.
//   kl         = KL(teacher || student) over the vocabulary, mean over tokens ("batchmean" of (B*T) rows), x T^2
//   hidden_mse = sum over layers of mean squared error between student and teacher hidden states
//   ce         = next-token cross-entropy of the student (targets = tokens shifted by one)
#pragma once

#include <vector>

#include <torch/torch.h>

namespace bmos {

struct LossTerms {
  torch::Tensor kl, hidden_mse, ce;  // scalars (undefined when their weight is 0)
  torch::Tensor total;               // weighted sum
};

// kd_kl on logits that the heads make `chunk` tokens at a time from their inputs: student (..., dim) x head (vocab,
// dim), teacher likewise. Never holds a whole (tokens, vocab) matrix, forward or backward; equal to
// kd_kl(normed_s W_s^T, normed_t W_t^T) within fp32 rounding.
torch::Tensor kd_kl_chunked(const torch::Tensor& student_normed, const torch::Tensor& student_head,
                            const torch::Tensor& teacher_normed, const torch::Tensor& teacher_head, double temperature,
                            int64_t chunk);
// logits (B, T, V). temperature > 0.
torch::Tensor kd_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, double temperature);
// n_layers x (B, T, D) each.
torch::Tensor hidden_mse(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher);
// logits (B, T, V), targets (B, T) int64.
torch::Tensor next_token_ce(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace bmos
