#include "modules/packed/int8_rows_linear.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include <ATen/Parallel.h>

#include "kernels/cpu/int8_rows.h"

namespace bmos {

Int8RowsLinearImpl::Int8RowsLinearImpl(const torch::Tensor& codes_in, const torch::Tensor& scale_in) {
  if (!codes_in.defined() || codes_in.dim() != 2 || codes_in.scalar_type() != torch::kInt8)
    throw std::invalid_argument("Int8RowsLinear: codes must be a 2-D int8 tensor");
  if (!scale_in.defined() || scale_in.dim() != 1 || scale_in.size(0) != codes_in.size(0)) {
    std::ostringstream m;
    m << "Int8RowsLinear: scale must be (" << codes_in.size(0) << "), got "
      << (scale_in.defined() ? scale_in.sizes() : torch::IntArrayRef{});
    throw std::invalid_argument(m.str());
  }
  codes = register_buffer("codes", codes_in.detach().to(torch::kCPU).contiguous());
  scale = register_buffer("scale", scale_in.detach().to(torch::kCPU, torch::kFloat).contiguous());
}

torch::Tensor Int8RowsLinearImpl::forward(const torch::Tensor& x) {
  const int64_t width = in_features(), rows_n = out_features();
  if (x.dim() < 1 || x.size(-1) != width || !x.device().is_cpu()) {
    std::ostringstream m;
    m << "Int8RowsLinear: input " << x.sizes() << " on " << x.device() << " must be a CPU tensor ending in " << width;
    throw std::invalid_argument(m.str());
  }
  auto shape = x.sizes().vec();
  shape.back() = rows_n;
  const torch::Tensor x2d = x.detach().reshape({-1, width}).to(torch::kFloat).contiguous();  // (M, width)
  torch::Tensor y = torch::empty({x2d.size(0), rows_n}, torch::kFloat);                     // (M, rows)
  forward_raw(x2d.data_ptr<float>(), x2d.size(0), y.data_ptr<float>());
  return y.view(shape);
}

void Int8RowsLinearImpl::forward_raw(const float* x, int64_t M, float* y) {
  kernels::int8_rows_matmul(codes.data_ptr<int8_t>(), scale.data_ptr<float>(), out_features(), in_features(), x, M, y,
                            std::max(at::get_num_threads(), 1));
}

torch::Tensor Int8RowsLinearImpl::rows(const torch::Tensor& ids) {
  const torch::Tensor flat = ids.reshape({-1}).to(torch::kLong);
  auto shape = ids.sizes().vec();
  shape.push_back(in_features());
  return (codes.index_select(0, flat).to(torch::kFloat) * scale.index_select(0, flat).unsqueeze(1)).view(shape);
}

}  // namespace bmos
