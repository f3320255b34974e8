// The Engine over one loaded model and its tokenizer: bmos generate's loop (modules/generate.h generate_until), the
// tokenizer's streaming decode, and the completion's text through TextStream (UTF-8 whole, stop strings cut).
#pragma once

#include <memory>
#include <string>

#include "data/tokenizers/tokenizer.h"
#include "modules/io/model_loader.h"
#include "trainer/serve/engine.h"

namespace bmos::serve {

// Throws std::invalid_argument when the tokenizer's vocabulary is not the model's. `name` is what responses call
// the model.
std::unique_ptr<Engine> make_model_engine(LoadedModel model, std::unique_ptr<Tokenizer> tokenizer, std::string name);

}  // namespace bmos::serve
