// The KD-QAT recipe (torchtune's KD recipe shape): setup -> train -> cleanup.
//   setup:   teacher (frozen) from the job, student = teacher copy with quant.layers replaced, AdamW with parameter
//            groups (latent weights / scales / router / the rest), schedule, data stream, resume state
//   train:   loss_step per micro-batch (teacher under NoGradGuard), accumulation, clipping, NaN/Inf guard, logging,
//            periodic eval and checkpoints, SIGINT = save and stop
//   cleanup: final checkpoint, final evaluation, summary
// quant.method none trains the model itself on next-token cross-entropy (pretraining a small teacher).
#pragma once

#include <csignal>
#include <map>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "data/tokenizers/tokenizer.h"
#include "modules/llama.h"
#include "trainer/batch_source.h"
#include "trainer/dist/grad_buckets.h"
#include "trainer/dist/process_group.h"
#include "trainer/dist/sharding.h"
#include "trainer/checkpoint/optimizer_state.h"
#include "trainer/job/job_config.h"
#include "trainer/losses.h"
#include "trainer/metrics_log.h"
#include "trainer/schedule.h"

namespace bmos {

struct TrainSummary {
  int64_t steps = 0;
  int64_t tokens = 0;
  double seconds = 0;           // wall time of this process's training loop
  double tokens_per_second = 0;
  double comm_seconds = 0;      // in gradient all-reduces (data-parallel runs)
  int rank = 0;                 // of this process (only rank 0's summary holds the evaluation)
  bool interrupted = false;     // stopped by SIGINT (a checkpoint was saved)
  std::map<std::string, double> student_ppl, teacher_ppl;  // final evaluation, by eval set name
  std::string checkpoint;       // the last checkpoint folder
};

class Trainer {
 public:
  Trainer(JobConfig job, bool resume);
  ~Trainer();
  TrainSummary train();

  // One micro-batch: batch (B, T + 1) int64 -> weighted loss terms (student graph attached).
  LossTerms loss_step(const torch::Tensor& batch);

  Llama& student() { return student_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  struct StepResult {
    LossTerms terms;         // averaged over the micro-batches, detached
    double grad_norm = 0;    // before clipping
    double lr_factor = 1;    // the schedule's factor at this step
  };
  // setup (the constructor)
  void setup_model();
  void setup_optimizer();
  void freeze_parameters();     // train.freeze: no gradient, no optimiser state
  // train
  void prepare_run_folder();
  void resume();                // from the newest checkpoint of run.out_dir, when there is one
  void check_resume_job(const std::string& checkpoint);  // its job against this one: job_diff.h (throws naming keys)
  StepResult train_step();      // one optimiser step over grad_accum micro-batches
  void check_finite(const LossTerms& terms) const;
  // One metrics line (eval perplexities included, by name, when this step evaluated).
  void log_step(const StepResult& r, double seconds, int64_t start_step, const std::map<std::string, double>& ppl);
  std::map<std::string, double> evaluate_during_training();  // the lead's perplexities; empty on the other ranks
  void save();                  // a checkpoint of this step (and the tokenizer beside it)
  // cleanup
  void cleanup(TrainSummary& summary);  // final evaluation and summary.json
  std::map<std::string, double> evaluate(LanguageModel& model);
  int64_t tokens_per_step() const;
  int64_t logit_chunk(int64_t tokens) const;
  void report_plan() const;     // bmos plan's total and verdict, on stderr before the first step  // tokens per KD-loss chunk; 0 = the whole batch at once
  std::string checkpoint_root() const;

  JobConfig job_;
  bool resume_;
  std::string hash_;
  torch::Device device_;        // run.device: teacher, student, batches and the optimiser state live there
  std::unique_ptr<ProcessGroup> group_;    // the ranks of a data-parallel run (one process: inactive)
  std::unique_ptr<GradientBuckets> buckets_;  // unsharded: gradients averaged on every rank
  std::unique_ptr<OptimizerShards> shards_;   // train.shard_optimizer
  NamedParams named_params_;                  // the trainable parameters, in the model's order
  bool lead() const { return group_->rank() == 0; }  // the rank that prints, writes and evaluates
  int64_t last_saved_step_ = -1;
  sigset_t old_sigmask_;        // restored on destruction (SIGINT is blocked while a Trainer lives)
  void (*old_sigint_)(int) = SIG_DFL;
  double comm_seconds_ = 0;
  std::unique_ptr<Tokenizer> tokenizer_;
  Llama teacher_{nullptr};
  Llama student_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<double> group_lr_;  // base lr of each parameter group
  std::unique_ptr<BatchSource> data_;
  Schedule schedule_;
  int64_t total_steps_ = 0;
  std::vector<torch::Tensor> params_;
  int64_t step_ = 0, tokens_ = 0;
  std::string last_checkpoint_;  // written or resumed from by this process
  nlohmann::json last_metrics_;
  std::unique_ptr<MetricsLog> metrics_;  // the lead's metrics.jsonl and TensorBoard file, opened where training starts
};

// Hash of a job's text (hex), recorded in checkpoints.
std::string job_hash(const std::string& text);

}  // namespace bmos
