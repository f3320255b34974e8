// The three tokenizer kinds behind data/tokenizers/tokenizer.h, and the llama2.c piece rule they share. load_tokenizer picks one;
// tests reach a kind directly when they compare two of them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/tokenizers/tokenizer.h"

namespace bmos {

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& model_path);
std::unique_ptr<Tokenizer> make_llama2c_tokenizer(const std::string& bin_path);
// path: a folder with tokenizer.json (or vocab.json + merges.txt), or a tokenizer.json file.
std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& path);

// llama2.c's decode rule for one piece (spaces already as ' '): drop the leading space right after BOS and turn a
// byte piece "<0xXX>" into that raw byte.
std::string llama_piece_text(const std::string& piece, bool after_bos);

// Where the plugin is: $BMOS_SENTENCEPIECE_PLUGIN when set (relocated binaries), else the build's path.
std::string sentencepiece_plugin_path();

}  // namespace bmos
