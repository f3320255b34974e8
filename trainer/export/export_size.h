// Memory accounting of exported models from shapes alone (no weights): the paper's arithmetic (LLaMA-2-7B 13.51 GB
// fp16 -> 1.40 GB, 13B 26.20 -> 2.33 GB with BinaryMoS E = 4, fp16 scales, fp16 embeddings/head/norms), computed from
// the same tensor table the exporter writes (modules/packed/packed_layout.h), so the two cannot drift apart. The
// paper counts 1 bit per weight (format_version 1: 1.36 / 2.29 GB); the format_version 2 file we write stores the CPU
// kernels' tile order, 32 bits per 30 weights, so that a server maps it in place: 1.42 / 2.40 GB.
// Sizes count the tensors' bytes (the safetensors payload); the file adds an 8-byte length and a JSON header of a few
// tens of kB. GB = 1e9 bytes (the paper's unit: 6.74e9 parameters x 2 bytes = 13.5 GB), GiB = 2^30.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "modules/llama_config.h"
#include "modules/packed/packed_layout.h"

namespace bmos {

// Shapes of known models: llama2-7b (dim 4096, hidden 11008, 32 layers, 32 heads, vocab 32000), llama2-13b (5120,
// 13824, 40 layers, 40 heads), llama-7b / llama-13b (the same shapes), stories260k. Unknown names are an error
// listing these.
LlamaConfig llama_shape_preset(const std::string& name);

struct SizeBreakdown {
  int64_t bits = 0;    // packed sign words (U32)
  int64_t scales = 0;  // s_in, s_out, router, sign scales, int8 row scales
  int64_t fp = 0;      // embeddings, head, norms, linears left FP, biases
  int64_t total() const { return bits + scales + fp; }
};
SizeBreakdown size_breakdown(const std::vector<PackedTensor>& plan);

struct ShapeSize {
  std::string name;
  int64_t params = 0;      // of the full-precision model
  int64_t fp16_bytes = 0;  // 2 x params
  SizeBreakdown packed;    // every decoder linear packed as asked
  SizeBreakdown onebit;    // the same with E = 1 (OneBit), for the paper's "2% above OneBit"
};
ShapeSize size_from_shapes(const std::string& name, const LlamaConfig& c, const PackedQuantization& q);

// The table `bmos export --size_report` prints.
std::string format_size_report(const std::vector<ShapeSize>& sizes, const PackedQuantization& q);

}  // namespace bmos
