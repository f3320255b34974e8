// GPT-2/OPT slow-tokenizer files (data/tokenizers/bpe_files.h): vocab.json, merges.txt, tokenizer_config.json and
// special_tokens_map.json (the input's four parts) in one folder, then a text through the tokenizer they make.
#include <filesystem>

#include "data/tokenizers/bpe_files.h"
#include "data/tokenizers/tokenizer_kinds.h"
#include "tests/fuzz/fuzz_target.h"

BMOS_FUZZ_TARGET(bpe_vocab_merges) {
  const std::vector<std::string> parts = bmos_fuzz::split_parts(data, size, 4);
  const char* names[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
  std::string dir;
  for (int i = 0; i < 4; ++i) {
    const std::string p = bmos_fuzz::write_file(std::string("slow/") + names[i], parts[i]);
    if (i >= 2 && parts[i].empty()) std::filesystem::remove(p);  // both are optional
    dir = std::filesystem::path(p).parent_path().string();
  }
  try {
    bmos::read_bpe_files(dir);
    const auto tok = bmos::make_gpt2_tokenizer(dir);
    const std::string text = "Hello world's  </s> caf\xc3\xa9 123\n\xff";
    tok->decode(tok->encode(text));
    tok->encode_special(text);
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
