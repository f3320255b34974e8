// Exported packed models, format_version 2 (written) and 1 (still read), at the level of tensors: the config.json `quantization` section and the
// table of what model.safetensors holds (name, shape, dtype) for a LlamaConfig. One table serves the exporter (what it
// writes), the reader (what it expects, checked both ways) and the size report (bytes from shapes alone).
//
// The folder (written by `bmos export`, read by modules/packed/packed_model.h):
//   config.json        Hugging Face LLaMA config (hidden_size, ...) + "quantization": {"method", "experts",
//                      "format_version": 2, "bit_order": packed::kBitOrder, "scale_dtype", "fp_dtype",
//                      "embedding_bits"}
//   model.safetensors  tensors under our canonical names (modules/io/state_dict.h; rotary rows interleaved as in
//                      llama2.c, not Hugging Face's rotate-half order). Format 2 puts every qweight first (in
//                      model order; the data buffer starts 64-byte aligned and each qweight is whole 64-byte lines,
//                      so a server maps them in place), then the rest in this order (format 1: all in this order):
//     tok_embeddings.weight          (vocab, embedding_dim)  fp_dtype; or I8 when embedding_bits == 8, with
//     tok_embeddings.weight_scale    (vocab)            scale_dtype   (row r = weight[r] * weight_scale[r])
//     pos_embeddings.weight          (max_seq_len + 2, dim)   fp_dtype, only with learned positions (OPT)
//     project_in.weight              (dim, embedding_dim)     fp_dtype, only when embedding_dim != dim (OPT-350M)
//     per block i:
//       layers.i.attention_norm.weight (dim) [+ .bias with LayerNorm]    fp_dtype
//       for each of attention.wq wk wv wo, then ffn_norm.weight [+ .bias], then feed_forward.w1 w2 [w3]:
//         a packed BinaryMoS linear   <name>.qweight U32 sign bits (kernels/packed_format.h): format 2 the tile
//                                       layout (row_tiles(out), tile_words_per_row(in), 16); format 1 the
//                                       canonical one (out, words_per_row(in))
//                                     <name>.s_in    (E, in)                  scale_dtype
//                                     <name>.s_out   (E, out)                 scale_dtype
//                                     <name>.router  (E, in), only if E > 1   scale_dtype
//                                     <name>.bias    (out), only if it has one fp_dtype
//         a packed Sign linear        <name>.qweight, <name>.scale (out) scale_dtype [, <name>.bias]
//         a linear left FP            <name>.weight  (out, in)                fp_dtype
//     norm.weight [+ .bias]          (dim)              fp_dtype; absent without a final norm (post-LN OPT)
//     project_out.weight             (embedding_dim, dim)     fp_dtype, only when embedding_dim != dim
//     output.weight [+ weight_scale] (vocab, embedding_dim)   as tok_embeddings; absent when tie_word_embeddings
//   the tokenizer file, copied from the checkpoint.
// Readers refuse any other format_version, or a bit_order not the one of its format_version.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kernels/packed_format.h"
#include "modules/llama_config.h"

namespace bmos {

struct PackedQuantization {  // config.json "quantization"
  std::string method = "binarymos";  // binarymos (E experts, E = 1 is OneBit) | sign (one scale per output)
  int64_t experts = 4;               // E of every packed BinaryMoS linear; 1 for sign
  int format_version = packed::kFormatVersion;
  std::string bit_order = packed::kBitOrder;
  std::string scale_dtype = "F16";   // scales, router and int8 row scales: F16 | BF16 | F32
  std::string fp_dtype = "F16";      // norms, embeddings, output head, linears left FP, biases: F16 | BF16 | F32
  int embedding_bits = 16;           // 16: embeddings/head in fp_dtype; 8: int8 with one scale per row
};

// Writes q's format_version and its bit order.
nlohmann::json quantization_to_json(const PackedQuantization& q);
// Reads and checks the section; an unknown format_version, bit order, method or dtype is a std::runtime_error that
// names `where` (the config.json path) and says what this build reads.
PackedQuantization quantization_from_json(const nlohmann::json& j, const std::string& where);
// "f16" / "F16" / "float16" -> "F16" (also bf16, f32); anything else is std::invalid_argument naming `flag`.
std::string canonical_dtype(const std::string& text, const std::string& flag);

struct PackedLayerSpec {
  std::string kind = "binarymos";  // binarymos | sign
  int64_t experts = 4;             // binarymos only
  bool bias = false;
};

struct LinearShape {
  std::string name;     // e.g. "layers.3.feed_forward.w2"
  int64_t in = 0, out = 0;
  bool bias = false;    // the FP model's linear has a bias (Qwen2's wq/wk/wv)
};
// Every decoder linear of a LLaMA of this config, in model order (Llama::linear_names()'s order).
std::vector<LinearShape> decoder_linear_shapes(const LlamaConfig& c);

struct PackedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // safetensors dtype: U32, I8, F16, BF16, F32
  int64_t bytes() const;
};

// The tensors of model.safetensors, in file order. `packed`: the decoder linears stored packed, by name; every other
// decoder linear is stored FP.
std::vector<PackedTensor> packed_tensor_plan(const LlamaConfig& c, const PackedQuantization& q,
                                             const std::map<std::string, PackedLayerSpec>& packed);
// Every decoder linear packed with q.method / q.experts, a bias where the FP model has one: the paper's setting.
std::map<std::string, PackedLayerSpec> all_linears_packed(const LlamaConfig& c, const PackedQuantization& q);

// Sum of the tensors' bytes: model.safetensors minus its header (8 bytes + the JSON header).
int64_t payload_bytes(const std::vector<PackedTensor>& plan);
// Parameters of the full-precision model of this config (what fp16 sizes are measured against).
int64_t fp_model_params(const LlamaConfig& c);
// Whether a model parameter is stored in fp_dtype under its own name, as it is in the model: norms (weight, bias),
// OPT's learned positions and embedding projections. (Not the decoder linears, embeddings or head.)
bool stored_by_name(const std::string& parameter);

}  // namespace bmos
