// bmos generate: text from any model path, streamed to stdout (llama2.c's output, byte for byte).
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "data/tokenizers/tokenizer.h"
#include "modules/generate.h"
#include "modules/io/model_loader.h"
#include "modules/threads.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/cli_flags.h"
#include "trainer/cli/commands.h"

DEFINE_string(prompt, "", "prompt text (BOS is prepended)");
DEFINE_int64(steps, 256, "positions to fill, prompt included (capped at the model's context)");
DEFINE_double(temperature, 1.0, "sampling temperature (0 = greedy)");
DEFINE_double(top_p, 0.9, "nucleus sampling threshold (1 = off)");
DEFINE_string(dtype, "fp32", "weights of a full-precision model: fp32 | bf16 (a Hugging Face folder streams straight "
                             "into it)");

namespace bmos {
namespace {

// llama2.c's safe_printf: skip pieces that are a single unprintable byte.
void print_piece(const std::string& piece) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    const unsigned char c = piece[0];
    if (!(std::isprint(c) || std::isspace(c))) return;
  }
  std::fwrite(piece.data(), 1, piece.size(), stdout);
}

}  // namespace

int cmd_generate(const std::vector<std::string>& args) {
  if (!args.empty()) throw std::invalid_argument("unexpected argument '" + args[0] + "' (the prompt goes in --prompt)");
  if (FLAGS_model.empty()) throw std::invalid_argument("--model PATH is required (a llama2.c .bin, a HF folder, ...)");
  set_compute_threads(FLAGS_threads);  // 0: every core this process may use (libtorch alone may start with fewer)
  if (FLAGS_dtype != "fp32" && FLAGS_dtype != "bf16") throw std::invalid_argument("--dtype must be fp32 or bf16");
  LoadOptions load;
  load.dtype = FLAGS_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  load.device = device_from_flag();
  load.prefill_tables = prefill_tables_from_flag();
  load.map_weights = FLAGS_mmap;
  load.fp16_kv_cache = fp16_kv_cache_from_flag();
  LoadedModel loaded = load_model(resolve_model_path(FLAGS_model), load);
  if (loaded.format == "packed" && FLAGS_dtype != "fp32")
    throw std::invalid_argument("--dtype: " + loaded.path + " is an exported packed model; its dtypes are fixed");
  const std::string tok_path = FLAGS_tokenizer.empty() ? loaded.tokenizer : FLAGS_tokenizer;
  if (tok_path.empty())
    throw std::invalid_argument("no tokenizer found beside " + FLAGS_model + ": pass --tokenizer PATH");
  const auto tok = load_tokenizer(tok_path);
  if (tok->vocab_size() != loaded.model->config.vocab_size) {
    throw std::invalid_argument("tokenizer " + tok_path + " has " + std::to_string(tok->vocab_size()) +
                                " pieces but the model has a vocabulary of " +
                                std::to_string(loaded.model->config.vocab_size));
  }
  const auto prompt = encode_with(*tok, FLAGS_prompt, /*add_bos=*/true, /*add_eos=*/false);
  GenerateOptions opt;
  opt.steps = FLAGS_steps;
  opt.temperature = FLAGS_temperature;
  opt.top_p = FLAGS_top_p;
  opt.seed = FLAGS_seed;
  const auto t0 = std::chrono::steady_clock::now();
  const auto tokens = generate(loaded.model, prompt, opt, [&](int32_t prev, int32_t next) {
    print_piece(tok->decode_piece(prev, next));
    std::fflush(stdout);
  });
  std::printf("\n");
  std::fflush(stdout);  // before the stderr line, when both go to one file
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "achieved tok/s: %.1f (%zu tokens, %s model, %s, %d CPU threads)\n", (tokens.size() - 1) / s,
               tokens.size(), loaded.format.c_str(), load.device.str().c_str(), compute_threads());
  return 0;
}

}  // namespace bmos
