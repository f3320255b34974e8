#include "modules/packed/packed_binarymos_linear.h"

#include <algorithm>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <ATen/Parallel.h>

#include "kernels/cpu/binarymos_layer.h"
#include "kernels/packed_format.h"
#include "modules/binarymos_linear.h"
#include "modules/sign_linear.h"

namespace bmos {

namespace {

// Tokens x weights below which the layer runs on one thread (a 1024 x 1024 GEMV).
constexpr int64_t kTwoThreadMinWork = int64_t{1} << 20;

void check_shape(const char* what, const torch::Tensor& t, std::vector<int64_t> want) {
  if (!t.defined() || t.sizes() != torch::IntArrayRef(want)) {
    std::ostringstream m;
    m << "PackedBinaryMoSLinear: " << what << " must have shape " << torch::IntArrayRef(want) << ", got "
      << (t.defined() ? t.sizes() : torch::IntArrayRef{});
    if (!t.defined()) m << " (missing)";
    throw std::invalid_argument(m.str());
  }
}

torch::Tensor fp32(const torch::Tensor& t) {
  return t.defined() ? t.detach().to(torch::kCPU, torch::kFloat).contiguous().clone() : t;
}

// The kernels' type for the scales (router when defined, s_in, s_out) when all three share fp32, fp16 or bf16; none
// otherwise.
std::optional<kernels::ScaleType> kernel_scale_type(const torch::Tensor& router, const torch::Tensor& s_in,
                                                    const torch::Tensor& s_out) {
  const torch::ScalarType t = s_out.scalar_type();
  if (s_in.scalar_type() != t || (router.defined() && router.scalar_type() != t)) return std::nullopt;
  if (t == torch::kFloat) return kernels::ScaleType::kF32;
  if (t == torch::kHalf) return kernels::ScaleType::kF16;
  if (t == torch::kBFloat16) return kernels::ScaleType::kBF16;
  return std::nullopt;
}

torch::Tensor scales_as(const torch::Tensor& t, torch::ScalarType dtype) {
  return t.defined() ? t.detach().to(torch::kCPU, dtype).contiguous().clone() : t;
}

}  // namespace

torch::Tensor pack_sign_bits(const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "pack_sign_bits: weight must be (out, in), got ", weight.sizes());
  const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t N = w.size(0), K = w.size(1);
  torch::Tensor bits = torch::empty({N, packed::words_per_row(K)}, torch::kInt32);
  packed::pack(w.data_ptr<float>(), N, K, reinterpret_cast<packed::Word*>(bits.data_ptr<int32_t>()));
  return bits;
}

namespace {
kernels::PreparedBinaryMatrix prepare(const torch::Tensor& bits, int64_t in) {
  if (!bits.defined() || bits.dim() != 2 || bits.scalar_type() != torch::kInt32)
    throw std::invalid_argument("PackedBinaryMoSLinear: bits must be a 2-D int32 tensor of packed words");
  if (in < 1) throw std::invalid_argument("PackedBinaryMoSLinear: in must be >= 1, got " + std::to_string(in));
  check_shape("bits", bits, {bits.size(0), packed::words_per_row(in)});
  const torch::Tensor b = bits.to(torch::kCPU).contiguous();
  return kernels::PreparedBinaryMatrix(reinterpret_cast<const packed::Word*>(b.data_ptr<int32_t>()), b.size(0), in);
}
}  // namespace

torch::Tensor canonical_to_tiles(const torch::Tensor& bits, int64_t in) {
  const kernels::PreparedBinaryMatrix p = prepare(bits, in);
  torch::Tensor out = torch::empty({p.tiles(), p.words_per_row(), packed::kTileRows}, torch::kInt32);
  p.to_tiles(reinterpret_cast<packed::Word*>(out.data_ptr<int32_t>()));
  return out;
}

PackedBinaryMoSLinearImpl::PackedBinaryMoSLinearImpl(const torch::Tensor& bits, int64_t in,
                                                     const torch::Tensor& router_in, const torch::Tensor& s_in_in,
                                                     const torch::Tensor& s_out_in, const torch::Tensor& bias_in)
    : PackedBinaryMoSLinearImpl(prepare(bits, in), router_in, s_in_in, s_out_in, bias_in) {}

PackedBinaryMoSLinearImpl::PackedBinaryMoSLinearImpl(kernels::PreparedBinaryMatrix prepared,
                                                     const torch::Tensor& router_in, const torch::Tensor& s_in_in,
                                                     const torch::Tensor& s_out_in, const torch::Tensor& bias_in)
    : prepared_(std::move(prepared)) {
  const int64_t in = prepared_.cols(), out = prepared_.rows();
  if (in < 1 || out < 1) throw std::invalid_argument("PackedBinaryMoSLinear: no bits (an empty prepared matrix)");
  if (!s_out_in.defined() || s_out_in.dim() != 2)
    throw std::invalid_argument("PackedBinaryMoSLinear: s_out must be (E, out)");
  const int64_t E = s_out_in.size(0);
  check_shape("s_out", s_out_in, {E, out});
  check_shape("s_in", s_in_in, {E, in});
  if (E > 1) check_shape("router", router_in, {E, in});
  else if (router_in.defined()) throw std::invalid_argument("PackedBinaryMoSLinear: a router with E == 1 experts");
  if (bias_in.defined()) check_shape("bias", bias_in, {out});

  // Kept in their dtype when the kernels read it, else all fp32.
  const torch::ScalarType dtype =
      kernel_scale_type(router_in, s_in_in, s_out_in) ? s_out_in.scalar_type() : torch::kFloat;
  if (E > 1) router = register_buffer("router", scales_as(router_in, dtype));
  s_in = register_buffer("s_in", scales_as(s_in_in, dtype));
  s_out = register_buffer("s_out", scales_as(s_out_in, dtype));
  if (bias_in.defined()) bias = register_buffer("bias", fp32(bias_in));
}

std::shared_ptr<PackedBinaryMoSLinearImpl> PackedBinaryMoSLinearImpl::sign(kernels::PreparedBinaryMatrix prepared,
                                                                           const torch::Tensor& alpha,
                                                                           const torch::Tensor& bias) {
  if (!alpha.defined() || alpha.dim() != 1)
    throw std::invalid_argument("PackedBinaryMoSLinear::sign: alpha must be (out)");
  const int64_t in = prepared.cols();
  auto layer = std::make_shared<PackedBinaryMoSLinearImpl>(
      std::move(prepared), torch::Tensor(), torch::ones({1, in}, alpha.scalar_type()), alpha.unsqueeze(0), bias);
  layer->sign_ = true;
  return layer;
}

std::shared_ptr<PackedBinaryMoSLinearImpl> PackedBinaryMoSLinearImpl::sign(const torch::Tensor& bits, int64_t in,
                                                                           const torch::Tensor& alpha,
                                                                           const torch::Tensor& bias) {
  return sign(prepare(bits, in), alpha, bias);
}

std::shared_ptr<PackedBinaryMoSLinearImpl> PackedBinaryMoSLinearImpl::from_binarymos(const BinaryMoSLinearImpl& l) {
  return std::make_shared<PackedBinaryMoSLinearImpl>(pack_sign_bits(l.weight), l.in_features(), l.router, l.s_in,
                                                     l.s_out, l.bias);
}

std::shared_ptr<PackedBinaryMoSLinearImpl> PackedBinaryMoSLinearImpl::from_sign(const SignLinearImpl& l) {
  torch::NoGradGuard no_grad;
  return sign(pack_sign_bits(l.weight), l.in_features(), l.weight.abs().mean(1), l.bias);
}

torch::Tensor PackedBinaryMoSLinearImpl::bits() const {
  torch::Tensor out = torch::empty({out_features(), packed::words_per_row(in_features())}, torch::kInt32);
  prepared_.to_canonical(reinterpret_cast<packed::Word*>(out.data_ptr<int32_t>()));
  return out;
}

torch::Tensor PackedBinaryMoSLinearImpl::forward(const torch::Tensor& x) {
  const int64_t in = in_features(), out = out_features();
  if (x.requires_grad() && torch::GradMode::is_enabled())
    throw std::invalid_argument("PackedBinaryMoSLinear is inference only: run it under torch::NoGradGuard");
  if (x.dim() < 1 || x.size(-1) != in) {
    std::ostringstream m;
    m << "PackedBinaryMoSLinear: input " << x.sizes() << " does not end in in_features " << in;
    throw std::invalid_argument(m.str());
  }
  auto shape = x.sizes().vec();
  shape.back() = out;
  if (x.is_cuda()) return packed_cuda_forward(cuda_, *this, x.reshape({-1, in})).view(shape);
  if (!x.device().is_cpu())
    throw std::invalid_argument("PackedBinaryMoSLinear runs on the CPU or CUDA; got an input on " + x.device().str());
  const torch::Tensor x2d = x.reshape({-1, in}).to(torch::kFloat).contiguous();  // (M, in)
  const int64_t M = x2d.size(0);
  torch::Tensor y = torch::empty({M, out}, torch::kFloat);                        // (M, out)
  forward_raw(x2d.data_ptr<float>(), M, y.data_ptr<float>());
  return y.view(shape);
}

void PackedBinaryMoSLinearImpl::forward_raw(const float* x, int64_t M, float* y) {
  const int64_t in = in_features(), out = out_features();
  // A second thread only pays for its fork/join when there is work to split (stories260K's 64 x 172 layers decode
  // about 2x slower on 2 threads than on 1).
  const int threads = M * out * in >= kTwoThreadMinWork ? std::clamp(at::get_num_threads(), 1, 2) : 1;
  const std::optional<kernels::ScaleType> type = kernel_scale_type(router, s_in, s_out);
  if (!type)
    throw std::invalid_argument(std::string("PackedBinaryMoSLinear: the scales must share fp32, fp16 or bf16; ") +
                                "s_out is " + c10::toString(s_out.scalar_type()) + ", s_in " +
                                c10::toString(s_in.scalar_type()));
  const kernels::MosScales scales{experts(), *type, router.defined() ? router.data_ptr() : nullptr, s_in.data_ptr(),
                                  s_out.data_ptr()};
  kernels::binarymos_forward(prepared_, scales, bias.defined() ? bias.data_ptr<float>() : nullptr, x, M, y, threads,
                             kernels::best_cpu_isa(), prefill_tables_);
}

void PackedBinaryMoSLinearImpl::set_prefill_tables(kernels::LutPrecision p) {
  if (p == kernels::LutPrecision::kInt8 && !kernels::cpu_supports_int8_lut())
    throw std::invalid_argument("int8 prefill tables need a CPU with AVX-512 VBMI and VNNI; this one lacks them");
  prefill_tables_ = p;
}

}  // namespace bmos
