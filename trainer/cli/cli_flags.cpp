#include "trainer/cli/cli_flags.h"

#include <sstream>

DEFINE_string(model, "", "model: llama2.c .bin, Hugging Face folder, training checkpoint (or its run folder) or "
                         "exported packed folder");
DEFINE_string(tokenizer, "", "tokenizer: SentencePiece .model, llama2.c tokenizer.bin, GPT-2 folder or tokenizer.json "
                             "(default: the one found beside the model)");
DEFINE_int32(threads, 0, "CPU threads (0 = all cores)");
DEFINE_string(device, "cpu", "cpu | cuda");
DEFINE_uint64(seed, 42, "random seed");

namespace bmos {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace bmos
