// One entry point that turns any model path into a Llama: a llama2.c .bin, a Hugging Face folder, one of our
// training checkpoints or an exported packed folder (format detected by modules/model_format.h).
#pragma once

#include <string>

#include "modules/llama.h"

namespace bmos {

struct LoadedModel {
  Llama model{nullptr};
  std::string format;     // llama2c | hf | checkpoint | packed
  std::string tokenizer;  // a tokenizer file found beside the model ("" if none)
  std::string path;       // what was loaded: the path itself, or a run folder's newest checkpoint
};

LoadedModel load_model(const std::string& path);

// A tokenizer file in the model's folder (tokenizer.model, tok*.model, tokenizer.bin, tok*.bin, tokenizer.json),
// or "" when there is none.
std::string find_tokenizer_near(const std::string& model_path);

}  // namespace bmos
