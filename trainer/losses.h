// The knowledge-distillation loss, term by term, so logs show them apart.
//   kl         = KL(teacher || student) over the vocabulary of each token, x temperature^2, reduced over the (B, T)
//                tokens by KlReduction
//   hidden_mse = sum over layers of mean squared error between student and teacher hidden states (each layer's mean
//                over its B*T*D elements: the reference's nn.MSELoss() per layer, summed)
//   ce         = next-token cross-entropy of the student (targets = tokens shifted by one)
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace bmos {

// How the per-token KLs of (B, T) tokens become one number.
enum class KlReduction {
  token_mean,    // sum / (B T): the mean over all tokens
  sequence_sum,  // sum / B: each sequence's tokens summed, mean over sequences (the reference's
                 //   F.kl_div(log_softmax(s), softmax(t), reduction="batchmean") on (B, T, V) logits)
};
// "token_mean" | "sequence_sum" (distill.kl_reduction); anything else throws naming the value.
KlReduction kl_reduction_from_name(const std::string& name);

struct LossTerms {
  torch::Tensor kl, hidden_mse, ce;  // scalars (undefined when their weight is 0)
  torch::Tensor total;               // weighted sum
};

// kd_kl on logits that the heads make `chunk` tokens at a time from their inputs: student (B, T, dim) x head (vocab,
// dim), teacher likewise. Never holds a whole (tokens, vocab) matrix, forward or backward; equal to
// kd_kl(normed_s W_s^T, normed_t W_t^T, temperature, reduction) within fp32 rounding.
torch::Tensor kd_kl_chunked(const torch::Tensor& student_normed, const torch::Tensor& student_head,
                            const torch::Tensor& teacher_normed, const torch::Tensor& teacher_head, double temperature,
                            int64_t chunk, KlReduction reduction = KlReduction::token_mean);
// logits (B, T, V). temperature > 0.
torch::Tensor kd_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, double temperature,
                    KlReduction reduction = KlReduction::token_mean);
// n_layers x (B, T, D) each.
torch::Tensor hidden_mse(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher);
// logits (B, T, V), targets (B, T) int64.
torch::Tensor next_token_ce(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace bmos
