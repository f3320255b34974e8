// bmos eval: perplexity (WikiText-2 / C4 protocols) and the six zero-shot tasks for any model path.
//   bmos eval JOB.yaml [--model PATH] [--limit N] [--json FILE]
//       the job's eval: section, its tokenizer, and the newest checkpoint in run.out_dir/checkpoints (else the teacher)
//   bmos eval --model PATH [--tokenizer PATH] [--ppl wikitext2[=FILE],c4=FILE] [--seq_len N] [--ppl_windows N]
//             [--tasks all|none|piqa,...] [--tasks_dir DIR] [--limit N] [--json FILE]

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include <ATen/Parallel.h>

#include "data/eval/tasks.h"
#include "data/tokenizers/tokenizer.h"
#include "modules/io/model_loader.h"
#include "modules/replace.h"
#include "modules/threads.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/cli_flags.h"
#include "trainer/cli/commands.h"
#include "trainer/eval/eval_suite.h"
#include "trainer/job/job_config.h"

DEFINE_string(ppl, "none",
              "perplexity sets: 'none' or a comma list of NAME=FILE; NAME c4* uses the GPTQ C4 sampler on a JSON-lines "
              "file, wikitext* the WikiText-2 protocol on the raw test text (wiki.test.raw), any other name the whole "
              "file as text");
DEFINE_int64(seq_len, 0, "perplexity window length (0 = 2048, the protocol, or the model's context if shorter)");
DEFINE_int64(ppl_windows, 0, "use only the first N perplexity windows (0 = the protocol: all, or 256 for c4)");
DEFINE_string(tasks, "none", "zero-shot tasks: 'all', 'none' or a comma list of piqa, arc_easy, arc_challenge, "
                             "hellaswag, winogrande, boolq (they need --tasks_dir)");
DEFINE_string(tasks_dir, "", "folder with the task files (the layout of shared/data/tasks); overrides the job's "
                             "eval.tasks_dir");
DEFINE_int64(limit, 0, "score only the first N items of each task (0 = all; anything else is not the protocol)");
DEFINE_int64(batch_tokens, 1024, "tokens per forward pass (small batches keep attention scores in cache: for "
                                 "stories260K 1024 measured fastest, 4096 about 1.4x slower)");
DEFINE_bool(share_context, true, "zero-shot: run each context once for all its choices (LLaMA KV cache); false "
                                  "scores every choice as a full sequence (the harness's own way, slower)");
DEFINE_string(json, "", "write every number, the model, tokenizer, protocol settings and time to this JSON file");

namespace bmos {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> parse_tasks(const std::string& flag) {
  if (flag == "none" || flag.empty()) return {};
  if (flag == "all") return zero_shot_task_names();
  auto tasks = split_commas(flag);
  for (const auto& t : tasks) task_protocol(t);  // unknown names fail here, before the model loads
  return tasks;
}

std::vector<PplSet> parse_ppl(const std::string& flag) {
  std::vector<PplSet> sets;
  if (flag == "none" || flag.empty()) return sets;
  for (const auto& item : split_commas(flag)) {
    PplSet s;
    const size_t eq = item.find('=');
    s.name = item.substr(0, eq);
    s.file = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (s.name.rfind("c4", 0) == 0) {
      s.format = "c4";
      if (s.file.empty())
        throw std::invalid_argument("--ppl " + s.name + " needs a file: " + s.name +
                                    "=c4-validation.00000-of-00008.json.gz (JSON lines with a \"text\" field)");
    } else if (s.name.rfind("wikitext", 0) == 0) {
      s.format = "wikitext";
      if (s.file.empty())
        throw std::invalid_argument("--ppl " + s.name + " needs a file: " + s.name +
                                    "=PATH/wiki.test.raw (the raw WikiText-2 test text)");
    } else {
      s.format = "text";
      if (s.file.empty()) throw std::invalid_argument("--ppl " + s.name + " needs a file: " + s.name + "=FILE");
    }
    if (!fs::exists(s.file)) throw std::invalid_argument("--ppl " + s.name + ": " + s.file + " not found");
    sets.push_back(s);
  }
  return sets;
}

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

int cmd_eval(const std::vector<std::string>& args) {
  if (args.size() > 1) throw std::invalid_argument("expected at most one job file, got '" + args[1] + "'");
  const auto t0 = std::chrono::steady_clock::now();
  const std::string started = now_iso();
  // Whole batches on worker threads, each op single-threaded (eval_workers.h says why); one worker on a GPU.
  const int threads = FLAGS_threads > 0 ? FLAGS_threads : available_cores();
  const int workers = FLAGS_device == "cpu" ? threads : 1;
  set_compute_threads(FLAGS_device == "cpu" ? 1 : threads);  // libtorch's pool and OpenBLAS's, together

  EvalConfig config;
  std::string model_path = FLAGS_model, tok_path = FLAGS_tokenizer, tok_kind = "auto", job_file, model_note;
  if (!args.empty()) {
    const JobConfig job = load_job(args[0]);
    job_file = job.file;
    config = job.eval;
    if (config.ppl.empty() && config.tasks.empty())
      throw std::invalid_argument(job.file + ": eval: lists no ppl sets and no tasks; nothing to evaluate");
    if (tok_path.empty()) tok_path = job.tokenizer.path, tok_kind = job.tokenizer.kind;
    if (model_path.empty()) {
      model_path = newest_checkpoint((fs::path(job.run.out_dir) / "checkpoints").string());  // as --resume picks it
      if (model_path.empty()) {
        model_path = job.teacher.path;
        model_note = "no checkpoint under " + job.run.out_dir + " yet: evaluating the teacher";
      }
    }
    if (!FLAGS_tasks_dir.empty()) config.tasks_dir = FLAGS_tasks_dir;
    if (FLAGS_limit > 0) config.limit = FLAGS_limit;
    if (FLAGS_ppl_windows > 0)
      for (auto& s : config.ppl) s.windows = FLAGS_ppl_windows;
  } else {
    if (model_path.empty())
      throw std::invalid_argument("pass a job file or --model PATH (a llama2.c .bin, a HF folder, a checkpoint)");
    config.ppl = parse_ppl(FLAGS_ppl);
    config.tasks = parse_tasks(FLAGS_tasks);
    config.tasks_dir = FLAGS_tasks_dir;
    config.limit = FLAGS_limit;
    if (config.ppl.empty() && config.tasks.empty())
      throw std::invalid_argument("nothing to evaluate: pass --ppl NAME=FILE[,...] and/or --tasks all --tasks_dir DIR");
  }
  if (!config.tasks.empty() && config.tasks_dir.empty())
    throw std::invalid_argument("the zero-shot tasks need their files: pass --tasks_dir DIR (or set eval.tasks_dir in "
                                "the job, or --tasks none)");
  if (!config.tasks.empty() && !fs::is_directory(config.tasks_dir))
    throw std::invalid_argument("--tasks_dir: folder '" + config.tasks_dir + "' not found");

  LoadOptions load;
  load.device = device_from_flag();
  load.prefill_tables = prefill_tables_from_flag();
  load.map_weights = FLAGS_mmap;
  LoadedModel loaded = load_model(resolve_model_path(model_path), load);
  if (!model_note.empty()) std::fprintf(stderr, "[eval] %s\n", model_note.c_str());
  if (tok_path.empty()) tok_path = loaded.tokenizer;
  if (tok_path.empty()) throw std::invalid_argument("no tokenizer found beside " + model_path + ": pass --tokenizer PATH");
  const auto tok = load_tokenizer(tok_path, tok_kind);
  LanguageModel* model = loaded.model.get();  // its logits() takes tokens to the model's device

  const int64_t max_len = model->max_seq_len();
  if (args.empty()) {
    int64_t seq_len = FLAGS_seq_len;
    if (seq_len <= 0) {
      seq_len = std::min<int64_t>(2048, max_len);
      if (seq_len < 2048 && !config.ppl.empty())
        std::fprintf(stderr, "[eval] seq_len %lld: the model's context is shorter than the protocol's 2048\n",
                     static_cast<long long>(seq_len));
    }
    for (auto& s : config.ppl) {
      s.seq_len = seq_len;
      s.windows = FLAGS_ppl_windows;
    }
  }
  std::fprintf(stderr, "[eval] model %s (%s, %s), tokenizer %s, %d worker threads\n", model_path.c_str(),
               loaded.format.c_str(), loaded.model->config.describe().c_str(), tok_path.c_str(), workers);

  EvalRunOptions options;
  options.token_budget = FLAGS_batch_tokens;
  options.share_context = FLAGS_share_context;
  options.workers = workers;
  const EvalReport report = run_eval_suite(*model, *tok, config, options);
  std::cout << format_eval_table(report);
  std::cout.flush();

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "[eval] done in %.1fs\n", seconds);
  if (!FLAGS_json.empty()) {
    nlohmann::json j = eval_report_json(report);
    j["model"] = {{"path", model_path},
                  {"format", loaded.format},
                  {"config", loaded.model->config.describe()},
                  {"parameters", count_params(*loaded.model)},
                  {"vocab_size", model->vocab_size()},
                  {"max_seq_len", max_len}};
    if (!model_note.empty()) j["model"]["note"] = model_note;
    j["tokenizer"] = {{"path", tok_path}, {"kind", tok->kind()}, {"hash", tok->hash()}, {"vocab_size", tok->vocab_size()}};
    if (!job_file.empty()) j["job"] = job_file;
    j["run"] = {{"started_at", started},
                {"wall_seconds", seconds},
                {"workers", workers},
                {"intra_op_threads", at::get_num_threads()},
                {"device", FLAGS_device},
                {"batch_tokens", FLAGS_batch_tokens},
                {"share_context", FLAGS_share_context}};
    std::ofstream f(FLAGS_json);
    if (!f) throw std::runtime_error(FLAGS_json + ": cannot write the JSON report (check the folder exists)");
    f << j.dump(2) << "\n";
    std::fprintf(stderr, "[eval] wrote %s\n", FLAGS_json.c_str());
  }
  return 0;
}

}  // namespace bmos
