// A tokenizer that needs no file: UTF-8 bytes as tokens. Ids: 0 <unk> (unused), 1 BOS, 2 EOS, 3 + b for byte b
// (vocab 259). For models pretrained from scratch on any text (the quickstart) without a downloaded vocabulary.
// Job files select it with tokenizer: {kind: byte}.
#pragma once

#include <memory>

#include "data/tokenizers/tokenizer.h"

namespace bmos {

std::unique_ptr<Tokenizer> make_byte_tokenizer();

}  // namespace bmos
