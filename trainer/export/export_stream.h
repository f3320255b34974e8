// `bmos export` without holding the model: the source is read one tensor at a time, each tensor is turned into the
// packed tensors of modules/packed/packed_layout.h and written at its place in model.safetensors
// (SafetensorsWriter), so memory holds about one fp32 matrix and what it is turned into, whatever the model's size
// (a LLaMA-2-7B exports on a 24 GiB machine). Sources:
//   - a training checkpoint (model.json + model.safetensors): its latent weights are packed to sign bits, its scales
//     and routers stored;
//   - a Hugging Face folder binarized with no training (--from-teacher): every decoder linear becomes a BinaryMoS
//     (or Sign) layer with the rank-1 init of BinaryMoSLinearImpl::from_linear (routers at their seeded default
//     init): the zero-step baseline a trained model should beat.
//
// The per-layer check measures each packed layer (the file's rounded scales and the packed CPU kernel) against its
// source layer (latent fp32 weights through sign, fp32 scales) on `check_tokens` random N(0, 1) inputs:
//   max_rel = max |y_packed - y_src| / max |y_src|        rel_l2 = ||y_packed - y_src|| / ||y_src||
// After writing, the folder is read back by load_packed_model (every tensor checked against the layout) before it
// takes the name <out>; a failure leaves no folder behind.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/export/export.h"

namespace bmos {

struct StreamExportOptions {
  std::string scale_dtype = "F16";  // scales and router: F16 | BF16 | F32
  std::string fp_dtype = "F16";     // everything kept full precision
  int embedding_bits = 16;          // 8: tok_embeddings / output head as int8 with one scale per row
  std::string tokenizer;            // file copied into the folder; "" = none (the report says so)
  int64_t check_tokens = 8;         // random inputs of the per-layer check (0: no check)
  uint64_t seed = 0;                // routers of --from-teacher and the check's inputs
};

struct StreamExportReport {
  std::string out_dir, source, source_kind;  // source_kind: checkpoint | teacher
  PackedQuantization quantization;
  std::vector<LayerExportError> layers;  // file order
  double worst_max_rel = 0;
  std::string worst_layer;
  int64_t file_bytes = 0, folder_bytes = 0, fp16_bytes = 0;
  int64_t bits_bytes = 0, scale_bytes = 0, fp_bytes = 0;
  int64_t largest_tensor_bytes = 0;  // the largest source tensor as fp32: the bound peak memory is held to
  double write_seconds = 0, read_back_seconds = 0;
  int64_t peak_rss_bytes = 0;  // VmHWM of this process when the export ended
  std::string tokenizer;
  std::string text() const;
};

// A training checkpoint folder (model.json + model.safetensors) -> packed folder. The quantized layers and their
// kind come from model.json.
StreamExportReport export_checkpoint_streaming(const std::string& checkpoint_dir, const std::string& out_dir,
                                               const StreamExportOptions& options);

// A Hugging Face folder (any family hf_llama.h reads) -> packed folder with every decoder linear binarized:
// method "binarymos" with `experts` experts, or "sign".
StreamExportReport export_teacher_streaming(const std::string& hf_dir, const std::string& method, int64_t experts,
                                            const std::string& out_dir, const StreamExportOptions& options);

}  // namespace bmos
