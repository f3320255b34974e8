#include "trainer/trainer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <pthread.h>

#include <ATen/Parallel.h>

#include "data/hash.h"
#include "modules/blas_kernels.h"
#include "modules/build_info.h"
#include "modules/device.h"
#include "modules/io/model_loader.h"
#include "modules/replace.h"
#include "modules/threads.h"
#include "modules/torch_compat.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/eval/eval_ppl.h"
#include "trainer/eval/ppl_sets.h"
#include "trainer/job/job_diff.h"
#include "trainer/plan.h"

namespace bmos {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

std::string fmt_duration(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(std::fmod(s, 3600) / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(std::fmod(s, 60)));
  else std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

double item(const torch::Tensor& t) { return t.defined() ? t.item<double>() : 0.0; }

// The student before replacement: an fp32 copy of the teacher's parameters on its device, built without
// initialising a model first (one fp32 copy, converted tensor by tensor from a bf16 teacher).
Llama fp32_copy(Llama& teacher) {
  torch::NoGradGuard no_grad;
  Llama student{nullptr};
  {
    SkipInitGuard skip;
    student = Llama(teacher->config);
  }
  student->to(teacher->device());
  auto src = teacher->named_parameters();
  for (auto& p : student->named_parameters())
    p.value().set_data(src[p.key()].to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true));
  return student;
}

torch::Dtype teacher_dtype(const JobConfig& job, const torch::Device& device) {
  if (job.quant.method == "none") return torch::kFloat32;  // pretraining: the teacher is the model itself
  return teacher_bf16(job.teacher.dtype, device.is_cuda()) ? torch::kBFloat16 : torch::kFloat32;
}

}  // namespace

std::string job_hash(const std::string& text) {
  // FNV-1a 64: stable across runs and machines, enough to tell two job files apart.
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(text)));
  return buf;
}

Trainer::Trainer(JobConfig job, bool resume)
    : job_(std::move(job)), resume_(resume), hash_(job_hash(job_.text)), device_(job_.run.device) {
  sigset_t block;  // see InterruptGuard: before any thread of the run exists
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &old_sigmask_);
  // A handler, also where SIGINT came ignored (a process started in the background inherits that).
  old_sigint_ = std::signal(SIGINT, on_sigint);
  const DistEnv env = DistEnv::from_environment();
  if (env.world > 1 && job_.train.batch_size % env.world != 0)
    throw std::runtime_error(job_.file + ": train.batch_size " + std::to_string(job_.train.batch_size) +
                             " (the global batch) does not split over " + std::to_string(env.world) + " ranks");
  if (device_.is_cuda() && !device_.has_index() && env.world > 1) device_ = torch::Device(torch::kCUDA, env.local_rank);
  if (const std::string why = device_unavailable(device_); !why.empty())
    throw std::runtime_error(job_.file + ": run.device: '" + job_.run.device + "' is not available: " + why +
                             " (use cpu)");
  group_ = std::make_unique<ProcessGroup>(env, std::chrono::seconds(job_.run.dist_timeout_s), device_);
  set_compute_threads(job_.run.threads);
  if (job_.data.sources.empty()) throw std::runtime_error(job_.file + ": data.sources: the job has no training data");
  torch::manual_seed(job_.run.seed);  // router init and anything else random: the same job gives the same run
  setup_model();
  for (const auto& p : student_->named_parameters())
    if (p.value().requires_grad()) {
      params_.push_back(p.value());
      named_params_.emplace_back(p.key(), p.value());
    }
  if (job_.train.shard_optimizer) shards_ = std::make_unique<OptimizerShards>(params_, group_->world());
  else buckets_ = std::make_unique<GradientBuckets>(params_);
  setup_optimizer();
  // Rank 0 prepares the token shards first; the others then find them up to date (or, on a host that does not share
  // the cache folder, prepare their own).
  if (!lead()) group_->barrier("data preparation");
  data_ = make_batch_source(job_, *tokenizer_);
  if (lead()) group_->barrier("data preparation");
  if (job_.train.steps == 0 && job_.train.tokens == 0 && job_.train.epochs == 0)
    throw std::runtime_error(job_.file + ": train: set a budget with train.tokens, train.steps or train.epochs");
  if (job_.train.steps > 0) {
    total_steps_ = job_.train.steps;
  } else if (job_.train.epochs > 0) {  // blocks of every source, `epochs` times, in whole steps
    const double blocks = job_.train.epochs * double(data_->blocks_per_epoch());
    total_steps_ = std::max<int64_t>(1, std::llround(blocks * job_.data.seq_len / double(tokens_per_step())));
    if (lead())
      std::fprintf(stderr, "train.epochs %g: %lld blocks of %lld tokens per epoch -> %lld steps\n", job_.train.epochs,
                   (long long)data_->blocks_per_epoch(), (long long)job_.data.seq_len, (long long)total_steps_);
  } else {
    total_steps_ = std::max<int64_t>(1, job_.train.tokens / tokens_per_step());
  }
  report_plan();
  schedule_.kind = job_.train.schedule;
  schedule_.total_steps = total_steps_;
  schedule_.warmup_ratio = job_.train.warmup_ratio;
  schedule_.min_lr_ratio = job_.train.min_lr_ratio;
}

Trainer::~Trainer() {
  std::signal(SIGINT, old_sigint_);
  pthread_sigmask(SIG_SETMASK, &old_sigmask_, nullptr);
}

void Trainer::setup_model() {
  const bool pretrain = job_.quant.method == "none";
  std::string tok_path = job_.tokenizer.path;
  if (job_.teacher.format == "random") {
    if (!pretrain) throw std::runtime_error(job_.file + ": teacher.format: random only makes sense with quant.method none");
    if (tok_path.empty() && job_.tokenizer.kind != "byte")
      throw std::runtime_error(job_.file + ": tokenizer.path: required with teacher.format random (or kind: byte)");
    tokenizer_ = load_tokenizer(tok_path, job_.tokenizer.kind);
    LlamaConfig c;
    c.dim = job_.teacher.dim;
    c.hidden_dim = job_.teacher.hidden_dim > 0 ? job_.teacher.hidden_dim : (8 * c.dim / 3 + 31) / 32 * 32;
    c.n_layers = job_.teacher.n_layers;
    c.n_heads = job_.teacher.n_heads;
    c.n_kv_heads = job_.teacher.n_kv_heads > 0 ? job_.teacher.n_kv_heads : c.n_heads;
    c.max_seq_len = job_.teacher.max_seq_len > 0 ? job_.teacher.max_seq_len : job_.data.seq_len;
    c.vocab_size = tokenizer_->vocab_size();
    c.tie_embeddings = true;
    c.bos_id = tokenizer_->bos_id();
    c.eos_id = tokenizer_->eos_id();
    student_ = Llama(c);
    student_->init_random(job_.run.seed);
    student_->to(device_);
    std::fprintf(stderr, "model: new %s\n", c.describe().c_str());
  } else {
    LoadedModel t = load_model(resolve_model_path(job_.teacher.path), {teacher_dtype(job_, device_), device_});
    if (job_.teacher.format != "auto" && job_.teacher.format != t.format)
      throw std::runtime_error(job_.file + ": teacher.format: says " + job_.teacher.format + " but " +
                               job_.teacher.path + " is a " + t.format + " model");
    if (tok_path.empty()) tok_path = t.tokenizer;
    if (tok_path.empty() && job_.tokenizer.kind != "byte")
      throw std::runtime_error(job_.file + ": tokenizer.path: none given and none found beside " + job_.teacher.path);
    tokenizer_ = load_tokenizer(tok_path, job_.tokenizer.kind);
    if (tokenizer_->vocab_size() != t.model->config.vocab_size)
      throw std::runtime_error(job_.file + ": tokenizer " + tok_path + " has " + std::to_string(tokenizer_->vocab_size()) +
                               " pieces, the teacher's vocabulary is " + std::to_string(t.model->config.vocab_size));
    teacher_ = t.model;
    if (t.format != "llama2c" && t.format != "hf" && t.format != "checkpoint")
      throw std::runtime_error(job_.teacher.path + ": a " + t.format + " model cannot be a teacher");
    student_ = fp32_copy(teacher_);
    if (pretrain) {
      teacher_ = Llama(nullptr);  // training the model itself: no teacher needed
    } else {
      teacher_->eval();
      for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
    }
  }
  QuantSpec spec;
  spec.method = job_.quant.method;
  spec.experts = job_.quant.experts;
  spec.patterns = job_.quant.layers;
  spec.init = job_.quant.init;
  const ReplaceReport rep = replace_linears(student_, spec);
  if (lead()) std::fprintf(stderr, "student: %s\n", rep.summary().c_str());
  freeze_parameters();
  student_->set_run_options({job_.train.attention_chunk, job_.train.activation_checkpointing});
  if (teacher_) teacher_->set_run_options({job_.train.attention_chunk, false});
  student_->train();
}

void Trainer::freeze_parameters() {
  const auto named = student_->named_parameters();
  for (const auto& pat : job_.train.freeze) {
    int64_t n = 0;
    for (const auto& p : named)
      if (pattern_matches(pat, p.key())) {
        p.value().set_requires_grad(false);
        ++n;
      }
    if (n == 0)
      throw std::runtime_error(job_.file + ": train.freeze: pattern '" + pat + "' matches no parameter (names look " +
                               "like '" + named.keys().front() + "', '" + named.keys().back() + "')");
  }
}

void Trainer::setup_optimizer() {
  // Groups: 0 latent 1-bit weights, 1 scales (S_in/S_out), 2 router, 3 everything else (embeddings, norms, head).
  std::vector<std::vector<torch::Tensor>> groups(4);
  std::set<std::string> quantized;
  for (const auto& n : student_->linear_names())
    if (student_->get_linear(n)->kind() != "fp") quantized.insert(n);
  std::set<const void*> mine;  // with a sharded optimiser: this rank's shard only
  if (shards_)
    for (const auto& p : shards_->owned(group_->rank())) mine.insert(p.unsafeGetTensorImpl());
  for (auto& p : student_->named_parameters()) {
    if (!p.value().requires_grad()) continue;  // frozen: no gradient, no optimiser state
    if (shards_ && !mine.count(p.value().unsafeGetTensorImpl())) continue;
    const std::string& k = p.key();
    const std::string owner = k.substr(0, k.rfind('.'));
    const std::string leaf = k.substr(k.rfind('.') + 1);
    int g = 3;
    if (quantized.count(owner)) g = leaf == "weight" ? 0 : (leaf == "s_in" || leaf == "s_out") ? 1 : leaf == "router" ? 2 : 3;
    groups[g].push_back(p.value());
  }
  const double lr = job_.train.lr;
  const double lrs[4] = {lr, job_.train.lr_scales > 0 ? job_.train.lr_scales : lr,
                         job_.train.lr_router > 0 ? job_.train.lr_router : lr, lr};
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (int g = 0; g < 4; ++g) {
    // Empty groups are kept (as no-op groups) so a checkpoint's optimiser state always lines up.
    auto opts = std::make_unique<torch::optim::AdamWOptions>(lrs[g]);
    opts->betas({job_.train.beta1, job_.train.beta2}).weight_decay(g == 1 || g == 2 ? 0.0 : job_.train.weight_decay);
    param_groups.emplace_back(groups[g], std::move(opts));
    group_lr_.push_back(lrs[g]);
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(param_groups, torch::optim::AdamWOptions(lr));
}

namespace {
// bf16 autocast for the forward passes on CUDA (matmuls in bf16; softmax, log_softmax and the losses stay fp32 by
// autocast's own op lists). On the CPU this build trains in fp32: Debian's libtorch has no fast CPU bf16 path for
// these shapes. Not exercised here: this machine has no CUDA libtorch.
struct CudaAutocast {
  explicit CudaAutocast(bool on) : on_(on) {
    if (on_) compat::set_cuda_autocast(true, at::kBFloat16);
  }
  ~CudaAutocast() {
    if (on_) compat::set_cuda_autocast(false, at::kBFloat16);
  }
  bool on_;
};
}  // namespace

LossTerms Trainer::loss_step(const torch::Tensor& batch) {
  const CudaAutocast autocast(batch.is_cuda());
  const int64_t T = batch.size(1) - 1;
  const torch::Tensor inputs = batch.narrow(1, 0, T), targets = batch.narrow(1, 1, T);
  const auto& d = job_.distill;
  LossTerms terms;
  if (!teacher_) {  // pretraining
    terms.ce = next_token_ce(student_->forward(inputs).logits, targets);
    terms.total = terms.ce;
    return terms;
  }
  const bool want_hidden = d.hidden_mse > 0;
  // The KL from the heads' inputs in chunks of tokens when the logits would be large (or the job says so); the CE
  // term needs the student's logits whole.
  const int64_t chunk = logit_chunk(inputs.numel());
  const bool chunked = chunk > 0 && d.ce == 0 && d.kl > 0;
  LlamaOutput t;
  {
    torch::NoGradGuard no_grad;
    t = teacher_->forward(inputs, want_hidden, /*want_logits=*/!chunked);
    for (auto& h : t.hidden) h = h.to(torch::kFloat32);  // a bf16 teacher's states, compared in fp32
  }
  const LlamaOutput s = student_->forward(inputs, want_hidden, /*want_logits=*/!chunked);
  torch::Tensor total = torch::zeros({}, s.hidden.empty() ? inputs.options().dtype(torch::kFloat32)
                                                          : s.hidden.front().options());
  if (d.kl > 0) {
    const KlReduction reduction = kl_reduction_from_name(d.kl_reduction);
    terms.kl = chunked ? kd_kl_chunked(s.normed, student_->head_weight(), t.normed, teacher_->head_weight(),
                                       d.temperature, chunk, reduction)
                       : kd_kl(s.logits, t.logits.to(torch::kFloat32), d.temperature, reduction);
    total = total + d.kl * terms.kl;
  }
  if (want_hidden) {
    std::vector<torch::Tensor> sh = s.hidden, th = t.hidden;
    if (d.hidden_states == "hf") {  // transformers' hidden_states[1:]: the last one is the head's input (final norm)
      sh.back() = s.normed;
      th.back() = t.normed.to(torch::kFloat32);
    }
    total = total + d.hidden_mse * (terms.hidden_mse = hidden_mse(sh, th));
  }
  if (d.ce > 0) total = total + d.ce * (terms.ce = next_token_ce(s.logits, targets));
  terms.total = total;
  return terms;
}

void Trainer::report_plan() const {
  if (!lead()) return;
  const MemoryPlan plan = plan_memory(job_, student_->config, PlanOptions{});
  std::fprintf(stderr, "memory plan: %.2f GiB of %.2f GiB%s (bmos plan %s shows the table)\n", plan.total / 1073741824.0,
               plan.capacity / 1073741824.0, plan.fits ? "" : ": MAY NOT FIT", job_.file.c_str());
  if (!plan.fits)
    for (const auto& a : plan.advice) std::fprintf(stderr, "  to fit: %s\n", a.c_str());
}

int64_t Trainer::logit_chunk(int64_t tokens) const {
  if (!student_->head_weight().defined() || !teacher_->head_weight().defined()) return 0;  // heads that are not plain FP
  const int64_t chunk = logit_chunk_tokens(job_.train.logit_chunk, student_->config.vocab_size);
  return chunk > 0 && tokens > chunk ? chunk : 0;
}

std::map<std::string, double> Trainer::evaluate(LanguageModel& model) {
  std::map<std::string, double> out;
  for (const auto& set : job_.eval.ppl) {
    const EvalWindows w = load_eval_windows(set, *tokenizer_);
    out[set.name] = evaluate_perplexity(model, w, set.name).ppl;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------ train
namespace {
// Ctrl-C: SIGINT is blocked in the trainer's thread from its construction on, and so in every thread started after
// it (Gloo's among them): a signal never lands inside a system call of a collective. It reaches a thread started
// before (a library's worker: the handler sets the flag) or, when every thread blocks it, this guard's thread, which
// takes it with sigtimedwait. The loop reads the flag after each step (save and stop).
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = false;
    waiter_ = std::thread([this] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      const timespec tick{0, 100'000'000};
      while (!stop_)
        if (sigtimedwait(&set, nullptr, &tick) == SIGINT) g_interrupted = true;
    });
  }
  ~InterruptGuard() {
    stop_ = true;
    waiter_.join();
  }
  bool interrupted() const { return g_interrupted; }

 private:
  std::atomic<bool> stop_{false};
  std::thread waiter_;
};
}  // namespace

TrainSummary Trainer::train() {
  TrainSummary summary;
  prepare_run_folder();
  if (resume_) resume();
  if (lead()) metrics_ = std::make_unique<MetricsLog>(job_.run.out_dir, step_, job_.run.tensorboard);
  InterruptGuard interrupt;
  const int64_t start_step = step_;
  const auto t0 = std::chrono::steady_clock::now();
  if (lead())
    std::fprintf(stderr,
                 "train: %lld steps of %lld tokens (batch %lld x seq %lld x accum %lld) on %s, %d threads x %d ranks "
                 "(%s)\n",
                 (long long)total_steps_, (long long)tokens_per_step(), (long long)job_.train.batch_size,
                 (long long)job_.data.seq_len, (long long)job_.train.grad_accum, device_.str().c_str(),
                 at::get_num_threads(), group_->world(), group_->backend().c_str());
  while (step_ < total_steps_) {
    const StepResult r = train_step();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool last = step_ == total_steps_;
    const bool eval = job_.eval.every > 0 && step_ % job_.eval.every == 0 && !last;
    const std::map<std::string, double> ppl = eval ? evaluate_during_training() : std::map<std::string, double>{};
    if (step_ % job_.train.log_every == 0 || last || step_ == start_step + 1 || eval)
      log_step(r, secs, start_step, ppl);
    if ((job_.checkpoint.every > 0 && step_ % job_.checkpoint.every == 0) || last) save();
    // Every rank stops at the same step: a Ctrl-C seen by any of them counts for all.
    if (group_->all_reduce_max(interrupt.interrupted() ? 1.0 : 0.0, "interrupt check") > 0) {
      if (last_saved_step_ != step_) save();
      if (lead()) std::fprintf(stderr, "interrupted: saved %s; continue with --resume\n", last_checkpoint_.c_str());
      summary.interrupted = true;
      break;
    }
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  summary.tokens_per_second =
      summary.seconds > 0 ? double((step_ - start_step) * tokens_per_step()) / summary.seconds : 0;
  summary.comm_seconds = comm_seconds_;
  summary.rank = group_->rank();
  cleanup(summary);
  return summary;
}

int64_t Trainer::tokens_per_step() const {
  return job_.train.batch_size * job_.data.seq_len * job_.train.grad_accum;
}

std::string Trainer::checkpoint_root() const { return (fs::path(job_.run.out_dir) / "checkpoints").string(); }

void Trainer::prepare_run_folder() {
  if (!lead()) return;  // the other ranks write nothing to the run folder
  fs::create_directories(checkpoint_root());
  std::ofstream(fs::path(job_.run.out_dir) / "job.yaml") << job_.text;
}

void Trainer::resume() {
  // The newest checkpoint whose files match its manifest; newer damaged ones are named, and set aside below.
  const ResumePoint at = newest_whole_checkpoint(checkpoint_root());
  if (lead())
    for (const auto& [dir, problem] : at.damaged)
      std::fprintf(stderr, "resume: %s is damaged: %s\n", dir.c_str(), problem.c_str());
  if (at.dir.empty()) {
    if (!at.damaged.empty())
      throw std::runtime_error("resume: no whole checkpoint in " + checkpoint_root() + " (newest: " +
                               at.damaged.front().second + "); start again with a new run.out_dir");
    if (lead()) std::fprintf(stderr, "resume: no checkpoint in %s, starting from step 0\n", checkpoint_root().c_str());
    return;
  }
  const std::string ck = at.dir;
  if (!at.verified && lead())
    std::fprintf(stderr, "resume: %s predates checkpoint manifests (version 1): its files are not verified\n", ck.c_str());
  check_resume_job(ck);
  const TrainState st = load_checkpoint(ck, student_, *optimizer_, named_params_);
  data_->restore(st.data_cursor);
  step_ = st.step;
  tokens_ = st.tokens;
  last_checkpoint_ = ck;
  last_saved_step_ = step_;
  if (!at.damaged.empty()) {
    group_->barrier("resume");  // every rank has chosen before the damaged folders move
    if (lead())
      for (const auto& d : at.damaged)
        std::fprintf(stderr, "resume: set %s aside as %s\n", d.first.c_str(), set_aside_damaged(d.first).c_str());
  }
  if (lead()) std::fprintf(stderr, "resume: %s (step %lld, %lld tokens)\n", ck.c_str(), (long long)step_, (long long)tokens_);
}

void Trainer::check_resume_job(const std::string& ck) {
  // The job the checkpoint was written by (its job.yaml), resolved like this one; a job file of an older version that
  // this one cannot read any more is compared by its text alone.
  const std::string path = (fs::path(ck) / "job.yaml").string();
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  JobConfig before;
  try {
    if (!in) throw std::runtime_error(path + ": missing");
    before = parse_job(text, path, "");
  } catch (const std::exception& e) {
    if (job_hash(text) == hash_) return;
    throw std::runtime_error(ck + ": cannot compare its job with this one (" + e.what() +
                             "); resume with the job as it was, or use a new run.out_dir");
  }
  const std::vector<JobChange> changes = job_changes(before, job_);
  const std::string blocking = describe_changes(changes, true), allowed = describe_changes(changes, false);
  if (!blocking.empty())
    throw std::runtime_error(ck + ": was trained with another job: " + blocking +
                             " (these change what the run computes); resume with the job as it was (" + path +
                             "), or use a new run.out_dir");
  if (!allowed.empty() && lead()) {
    const bool rounding = std::any_of(changes.begin(), changes.end(), [](const JobChange& c) { return c.rounding; });
    std::fprintf(stderr, "resume: job changes that leave the training as it was: %s%s\n", allowed.c_str(),
                 rounding ? " (the same computation in another floating-point order: the weights agree with an "
                            "uninterrupted run's to rounding, not bit for bit)" : "");
  }
}

Trainer::StepResult Trainer::train_step() {
  StepResult r;
  r.lr_factor = schedule_.factor(step_);
  for (size_t g = 0; g < optimizer_->param_groups().size(); ++g)
    static_cast<torch::optim::AdamWOptions&>(optimizer_->param_groups()[g].options()).lr(group_lr_[g] * r.lr_factor);
  optimizer_->zero_grad();
  const double accum = double(job_.train.grad_accum);
  const auto add = [&](torch::Tensor& into, const torch::Tensor& v) {
    if (!v.defined()) return;
    const torch::Tensor d = v.detach() / accum;
    into = into.defined() ? into + d : d;
  };
  for (int64_t a = 0; a < job_.train.grad_accum; ++a) {
    // Every rank reads the global batch and keeps its own rows: any world size sees the same global batches.
    torch::Tensor batch = data_->next(job_.train.batch_size);  // (B, T + 1)
    const int64_t rows = job_.train.batch_size / group_->world();
    if (group_->active()) batch = batch.narrow(0, group_->rank() * rows, rows);
    LossTerms terms = loss_step(batch.to(device_));
    check_finite(terms);
    (terms.total / accum).backward();
    add(r.terms.kl, terms.kl);
    add(r.terms.hidden_mse, terms.hidden_mse);
    add(r.terms.ce, terms.ce);
    add(r.terms.total, terms.total);
  }
  const double max_norm = job_.train.clip > 0 ? job_.train.clip : std::numeric_limits<double>::infinity();
  if (shards_) {  // each rank holds the global mean gradient of its shard only
    comm_seconds_ += shards_->reduce_to_owners(*group_);
    r.grad_norm = shards_->clip(*group_, max_norm);
  } else {  // every rank holds the global mean gradient
    comm_seconds_ += buckets_->average(*group_);
    r.grad_norm = torch::nn::utils::clip_grad_norm_(params_, max_norm);
  }
  if (!std::isfinite(r.grad_norm)) {
    std::string where;
    for (auto& p : student_->named_parameters())
      if (p.value().grad().defined() && !torch::isfinite(p.value().grad()).all().item<bool>()) {
        where = p.key();
        break;
      }
    throw std::runtime_error("step " + std::to_string(step_ + 1) + ": non-finite gradient" +
                             (where.empty() ? "" : " in '" + where + "'") + "; the step was not applied");
  }
  optimizer_->step();
  if (shards_) comm_seconds_ += shards_->broadcast_params(*group_);  // every rank holds the new weights again
  ++step_;
  tokens_ += tokens_per_step();
  return r;
}

void Trainer::check_finite(const LossTerms& terms) const {
  const char* names[] = {"kl", "hidden_mse", "ce"};
  const torch::Tensor* parts[] = {&terms.kl, &terms.hidden_mse, &terms.ce};
  if (group_->active()) {  // a NaN on any rank stops every rank, naming the first bad term of the highest such rank
    int bad = 0;
    for (int i = 2; i >= 0; --i)
      if (parts[i]->defined() && !std::isfinite(parts[i]->item<double>())) bad = i + 1;
    const int worst = int(group_->all_reduce_max(bad ? group_->rank() * 4 + bad : 0, "non-finite loss check"));
    if (worst > 0)
      throw std::runtime_error("step " + std::to_string(step_ + 1) + ": loss term '" + names[worst % 4 - 1] +
                               "' is not finite on rank " + std::to_string(worst / 4) +
                               "; nothing was trained on it (last checkpoint: " +
                               (last_checkpoint_.empty() ? std::string("none") : last_checkpoint_) + ")");
    return;
  }
  for (int i = 0; i < 3; ++i) {
    if (!parts[i]->defined() || std::isfinite(parts[i]->item<double>())) continue;
    throw std::runtime_error("step " + std::to_string(step_ + 1) + ": loss term '" + names[i] + "' is " +
                             std::to_string(parts[i]->item<double>()) + "; nothing was trained on it (last checkpoint: " +
                             (last_checkpoint_.empty() ? std::string("none") : last_checkpoint_) + ")");
  }
}

void Trainer::log_step(const StepResult& r, double seconds, int64_t start_step,
                       const std::map<std::string, double>& ppl) {
  // The global loss terms: each rank's mean over its rows, averaged over the ranks (equal shares).
  std::vector<double> v = group_->all_reduce_sum(
      {item(r.terms.total), item(r.terms.kl), item(r.terms.hidden_mse), item(r.terms.ce)}, "loss logging");
  for (double& x : v) x /= double(group_->world());
  if (!lead()) return;
  const double total = v[0], kl = v[1], mse = v[2], ce = v[3];
  const double lr = group_lr_[0] * r.lr_factor;
  const double tps = double((step_ - start_step) * tokens_per_step()) / seconds;  // since this process started
  last_metrics_ = {{"step", step_},    {"tokens", tokens_}, {"lr", lr},
                   {"loss", total},    {"kl", kl},          {"hidden_mse", mse},
                   {"ce", ce},         {"grad_norm", r.grad_norm}, {"seconds", seconds},
                   {"tokens_per_second", tps}};
  if (group_->active()) last_metrics_["comm_seconds"] = comm_seconds_;
  for (const auto& [name, p] : ppl) last_metrics_["ppl/" + name] = p;
  metrics_->write(last_metrics_);
  const double eta = double(total_steps_ - step_) * seconds / double(step_ - start_step);
  std::fprintf(stderr, "step %lld/%lld | %.0f tok/s | loss %.4f (kl %.4f, mse %.4f, ce %.4f) | lr %.2e | gnorm %.3f | eta %s\n",
               (long long)step_, (long long)total_steps_, tps, total, kl, mse, ce, lr, r.grad_norm,
               fmt_duration(eta).c_str());
}

std::map<std::string, double> Trainer::evaluate_during_training() {
  std::map<std::string, double> ppl;
  if (job_.eval.ppl.empty()) return ppl;
  if (lead()) {
    student_->eval();
    ppl = evaluate(*student_);
    for (const auto& [n, p] : ppl) std::fprintf(stderr, "eval step %lld: %s ppl %.4f\n", (long long)step_, n.c_str(), p);
    student_->train();
  }
  group_->barrier("evaluation");
  return ppl;
}

void Trainer::save() {
  last_saved_step_ = step_;
  TrainState st{step_, tokens_, hash_, data_->cursor(), last_metrics_};
  // The tokenizer travels with the checkpoint, so `bmos generate/eval --model <checkpoint>` need nothing else.
  std::vector<ExtraFile> extra;
  const fs::path tp = tokenizer_->path();
  if (tokenizer_->kind() == "byte") extra.push_back({"tokenizer.byte", ""});
  else if (fs::is_regular_file(tp)) extra.push_back({"tokenizer" + tp.extension().string(), tp.string()});
  const std::string dir = save_checkpoint(checkpoint_root(), st, student_, *optimizer_, named_params_, shards_ != nullptr,
                                          job_.text, extra, job_.checkpoint.keep, *group_);
  if (lead()) last_checkpoint_ = dir;
  group_->barrier("checkpoint");
}

// ---------------------------------------------------------------------------------------------------- cleanup
void Trainer::cleanup(TrainSummary& summary) {
  summary.steps = step_;
  summary.tokens = tokens_;
  summary.checkpoint = last_checkpoint_.empty() ? newest_checkpoint(checkpoint_root()) : last_checkpoint_;
  if (!lead()) return;
  if (!summary.interrupted && !job_.eval.ppl.empty()) {
    student_->eval();
    summary.student_ppl = evaluate(*student_);
    if (teacher_) summary.teacher_ppl = evaluate(*teacher_);
  }
  json out = {{"method", job_.quant.method}, {"experts", job_.quant.experts}, {"parameters", count_params(*student_)},
              {"teacher_parameters", teacher_ ? count_params(*teacher_) : 0},
              {"steps", summary.steps}, {"tokens", summary.tokens}, {"seconds", summary.seconds},
              {"tokens_per_second", summary.tokens_per_second}, {"student_ppl", summary.student_ppl},
              {"teacher_ppl", summary.teacher_ppl}, {"checkpoint", summary.checkpoint},
              {"interrupted", summary.interrupted}, {"world_size", group_->world()},
              {"comm_seconds", summary.comm_seconds},
              {"commit", build_commit()}, {"dirty", build_dirty()},  // the sources that trained it (build_info.h)
              {"blas", openblas_core()}};  // and the kernels of torch's fp32 matmuls (blas_kernels.h)
  std::ofstream(fs::path(job_.run.out_dir) / "summary.json") << out.dump(2) << "\n";
}

}  // namespace bmos
