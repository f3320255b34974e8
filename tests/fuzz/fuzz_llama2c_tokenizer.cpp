// llama2.c's tokenizer.bin (max_token_length, then score, length, bytes per piece; data/tokenizers/tokenizer_llama2c.h),
// then a short text through encode() and its O(n^2) reference, and the ids back through decode().
#include "data/tokenizers/tokenizer_llama2c.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(llama2c_tokenizer) {
  const std::string path = bmos_fuzz::write_file("tokenizer.bin", data, size);
  try {
    bmos::Llama2cTokenizer tok(path);
    const std::string text = "Once upon a time, \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 <s>\xff";
    const std::vector<int32_t> ids = tok.encode(text);
    tok.encode_reference(text);
    tok.decode(ids);
    for (int32_t id = 0; id < tok.vocab_size() && id < 64; ++id) tok.decode_piece(1, id);
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
