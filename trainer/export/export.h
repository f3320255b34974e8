// `bmos export`: a trained (BinaryMoS or Sign) Llama -> the packed deployable folder of modules/packed/packed_layout.h
// (config.json, model.safetensors with 1-bit sign words in the CPU kernels' tile order, the tokenizer file), format_version 2.
//
// The folder is written under "<out>.tmp.<pid>", read back with load_packed_model, checked, and only then renamed to
// <out>, so a failed export never leaves a half folder behind (an earlier export at <out> is replaced).
//
// The report measures the error where it is made (STYLE.md 5): a few sequences are sampled from the training model
// itself (temperature 1, from BOS), every quantized layer's real inputs are captured on them, and each layer of the
// re-loaded packed model is run on the same inputs. Per layer:
//   max_rel = max |y_packed - y_train| / max |y_train|        rel_l2 = ||y_packed - y_train|| / ||y_train||
// The sign bits are exact; what remains is the rounding of scales/router to scale_dtype and the kernels' summation
// order. The whole model's logits are compared the same way on the same sequences.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "modules/llama.h"
#include "modules/packed/packed_layout.h"

namespace bmos {

struct ExportOptions {
  std::string scale_dtype = "F16";  // scales and router: F16 | BF16 | F32
  std::string fp_dtype = "F16";     // everything kept full precision: F16 | BF16 | F32
  int embedding_bits = 16;          // 8: tok_embeddings / output head as int8 with one scale per row
  std::string tokenizer;            // file copied into the folder; "" = none (the report says so)
  int64_t sample_sequences = 4;     // sequences sampled for the error report
  int64_t sample_len = 64;          // positions per sequence (capped at the model's context)
  uint64_t seed = 0;
};

struct LayerExportError {
  std::string name;
  std::string kind;  // binarymos | sign
  int64_t in = 0, out = 0, experts = 0;
  double max_rel = 0, rel_l2 = 0;
};

struct ExportReport {
  std::string out_dir;
  PackedQuantization quantization;
  std::vector<LayerExportError> layers;  // model order
  double worst_max_rel = 0;
  std::string worst_layer;
  int64_t sample_tokens = 0;
  double logits_max_rel = 0, logits_rel_l2 = 0;
  double argmax_agreement = 0;  // fraction of sample positions where both models pick the same next token
  int64_t file_bytes = 0;       // model.safetensors
  int64_t payload_bytes = 0;    // its tensors (file minus header)
  int64_t bits_bytes = 0, scale_bytes = 0, fp_bytes = 0;  // payload split: sign words / scales+router / FP rest
  int64_t folder_bytes = 0;     // every file of the folder (config, tokenizer included)
  int64_t fp16_bytes = 0;       // the full-precision model of the same config in fp16
  std::string tokenizer;        // file name copied, or ""
  std::string text() const;     // the printed report
};

// What both exporters (this one and export_stream.h) share:
// an earlier export (or an empty folder) at `out` may be replaced; anything else there is refused before any work;
void check_export_out(const std::filesystem::path& out);
// adds a layer to be packed; one of another method or expert count than those before is an error naming both;
void add_packed_layer(std::map<std::string, PackedLayerSpec>& packed, const std::string& name,
                      const PackedLayerSpec& spec);
// config.json of a packed folder (the HF config + "quantization"), write checked;
void write_packed_config(const std::filesystem::path& dir, const LlamaConfig& config, const PackedQuantization& q);
// the finished folder `tmp` takes the name `out` (an earlier export there is removed after);
void swap_in_folder(const std::filesystem::path& tmp, const std::filesystem::path& out);
int64_t folder_bytes(const std::filesystem::path& dir);  // its regular files
std::string human_bytes(int64_t bytes);                  // "1.361 GB", "84.2 kB"

// Exports `model` (its decoder linears BinaryMoS or Sign, all of one kind and expert count; others stay FP).
ExportReport export_packed(Llama& model, const std::string& out_dir, const ExportOptions& options);

}  // namespace bmos
