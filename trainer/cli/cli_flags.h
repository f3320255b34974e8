// Flags shared by several subcommands (defined once in cli_flags.cpp; trainer/cli/main.cpp says which subcommand reads
// which). Subcommand-only flags live in their cmd file.
#pragma once

#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <gflags/gflags.h>

#include "kernels/cpu/binary_matmul.h"

DECLARE_string(model);      // model path: llama2.c .bin, HF folder, training checkpoint or exported packed folder
DECLARE_string(tokenizer);  // tokenizer path (.model, tokenizer.bin, GPT-2 folder/tokenizer.json)
DECLARE_int32(threads);     // CPU threads (0 = all cores)
DECLARE_string(device);     // cpu | cuda | cuda:N
DECLARE_bool(mmap);  // false (--nommap): read an exported packed model into huge pages instead of mapping it
DECLARE_string(prefill_tables);  // fp32 | int8: the packed linears' lookup tables for 2 or more tokens
DECLARE_string(kv_cache);   // model | fp16: generation's KV cache dtype
DECLARE_uint64(seed);       // RNG seed
DECLARE_string(out);        // output folder (bmos export, bmos init-model); an earlier output there is replaced
DECLARE_string(set);        // job overrides 'key.path=value; ...' (bmos train, bmos plan)

namespace bmos {

// "a,b,,c" -> {"a", "b", "c"}: the list flags (--ppl, --tasks, --size_report).
std::vector<std::string> split_commas(const std::string& s);
// "a=1; b=2 ;" -> {"a=1", "b=2"}: --set's overrides, trimmed.
std::vector<std::string> split_overrides(const std::string& s);
// --device as a device this process can use: cpu, cuda or cuda:N. Errors name the flag: a malformed value, a libtorch
// without CUDA, no visible GPU, an index past the device count; never a silent fall-back to the CPU.
c10::Device device_from_flag();
// --prefill_tables as a table precision; errors name the flag and the value.
kernels::LutPrecision prefill_tables_from_flag();
// --kv_cache: true for fp16, false for model; errors name the flag and the value.
bool fp16_kv_cache_from_flag();

}  // namespace bmos
