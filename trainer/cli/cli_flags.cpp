#include "trainer/cli/cli_flags.h"

#include <sstream>
#include <stdexcept>

#include "modules/device.h"

DEFINE_string(model, "", "model: llama2.c .bin, Hugging Face folder, training checkpoint (or its run folder) or "
                         "exported packed folder");
DEFINE_string(tokenizer, "", "tokenizer: SentencePiece .model, llama2.c tokenizer.bin, GPT-2 folder or tokenizer.json "
                             "(default: the one found beside the model)");
DEFINE_int32(threads, 0, "CPU threads (0 = all cores)");
DEFINE_string(device, "cpu", "cpu | cuda | cuda:N");
DEFINE_string(prefill_tables, "fp32", "an exported packed model's CPU products of 2 or more tokens (prompt prefill, "
                                      "eval): fp32 (exact) | int8 (tables rounded to int8: about 2x faster prefill, "
                                      "about 0.6 % output error per linear; needs AVX-512 VBMI + VNNI)");
DEFINE_bool(mmap, true, "map an exported packed model's file (loads in a fraction of a second); --nommap reads it into "
                        "memory backed by transparent huge pages instead: decode about 5 % faster (LLaMA-2-7B, 2 "
                        "threads), a load that reads the whole file first");
DEFINE_string(kv_cache, "model", "generation's KV cache: model (the model's dtype; fp32 for an exported packed "
                                 "model) | fp16 (half the memory and half the cache bytes read per token, keys and "
                                 "values rounded to fp16)");
DEFINE_uint64(seed, 42, "random seed");
DEFINE_string(out, "", "output folder (an earlier export or model written there is replaced)");
DEFINE_string(set, "", "job overrides 'key.path=value; key.path=value' applied before parsing, e.g. "
                       "'quant.experts=2; run.out_dir=runs/e2' (a run's job.yaml records the result)");

namespace bmos {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> split_overrides(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string o; std::getline(ss, o, ';');) {
    o.erase(0, o.find_first_not_of(" \t"));
    o.erase(o.find_last_not_of(" \t") + 1);
    if (!o.empty()) out.push_back(o);
  }
  return out;
}

kernels::LutPrecision prefill_tables_from_flag() {
  try {
    return kernels::parse_lut_precision(FLAGS_prefill_tables);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("--prefill_tables '" + FLAGS_prefill_tables + "': must be fp32 or int8");
  }
}

bool fp16_kv_cache_from_flag() {
  if (FLAGS_kv_cache != "model" && FLAGS_kv_cache != "fp16")
    throw std::invalid_argument("--kv_cache '" + FLAGS_kv_cache + "': must be model or fp16");
  return FLAGS_kv_cache == "fp16";
}

c10::Device device_from_flag() {
  const std::string& d = FLAGS_device;
  if (!is_device_name(d)) throw std::invalid_argument("--device '" + d + "': must be cpu, cuda or cuda:N");
  const c10::Device device(d);
  if (const std::string why = device_unavailable(device); !why.empty())
    throw std::invalid_argument("--device " + d + ": " + why + "; use --device cpu");
  return device;
}

}  // namespace bmos
