#include "trainer/losses.h"

#include <stdexcept>

namespace bmos {

namespace {

// The number the summed per-token KLs of (B, T, ...) tokens are divided by.
double kl_divisor(const torch::Tensor& t, KlReduction reduction, const char* who) {
  if (reduction == KlReduction::token_mean) return double(t.numel() / t.size(-1));
  TORCH_CHECK(t.dim() == 3, who, ": sequence_sum needs (B, T, ...) inputs, got ", t.sizes());
  return double(t.size(0));
}

// KL(teacher || student) of logits made chunk by chunk from the heads' inputs, summed over the N tokens and divided
// by `divisor`. Saves the inputs and the head weights only; backward recomputes each chunk's probabilities:
// d KL / d student logits = temperature (p_s - p_t) / divisor.
struct ChunkedKL : public torch::autograd::Function<ChunkedKL> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hs, const torch::Tensor& ws,
                               const torch::Tensor& ht, const torch::Tensor& wt, double temperature, int64_t chunk,
                               double divisor) {
    const int64_t N = hs.size(0);
    // The student's head input and weight may differ in dtype (fp32 weights, a bf16 residual stream under CUDA
    // autocast): the product runs in their common type here (autocast, when on, picks bf16 itself) and in backward.
    const torch::ScalarType st = at::promote_types(hs.scalar_type(), ws.scalar_type());
    torch::Tensor sum = torch::zeros({}, hs.options().dtype(torch::kFloat));
    for (int64_t i = 0; i < N; i += chunk) {
      const int64_t n = std::min(chunk, N - i);
      const torch::Tensor ls =
          torch::log_softmax(torch::matmul(hs.narrow(0, i, n).to(st), ws.t().to(st)).to(torch::kFloat) / temperature, -1);
      const torch::Tensor lt = torch::log_softmax(torch::matmul(ht.narrow(0, i, n), wt.t()).to(torch::kFloat) / temperature, -1);
      sum += (lt.exp() * (lt - ls)).sum();
    }
    ctx->save_for_backward({hs, ws, ht, wt});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["divisor"] = divisor;
    return sum / divisor * (temperature * temperature);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &hs = saved[0], &ws = saved[1], &ht = saved[2], &wt = saved[3];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt(), N = hs.size(0);
    const torch::Tensor g = grad[0] * (temperature / ctx->saved_data["divisor"].toDouble());
    const torch::ScalarType st = at::promote_types(hs.scalar_type(), ws.scalar_type());  // as in forward
    const torch::Tensor w = ws.to(st);
    torch::Tensor dhs = torch::empty_like(hs), dws = torch::zeros_like(ws);
    for (int64_t i = 0; i < N; i += chunk) {
      const int64_t n = std::min(chunk, N - i);
      const torch::Tensor h = hs.narrow(0, i, n).to(st);
      const torch::Tensor ps = torch::softmax(torch::matmul(h, w.t()).to(torch::kFloat) / temperature, -1);
      const torch::Tensor pt = torch::softmax(torch::matmul(ht.narrow(0, i, n), wt.t()).to(torch::kFloat) / temperature, -1);
      const torch::Tensor dlogits = ((ps - pt) * g).to(st);  // (n, V)
      dhs.narrow(0, i, n).copy_(torch::matmul(dlogits, w));  // (n, D), cast to hs's dtype
      dws.add_(torch::matmul(dlogits.t(), h));               // (V, D), cast to ws's dtype
    }
    return {dhs, dws, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

KlReduction kl_reduction_from_name(const std::string& name) {
  if (name == "token_mean") return KlReduction::token_mean;
  if (name == "sequence_sum") return KlReduction::sequence_sum;
  throw std::invalid_argument("kl_reduction '" + name + "': must be token_mean or sequence_sum");
}

torch::Tensor kd_kl_chunked(const torch::Tensor& student_normed, const torch::Tensor& student_head,
                            const torch::Tensor& teacher_normed, const torch::Tensor& teacher_head, double temperature,
                            int64_t chunk, KlReduction reduction) {
  const int64_t D = student_normed.size(-1);
  TORCH_CHECK(chunk > 0, "kd_kl_chunked: chunk must be > 0");
  return ChunkedKL::apply(student_normed.reshape({-1, D}), student_head, teacher_normed.reshape({-1, D}).detach(),
                          teacher_head.detach(), temperature, chunk,
                          kl_divisor(student_normed, reduction, "kd_kl_chunked"));
}

torch::Tensor kd_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, double temperature,
                    KlReduction reduction) {
  const int64_t V = student_logits.size(-1);
  const torch::Tensor ls = torch::log_softmax(student_logits.reshape({-1, V}) / temperature, -1);  // (N, V)
  const torch::Tensor lt = torch::log_softmax(teacher_logits.reshape({-1, V}) / temperature, -1);
  const torch::Tensor kl = (lt.exp() * (lt - ls)).sum(-1).sum() / kl_divisor(student_logits, reduction, "kd_kl");
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
