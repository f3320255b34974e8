// A Hugging Face tokenizer.json (data/tokenizers/bpe_files.h: model, pre-tokenizer, normalizer, added tokens,
// post-processor), then a text through the byte-level BPE it makes.
#include "data/tokenizers/bpe_files.h"
#include "data/tokenizers/tokenizer_kinds.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(bpe_tokenizer_json) {
  const std::string path = bmos_fuzz::write_file("tok/tokenizer.json", data, size);
  try {
    bmos::read_bpe_files(path);
    const auto tok = bmos::make_gpt2_tokenizer(path);
    const std::string text = "Hello world's  <|endoftext|> caf\xc3\xa9 123\n\xff";
    tok->decode(tok->encode(text));
    tok->encode_special(text);
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
