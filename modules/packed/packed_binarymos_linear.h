// The inference form of a 1-bit decoder linear: sign bits in the CPU kernels' tile order (kernels/cpu/prepared_matrix.h;
// repacked once from the canonical layout of kernels/packed_format.h, or used in place from a mapped file), plus
// the scales in the dtype they came in (an exported file's fp16 or bf16 stays 16-bit: half the bytes a decoded token
// reads for its scales, and bitwise the same result as widening them; kernels/cpu/binarymos_layer.h).
//
//   g     = softmax(x router^T)        router (E, in), absent when E == 1          x (M, in), g (M, E)
//   s_in  = g s_in_experts             s_in_experts  (E, in)
//   s_out = g s_out_experts            s_out_experts (E, out)
//   y     = ((x * s_in) B^T) * s_out + bias          B (out, in) in {-1, +1}, y (M, out)
//
// On the CPU: kernels::binarymos_forward on 1 or 2 threads (at::get_num_threads() capped at 2; 1 when tokens x
// weights < 2^20, where a second thread costs more than it saves), fp32 arithmetic. On a CUDA input: kernels/cuda
// (packed_cuda.h), where the build has a CUDA libtorch and nvcc. No autograd: it serves `bmos generate` and
// `bmos eval` of exported models.
//
// A Sign layer (y = (x B^T) * alpha + bias) is the same layer with E = 1, s_in = 1 and s_out = alpha, exactly; it is
// marked `sign` so the exporter stores only alpha (the file's `scale`), not a row of ones.
//
// Memory: the prepared bits (32/30 bits per weight plus tile padding; file pages when mapped) and the scales;
// the canonical words are rebuilt from the prepared matrix on demand (bits(), the CUDA path), not kept twice.
#pragma once

#include <memory>

#include <torch/torch.h>

#include "kernels/cpu/binary_matmul.h"
#include "kernels/cpu/prepared_matrix.h"
#include "modules/linear_like.h"
#include "modules/packed/packed_cuda.h"

namespace bmos {

class BinaryMoSLinearImpl;
class SignLinearImpl;

class PackedBinaryMoSLinearImpl : public LinearLike {
 public:
  // bits: (out, packed::words_per_row(in)) int32 tensor holding the canonical uint32 words (safetensors "U32" loads as
  // int32 with the same bits). router (E, in) or undefined when E == 1; s_in (E, in); s_out (E, out); bias (out) or
  // undefined. The scales keep their dtype when router (if any), s_in and s_out share fp16, bf16 or fp32, else all
  // become fp32; bias becomes fp32. Shapes are checked; errors name the tensor.
  PackedBinaryMoSLinearImpl(const torch::Tensor& bits, int64_t in, const torch::Tensor& router,
                            const torch::Tensor& s_in, const torch::Tensor& s_out, const torch::Tensor& bias);
  // The same from bits already in the kernels' tile order (a mapped format_version 2 file: used in place).
  PackedBinaryMoSLinearImpl(kernels::PreparedBinaryMatrix prepared, const torch::Tensor& router,
                            const torch::Tensor& s_in, const torch::Tensor& s_out, const torch::Tensor& bias);
  // A Sign layer: alpha (out) is its one per-output scale.
  static std::shared_ptr<PackedBinaryMoSLinearImpl> sign(kernels::PreparedBinaryMatrix prepared,
                                                         const torch::Tensor& alpha, const torch::Tensor& bias);
  static std::shared_ptr<PackedBinaryMoSLinearImpl> sign(const torch::Tensor& bits, int64_t in,
                                                         const torch::Tensor& alpha, const torch::Tensor& bias);

  // Packs a training layer: bits = packed sign(weight) (sign(0) = +1, as training's ste_sign), scales copied.
  static std::shared_ptr<PackedBinaryMoSLinearImpl> from_binarymos(const BinaryMoSLinearImpl& layer);
  // alpha = mean |W| per row, as SignLinear computes it in its forward.
  static std::shared_ptr<PackedBinaryMoSLinearImpl> from_sign(const SignLinearImpl& layer);

  // (..., in) -> (..., out), on x's device (CPU, or CUDA: see packed_cuda.h for its dtypes). x must need no
  // gradient.
  torch::Tensor forward(const torch::Tensor& x) override;
  int64_t in_features() const override { return prepared_.cols(); }
  int64_t out_features() const override { return prepared_.rows(); }
  std::string kind() const override { return "packed"; }
  bool has_raw_forward() const override { return s_out.device().is_cpu(); }
  void forward_raw(const float* x, int64_t M, float* y) override;  // x (M, in) -> y (M, out), fp32, CPU

  int64_t experts() const { return s_out.size(0); }  // E (1 for a sign layer)
  bool is_sign() const { return sign_; }
  // The canonical words, (out, packed::words_per_row(in)) int32.
  torch::Tensor bits() const;
  int64_t prepared_bytes() const { return prepared_.bytes(); }
  // The bits as the CPU kernels read them (benchmarks time the products alone).
  const kernels::PreparedBinaryMatrix& prepared() const { return prepared_; }
  // Whether the bits are used in place from a mapped file rather than held in memory of their own.
  bool bits_mapped() const { return prepared_.is_view(); }
  // The CPU products of 2 or more tokens (prefill, eval) with exact fp32 tables (the default) or tables rounded to
  // int8 (kernels/cpu/binary_matmul.h: about 2x faster, a rounding error of about 0.6 % of the output); one token
  // (decode) is always exact. kInt8 needs kernels::cpu_supports_int8_lut(): std::invalid_argument otherwise.
  void set_prefill_tables(kernels::LutPrecision p);
  kernels::LutPrecision prefill_tables() const { return prefill_tables_; }

  // Buffers: router (E, in) or undefined; s_in (E, in) (ones (1, in) for a sign layer); s_out (E, out), all three in
  // one of fp32, fp16, bf16; bias (out), fp32, or undefined.
  torch::Tensor router, s_in, s_out, bias;

 private:
  kernels::PreparedBinaryMatrix prepared_;
  bool sign_ = false;
  kernels::LutPrecision prefill_tables_ = kernels::LutPrecision::kFp32;
  PackedCudaCache cuda_;  // device copies of the bits and scales, made on the first CUDA call
};
TORCH_MODULE(PackedBinaryMoSLinear);

// Packs a row-major float matrix W (out, in) into canonical words: (out, words_per_row(in)) int32.
torch::Tensor pack_sign_bits(const torch::Tensor& weight);
// Canonical words (out, words_per_row(in)) int32 -> the tile layout a format_version 2 file stores:
// (row_tiles(out), tile_words_per_row(in), 16) int32.
torch::Tensor canonical_to_tiles(const torch::Tensor& bits, int64_t in);

}  // namespace bmos
