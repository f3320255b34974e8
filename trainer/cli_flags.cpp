#include "trainer/cli_flags.h"

DEFINE_string(model, "", "model: llama2.c .bin, Hugging Face folder, training checkpoint or exported packed folder");
DEFINE_string(tokenizer, "", "tokenizer: SentencePiece .model, llama2.c tokenizer.bin, GPT-2 folder or tokenizer.json "
                             "(default: the one found beside the model)");
DEFINE_int32(threads, 0, "CPU threads (0 = all cores)");
DEFINE_string(device, "cpu", "cpu | cuda");
DEFINE_uint64(seed, 42, "random seed");
