#include "trainer/losses.h"

namespace bmos {

torch::Tensor kd_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, double temperature) {
  const int64_t V = student_logits.size(-1);
  const torch::Tensor ls = torch::log_softmax(student_logits.reshape({-1, V}) / temperature, -1);  // (N, V)
  const torch::Tensor lt = torch::log_softmax(teacher_logits.reshape({-1, V}) / temperature, -1);
  const torch::Tensor kl = (lt.exp() * (lt - ls)).sum(-1).mean();
  return kl * (temperature * temperature);
}

torch::Tensor hidden_mse(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher) {
  TORCH_CHECK(student.size() == teacher.size() && !student.empty(), "hidden_mse: ", student.size(), " student vs ",
              teacher.size(), " teacher layers");
  torch::Tensor sum = torch::mse_loss(student[0], teacher[0]);
  for (size_t i = 1; i < student.size(); ++i) sum = sum + torch::mse_loss(student[i], teacher[i]);
  return sum;
}

torch::Tensor next_token_ce(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

}  // namespace bmos
