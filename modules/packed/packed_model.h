// Reader of exported packed models (the folder `bmos export` writes; layout in modules/packed/packed_layout.h): builds the
// Llama of config.json, puts a PackedBinaryMoSLinear wherever model.safetensors holds `<linear>.qweight`, and loads
// the rest (norms and any fp linears fp16/bf16 converted to fp32; the packed linears' scales and routers stay in the
// file's scale_dtype; int8 embeddings and head stay int8: Int8RowsLinear, int8_rows_linear.h).
// The file is mapped, not read: format_version 2 sign bits (the kernels' tile order) and int8 codes are used in
// place from the read-only mapping, so start-up costs copying the scales, not the model's size, and the weights
// page in as the first token touches them (read ahead with madvise WILLNEED meanwhile); format_version 1 bits are
// repacked into memory of their own. The model is built with SkipInitGuard, so the FP linears that packed ones
// replace never become resident: memory after the first token is about the file's size.
// The file is checked against packed_tensor_plan both ways (every tensor expected, nothing extra, shapes and dtypes)
// and against the quantization section (method, experts); an unknown format_version is refused.
#pragma once

#include <string>

#include "modules/llama.h"
#include "modules/packed/packed_layout.h"

namespace bmos {

struct PackedModel {
  Llama model{nullptr};
  PackedQuantization quantization;
  int64_t packed_layers = 0;  // decoder linears stored packed
  int64_t mapped_bytes = 0;   // weights used in place from the file's mapping (sign bits, int8 codes)
};

// map = false reads model.safetensors into huge-page memory instead of mapping it (SafetensorsFile; `--nommap`).
PackedModel load_packed_model(const std::string& dir, bool map = true);

// int8 rows with one scale each: scale = max |row| / 127 (rounded to scale_dtype first, so the stored scale is the
// one the codes were made with), code = round(w / scale). Returns {codes (R, C) int8, scale (R) fp32}.
std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& w, const std::string& scale_dtype);
// codes * scale per row, fp32 (R, C).
torch::Tensor dequantize_rows_int8(const torch::Tensor& codes, const torch::Tensor& scale);

// A tensor converted to a float safetensors dtype and back to fp32: what a reader of the file will see.
torch::Tensor round_to_dtype(const torch::Tensor& t, const std::string& dtype);
// The torch dtype of a safetensors float dtype name (F16, BF16, F32).
torch::ScalarType torch_float_dtype(const std::string& dtype);

}  // namespace bmos
