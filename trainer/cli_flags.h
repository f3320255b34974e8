// Flags shared by several subcommands (defined once in cli_flags.cpp). Subcommand-only flags live in their cmd file.
#pragma once

#include <gflags/gflags.h>

DECLARE_string(model);      // model path: llama2.c .bin, HF folder, training checkpoint or exported packed folder
DECLARE_string(tokenizer);  // tokenizer path (.model, tokenizer.bin, GPT-2 folder/tokenizer.json)
DECLARE_int32(threads);     // CPU threads (0 = all cores)
DECLARE_string(device);     // cpu | cuda
DECLARE_uint64(seed);       // RNG seed
