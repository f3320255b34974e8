// bmos export: a training checkpoint -> the packed deployable folder (trainer/export/export.h), or the size arithmetic.
//   bmos export --checkpoint DIR --out DIR [--scale_dtype f16|bf16|f32] [--fp_dtype f16|bf16|f32]
//               [--embedding_bits 16|8] [--tokenizer PATH] [--sample_sequences N] [--sample_len N] [--stream auto]
//       DIR: a checkpoint folder, or a run folder (runs/<name>: its newest checkpoint). Small models load whole and
//       get the sampled-text error report (export.h); large ones (--stream auto: fp32 model over 2 GiB) stream
//       tensor by tensor (export_stream.h)
//   bmos export --from-teacher HF_DIR --out DIR [--method binarymos|sign] [--experts 4] [...]
//       the zero-step baseline: an HF folder binarized with the rank-1 init, streamed
//   bmos export --size_report llama2-7b,llama2-13b [--experts 4] [--scale_dtype ...] [--fp_dtype ...]
//               [--embedding_bits 16|8]
//       sizes from shapes alone, no weights (trainer/export/export_size.h)
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include <ATen/Parallel.h>

#include "modules/io/model_files.h"
#include "modules/io/model_format.h"
#include "modules/io/model_loader.h"
#include "modules/threads.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/cli_flags.h"
#include "trainer/cli/commands.h"
#include "trainer/export/export.h"
#include "trainer/export/export_size.h"
#include "trainer/export/export_stream.h"
#include "trainer/job/job_config.h"

DEFINE_string(checkpoint, "", "checkpoint folder, or run folder (its newest checkpoint)");
DEFINE_string(scale_dtype, "f16", "dtype of scales and router: f16 | bf16 | f32");
DEFINE_string(fp_dtype, "f16", "dtype of everything kept full precision (embeddings, head, norms): "
                               "f16 | bf16 | f32");
DEFINE_int32(embedding_bits, 16, "16 = embeddings/head in --fp_dtype; 8 = int8 with one scale per row");
DEFINE_int64(sample_sequences, 4, "sequences sampled from the model for the per-layer error report");
DEFINE_int64(sample_len, 64, "positions per sampled sequence");
DEFINE_string(size_report, "", "print exported sizes for these model shapes (comma list of llama2-7b, "
                               "llama2-13b, llama-7b, llama-13b, stories260k) from shapes alone, and exit");
DEFINE_int32(experts, 4, "BinaryMoS experts E of --from_teacher and --size_report");
DEFINE_string(from_teacher, "", "a Hugging Face folder to binarize with the rank-1 init and no training (the zero-step "
                                "baseline), exported streaming; instead of --checkpoint");
DEFINE_string(method, "binarymos", "--from_teacher: binarymos (E = --experts) | sign");
DEFINE_string(stream, "auto", "on | off | auto: read and write the checkpoint tensor by tensor (peak memory about "
                              "one fp32 matrix; per-layer check on random inputs) instead of loading the model "
                              "(sampled-text report); auto streams when the fp32 model exceeds 2 GiB");
DEFINE_int64(check_tokens, 8, "streaming: random inputs per layer of the packed-vs-source check (0 = none)");

namespace bmos {

namespace fs = std::filesystem;

namespace {

int size_report() {
  PackedQuantization q;
  q.method = "binarymos";
  q.experts = FLAGS_experts;
  q.scale_dtype = canonical_dtype(FLAGS_scale_dtype, "--scale_dtype");
  q.fp_dtype = canonical_dtype(FLAGS_fp_dtype, "--fp_dtype");
  if (FLAGS_embedding_bits != 16 && FLAGS_embedding_bits != 8)
    throw std::invalid_argument("--embedding_bits must be 16 or 8");
  q.embedding_bits = FLAGS_embedding_bits;
  std::vector<ShapeSize> sizes;
  for (const auto& name : split_commas(FLAGS_size_report))
    sizes.push_back(size_from_shapes(name, llama_shape_preset(name), q));
  std::printf("%s", format_size_report(sizes, q).c_str());
  return 0;
}

// The tokenizer beside the checkpoint, else the one its job.yaml names (when that file exists), else "".
std::string checkpoint_tokenizer(const std::string& model_dir) {
  std::string tok = find_tokenizer_near(model_dir);
  if (!tok.empty()) return tok;
  const fs::path job = fs::path(model_dir) / "job.yaml";
  if (!fs::exists(job)) return "";
  try {
    const JobConfig j = load_job(job.string());
    if (fs::is_regular_file(j.tokenizer.path)) return j.tokenizer.path;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[export] %s: could not read its tokenizer path (%s)\n", job.c_str(), e.what());
  }
  return "";
}

StreamExportOptions stream_options(const std::string& tokenizer) {
  StreamExportOptions o;
  o.scale_dtype = FLAGS_scale_dtype;
  o.fp_dtype = FLAGS_fp_dtype;
  o.embedding_bits = FLAGS_embedding_bits;
  o.check_tokens = FLAGS_check_tokens;
  o.seed = FLAGS_seed;
  o.tokenizer = tokenizer;
  return o;
}

// A flag given on the command line that the chosen way of exporting does not read is an error naming it.
void refuse_if_set(const char* flag, const std::string& why) {
  if (!gflags::GetCommandLineFlagInfoOrDie(flag).is_default)
    throw std::invalid_argument(std::string("--") + flag + " " + why);
}

}  // namespace

int cmd_export(const std::vector<std::string>& args) {
  if (!args.empty())
    throw std::invalid_argument("unexpected argument '" + args[0] + "' (use --checkpoint DIR --out DIR)");
  if (!FLAGS_size_report.empty()) return size_report();
  if (FLAGS_checkpoint.empty() == FLAGS_from_teacher.empty() || FLAGS_out.empty())
    throw std::invalid_argument("--out DIR and one of --checkpoint DIR or --from-teacher HF_DIR are required (or "
                                "--size_report llama2-7b,...)");
  if (FLAGS_stream != "auto" && FLAGS_stream != "on" && FLAGS_stream != "off")
    throw std::invalid_argument("--stream must be auto, on or off, got '" + FLAGS_stream + "'");
  set_compute_threads(FLAGS_threads);  // 0: every core this process may use (libtorch alone may start with fewer)
  if (!FLAGS_from_teacher.empty()) {
    if (FLAGS_stream == "off") throw std::invalid_argument("--from-teacher always streams (--stream off)");
    for (const char* f : {"sample_sequences", "sample_len"})
      refuse_if_set(f, "sets the sampled-text report of a loaded checkpoint; --from-teacher streams (its check is "
                       "--check_tokens)");
    const std::string tok = FLAGS_tokenizer.empty() ? find_tokenizer_near(FLAGS_from_teacher) : FLAGS_tokenizer;
    std::fprintf(stderr, "[export] binarizing %s (%s), streaming\n", FLAGS_from_teacher.c_str(), FLAGS_method.c_str());
    const StreamExportReport r = export_teacher_streaming(FLAGS_from_teacher, FLAGS_method, FLAGS_experts, FLAGS_out,
                                                          stream_options(tok));
    std::printf("%s", r.text().c_str());
    return 0;
  }
  refuse_if_set("method", "applies to --from-teacher; a checkpoint's model.json says what its layers are");
  refuse_if_set("experts", "applies to --from-teacher and --size_report; a checkpoint's model.json says what its "
                           "layers are");
  const std::string resolved = resolve_model_path(FLAGS_checkpoint);
  bool stream = FLAGS_stream == "on";
  if (FLAGS_stream == "auto" && detect_model_format(resolved) == "checkpoint")
    stream = 4 * fp_model_params(read_model_meta(resolved).config) > (int64_t{2} << 30);
  if (stream) {
    for (const char* f : {"sample_sequences", "sample_len"})
      refuse_if_set(f, "sets the sampled-text report of a loaded checkpoint, and this export streams (--stream " +
                           FLAGS_stream + "); pass --stream off, or --check_tokens for the streamed check");
    if (detect_model_format(resolved) != "checkpoint")
      throw std::invalid_argument(resolved + " is not a training checkpoint: --stream reads model.json + "
                                  "model.safetensors");
    const std::string tok = FLAGS_tokenizer.empty() ? checkpoint_tokenizer(resolved) : FLAGS_tokenizer;
    std::fprintf(stderr, "[export] %s, streaming\n", resolved.c_str());
    std::printf("%s", export_checkpoint_streaming(resolved, FLAGS_out, stream_options(tok)).text().c_str());
    return 0;
  }
  refuse_if_set("check_tokens", "sets the check of a streamed export, and this one loads the model (--stream " +
                                    FLAGS_stream + "); pass --stream on, or --sample_sequences for its report");
  LoadedModel loaded = load_model(resolved);  // a run folder: its newest checkpoint
  const std::string& dir = loaded.path;
  if (loaded.format == "packed") throw std::invalid_argument(dir + " is already an exported packed model");
  if (loaded.format != "checkpoint")
    throw std::invalid_argument(dir + " is a full-precision " + loaded.format +
                                " model: there is nothing to pack; export a checkpoint of a BinaryMoS run "
                                "(runs/<name> or runs/<name>/checkpoints/step_N)");
  ExportOptions o;
  o.scale_dtype = FLAGS_scale_dtype;
  o.fp_dtype = FLAGS_fp_dtype;
  o.embedding_bits = FLAGS_embedding_bits;
  o.sample_sequences = FLAGS_sample_sequences;
  o.sample_len = FLAGS_sample_len;
  o.seed = FLAGS_seed;
  o.tokenizer = FLAGS_tokenizer.empty() ? checkpoint_tokenizer(dir) : FLAGS_tokenizer;
  std::fprintf(stderr, "[export] %s (%s), %d threads\n", dir.c_str(),
               loaded.model->config.describe().c_str(), at::get_num_threads());
  const ExportReport report = export_packed(loaded.model, FLAGS_out, o);
  std::printf("%s", report.text().c_str());
  return 0;
}

}  // namespace bmos
