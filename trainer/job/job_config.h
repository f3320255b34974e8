// A job file (YAML) as plain structs. Parsed once, at the edge, by load_job (job_config.cpp): the rest of the code
// never sees YAML. Unknown keys and wrong types are errors naming the file and the key path (e.g. "train.lr").
// Relative paths in the file are relative to the directory bmos runs from (the repository root for configs/), as in
// DESIGN.md's example `path: ../shared/data/...`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/data_spec.h"

namespace bmos {

struct RunConfig {
  std::string name;             // run.name             e.g. stories260k-e4
  std::string out_dir;          // run.out_dir          default runs/<name> (relative to the current directory)
  uint64_t seed = 42;           // run.seed
  std::string device = "cpu";   // run.device           cpu | cuda | cuda:N (teacher, student, batches, RNG live there)
  int threads = 0;              // run.threads          0 = all cores
  int dist_timeout_s = 300;     // run.dist_timeout_s   data-parallel: how long a rank waits for the others (to join,
                                //                      in a collective) before it stops with an error naming itself
  bool tensorboard = true;      // run.tensorboard      also write every metrics.jsonl scalar to a TensorBoard events
                                //                      file in run.out_dir (trainer/metrics_log.h)
};

struct ModelSource {
  std::string format = "auto";  // teacher.format       auto | llama2c | hf | checkpoint | random
  std::string path;             // teacher.path         file or folder; empty with format: random
  std::string dtype = "auto";   // teacher.dtype        auto | bf16 | fp32 (auto: bf16 where the device computes it
                                //                      fast: CUDA, and CPUs with AVX512_BF16; teacher_bf16() below)
  // teacher.init (format: random only): a fresh model to pretrain with quant.method none
  int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, max_seq_len = 0;
};

struct TokenizerConfig {
  std::string kind = "auto";    // tokenizer.kind       auto | sentencepiece | llama2c | gpt2
  std::string path;             // tokenizer.path
  bool add_bos = true;          // tokenizer.add_bos    BOS before every document
  bool add_eos = true;          // tokenizer.add_eos    EOS after every document (the separator in packed blocks)
};

struct QuantConfig {
  std::string method = "binarymos";  // quant.method   binarymos | sign | none
  int experts = 4;                   // quant.experts  E (1 = OneBit)
  std::vector<std::string> layers = {"layers.*.attention.*", "layers.*.feed_forward.*"};  // quant.layers
  std::string init = "auto";         // quant.init     auto | svd | power (auto: SVD below kPowerInitElements, power
                                     //                iteration on the weight's device above: same factors, faster)
};


struct DataConfig {
  int64_t seq_len = 2048;            // data.seq_len
  std::string cache_dir;             // data.cache_dir   default <run.out_dir>/../data-cache (shards are shared by runs)
  std::vector<DataSource> sources;   // data.sources
};

struct GenerateConfig {              // teacher-generated corpus (bmos data generate)
  std::string out;                   // generate.out          output corpus file (text, one document per line)
  int64_t count = 0;                 // generate.count        number of documents
  int64_t max_tokens = 256;          // generate.max_tokens   per document
  double temperature = 1.0;          // generate.temperature
  double top_p = 0.9;                // generate.top_p
  uint64_t seed = 1;                 // generate.seed
  int64_t batch = 64;                // generate.batch        documents sampled together
};

struct TrainConfig {
  int64_t tokens = 0;                // train.tokens       token budget (steps = tokens / (batch*seq_len*accum))
  int64_t steps = 0;                 // train.steps        alternative to tokens
  double epochs = 0;                 // train.epochs       alternative to tokens: passes over the prepared data (every
                                     //                    source's blocks once; the paper's 3); steps = epochs x
                                     //                    blocks / (batch_size x grad_accum)
  int64_t batch_size = 8;            // train.batch_size
  int64_t grad_accum = 1;            // train.grad_accum
  double lr = 2e-4;                  // train.lr           latent weights (and everything without its own lr)
  double lr_scales = 0;              // train.lr_scales    S_in/S_out (0 = lr)
  double lr_router = 0;              // train.lr_router    router (0 = lr)
  double weight_decay = 0.0;         // train.weight_decay
  double beta1 = 0.9, beta2 = 0.999; // train.betas        [b1, b2]
  double warmup_ratio = 0.03;        // train.warmup_ratio
  std::string schedule = "cosine";   // train.schedule     cosine | linear | constant
  double min_lr_ratio = 0.0;         // train.min_lr_ratio floor of the decay, as a fraction of lr
  double clip = 1.0;                 // train.clip         global grad-norm clip (0 = off)
  int log_every = 10;                // train.log_every
  std::vector<std::string> freeze;   // train.freeze       parameter patterns kept as they are: no gradient, no
                                     //                    optimiser state (e.g. [tok_embeddings.weight, output.weight])
  bool activation_checkpointing = false;  // train.activation_checkpointing  recompute each block in backward
  bool shard_optimizer = false;      // train.shard_optimizer  data-parallel ranks each keep 1/world of the AdamW
                                     //                    state (trainer/dist/sharding.h)
  int64_t attention_chunk = 1024;    // train.attention_chunk  query positions per attention block (0 = all at once)
  int64_t logit_chunk = 0;           // train.logit_chunk  tokens per KD-loss chunk (0 = auto: 256 MiB of fp32 logits;
                                     //                    -1 = the whole batch at once)
};

struct DistillConfig {
  double kl = 1.0;                   // distill.kl           weight of KL(teacher || student)
  double hidden_mse = 10.0;          // distill.hidden_mse   weight of sum over layers of hidden-state MSE
  double ce = 0.0;                   // distill.ce           weight of next-token cross-entropy
  double temperature = 1.0;          // distill.temperature
  std::string kl_reduction = "sequence_sum";  // distill.kl_reduction  token_mean (the mean over all tokens) |
                                     //   sequence_sum (summed over each sequence's tokens, mean over sequences: the
                                     //   reference's F.kl_div(..., reduction="batchmean") on (B, T, V) logits)
  std::string hidden_states = "hf";  // distill.hidden_states  blocks (every block's output) | hf (the
                                     //   reference's hidden_states[1:]: the last one after the final norm)
};

struct PplSet {
  std::string name;                  // eval.ppl[i].name   wikitext2 | c4 | text (any name)
  std::string file;                  // eval.ppl[i].file
  std::string format = "wikitext";   // eval.ppl[i].format wikitext (lines joined "\n\n") | c4 (jsonl, seeded sampler) | text
  int64_t seq_len = 2048;            // eval.ppl[i].seq_len
  int64_t windows = 0;               // eval.ppl[i].windows  0 = protocol default (all, or 256 for c4)
};

struct EvalConfig {
  int64_t every = 0;                 // eval.every   steps between evaluations during training (0 = only at the end)
  std::vector<PplSet> ppl;           // eval.ppl
  std::vector<std::string> tasks;    // eval.tasks   piqa, winogrande, hellaswag, arc_easy, arc_challenge, boolq
  std::string tasks_dir;             // eval.tasks_dir  folder with the task files (../shared/data/tasks layout)
  int64_t limit = 0;                 // eval.limit   per task (0 = all)
};

struct CheckpointConfig {
  int64_t every = 500;               // checkpoint.every  steps
  int keep = 3;                      // checkpoint.keep   newest K kept
};

struct JobConfig {
  std::string file;                  // the job file's path
  std::string text;                  // its resolved contents, saved in the run folder
  std::map<std::string, std::string> resolved;  // every key read, by key path, with its value as parsed or its default
                                     // ("train.lr" -> "0.0002", "data.sources[0].files" -> "[a.txt]"): what a
                                     // resume compares (job_diff.h)
  RunConfig run;
  ModelSource teacher;
  TokenizerConfig tokenizer;
  QuantConfig quant;
  DataConfig data;
  GenerateConfig generate;
  TrainConfig train;
  DistillConfig distill;
  EvalConfig eval;
  CheckpointConfig checkpoint;
};

// teacher.dtype resolved: true for bf16. auto is bf16 on CUDA and on CPUs with bf16 dot products (3.3x faster than
// fp32 on a Zen 4 core, bmos_bench TeacherForward; but 1.6x slower than OpenBLAS's SkylakeX fp32 kernels on an
// Emerald Rapids Xeon without AMX, README), fp32 on other CPUs (bf16 is emulated there).
bool teacher_bf16(const std::string& dtype, bool cuda);
// train.logit_chunk resolved: tokens per KD-loss chunk (auto: 256 MiB of fp32 logits at this vocabulary), or 0 when
// the KD loss takes the whole batch at once (-1).
int64_t logit_chunk_tokens(int64_t setting, int64_t vocab_size);

// Throws std::runtime_error "FILE: KEY.PATH: what is wrong (hint)" for a missing file, bad YAML (with line),
// an unknown key, a wrong type or an invalid value.
// `overrides` are "key.path=value" (value in YAML: 2, 1.0e-3, runs/x, [a, b]) applied before parsing, e.g.
// quant.experts=2; the job's text (job.yaml of the run, the resume hash) is then the YAML with them applied.
JobConfig load_job(const std::string& path, const std::vector<std::string>& overrides = {});
// The job text with overrides applied (errors name the override); the text itself when there are none.
std::string apply_overrides(const std::string& text, const std::vector<std::string>& overrides,
                            const std::string& file);
// Same, from text (file names the origin for messages; relative paths resolve against base_dir, or stay as they are
// when base_dir is empty).
JobConfig parse_job(const std::string& text, const std::string& file, const std::string& base_dir);

}  // namespace bmos
