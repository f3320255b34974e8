// What a model path (`--model`, the job's `teacher.path`) points at, and reading the full-precision ones.
//
//   "llama2c"     a file: llama2.c export, legacy or version 1 ("ak42")           -> modules/io/llama2c_reader.h
//   "hf"          a folder with config.json (no `quantization` section)         -> modules/io/hf_llama.h
//   "packed"      a folder whose config.json has `quantization` (bmos export)
//   "checkpoint"  a training checkpoint folder: it holds kCheckpointMarker (written by the trainer)
#pragma once

#include <string>

#include "modules/io/state_dict.h"

namespace bmos {

// The file whose presence marks a training checkpoint folder. The trainer writes it; detection only looks for it.
inline constexpr const char* kCheckpointMarker = "checkpoint.json";

// One of the four names above. A path that is none of them (missing, an empty folder, a lone config.json or
// .safetensors file) is a std::runtime_error that names the path and lists what was expected.
std::string detect_model_format(const std::string& path);

// Reads a full-precision model ("llama2c" or "hf"); a packed model or a training checkpoint is an error saying what
// it is and what is expected instead.
LoadedCheckpoint read_fp_checkpoint(const std::string& path);

}  // namespace bmos
