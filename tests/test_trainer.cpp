// End-to-end tiny jobs (no shared data needed: byte tokenizer, a generated corpus): pretraining and distillation
// lower their losses, checkpoints rotate, a SIGKILLed run resumes bit-identically, a NaN stops the step.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "modules/io/model_loader.h"
#include "data/tokenizers/tokenizer.h"
#include "trainer/batch_source.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/trainer.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;

// A small, learnable corpus: sentences from a tiny grammar, one document per line.
std::string write_corpus(const std::string& dir) {
  const char* who[] = {"the cat", "a dog", "the old man", "my sister", "a bird"};
  const char* did[] = {"saw", "liked", "found", "chased", "called"};
  const char* what[] = {"the ball", "a red box", "the moon", "her friend", "a small tree"};
  std::mt19937 rng(7);
  const std::string path = dir + "/corpus.txt";
  std::ofstream out(path);
  for (int d = 0; d < 400; ++d) {
    for (int s = 0; s < 3; ++s)
      out << who[rng() % 5] << " " << did[rng() % 5] << " " << what[rng() % 5] << ". ";
    out << "\n";
  }
  return path;
}

std::string job_text(const std::string& dir, const std::string& name, const std::string& teacher,
                     const std::string& quant, int steps, int every = 0, const std::string& train_extra = "") {
  std::ostringstream j;
  j << "run: {name: " << name << ", out_dir: " << dir << "/" << name << ", seed: 3, threads: 1}\n";
  if (teacher.empty())
    j << "teacher: {format: random, init: {dim: 32, hidden_dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, "
         "max_seq_len: 32}}\n";
  else
    j << "teacher: {path: " << teacher << "}\n";
  j << "tokenizer: {kind: byte}\n"
    << "quant: " << quant << "\n"
    << "data: {seq_len: 32, cache_dir: " << dir << "/cache, sources: [{name: toy, format: text, files: [" << dir
    << "/corpus.txt]}]}\n"
    << "train: {steps: " << steps << ", batch_size: 8, lr: 3.0e-3, warmup_ratio: 0.1, log_every: 1" << train_extra
    << "}\n"
    << "checkpoint: {every: " << (every ? every : steps) << ", keep: 2}\n";
  return j.str();
}

std::string save_job(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string p = dir + "/" + name + ".yaml";
  std::ofstream(p) << text;
  return p;
}

std::vector<nlohmann::json> metrics(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One shared pretrained tiny teacher for the tests below.
class TinyJobs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::temp_dir("trainer");
    write_corpus(dir_);
    Trainer t(load_job(save_job(dir_, "teacher", job_text(dir_, "teacher", "", "{method: none}", 60))), false);
    t.train();
    teacher_ = dir_ + "/teacher";
  }
  static std::string dir_, teacher_;
};
std::string TinyJobs::dir_, TinyJobs::teacher_;

TEST_F(TinyJobs, PretrainingLowersCrossEntropy) {
  const auto m = metrics(teacher_);
  ASSERT_GE(m.size(), 50u);
  const double first = m.front()["ce"], last = m.back()["ce"];
  EXPECT_LT(last, 0.6 * first) << "ce " << first << " -> " << last;
  EXPECT_NEAR(first, std::log(259.0), 0.5) << "a fresh model starts near uniform over the 259 byte ids";
}

TEST_F(TinyJobs, DistillationLowersTheKdLossAndRotatesCheckpoints) {
  const std::string job = save_job(dir_, "kd", job_text(dir_, "kd", teacher_, "{method: binarymos, experts: 4}", 40, 10));
  Trainer t(load_job(job), false);
  const TrainSummary s = t.train();
  EXPECT_EQ(s.steps, 40);
  const auto m = metrics(dir_ + "/kd");
  double early = 0, late = 0;
  for (int i = 0; i < 5; ++i) early += m[i]["loss"].get<double>() / 5;
  for (size_t i = m.size() - 5; i < m.size(); ++i) late += m[i]["loss"].get<double>() / 5;
  EXPECT_LT(late, 0.8 * early) << "KD loss " << early << " -> " << late;
  EXPECT_GT(m.back()["kl"].get<double>(), 0.0);
  EXPECT_GT(m.back()["hidden_mse"].get<double>(), 0.0);
  // keep: 2 of the checkpoints at 10, 20, 30, 40; no temporary folder left behind.
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir_ + "/kd/checkpoints")) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"step_00000030", "step_00000040"}));
}

// train.epochs: passes over every source's blocks, in whole steps of batch_size x grad_accum blocks.
TEST_F(TinyJobs, EpochsCountPassesOverThePreparedBlocks) {
  std::string text = job_text(dir_, "epochs", teacher_, "{method: binarymos, experts: 2}", 1, 1000);
  text.replace(text.find("steps: 1,"), 9, "epochs: 0.1,");
  const JobConfig job = load_job(save_job(dir_, "epochs", text));
  EXPECT_DOUBLE_EQ(job.train.epochs, 0.1);
  const auto tok = load_tokenizer("", "byte");
  const int64_t blocks = make_batch_source(job, *tok)->blocks_per_epoch();
  ASSERT_GT(blocks, 100);  // ~24 kB of text in blocks of 33 bytes
  Trainer t(job, false);
  EXPECT_EQ(t.train().steps, std::llround(0.1 * blocks / 8.0)) << blocks << " blocks per epoch, 8 per step";
}

TEST_F(TinyJobs, GradientsReachLatentWeightsScalesAndRouter) {
  const std::string job = save_job(dir_, "grad", job_text(dir_, "grad", teacher_, "{method: binarymos, experts: 2}", 1));
  Trainer t(load_job(job), false);
  Llama& s = t.student();
  {  // experts are identical copies at init; separate them so the router has something to choose between
    torch::NoGradGuard ng;
    for (auto& p : s->named_parameters())
      if (p.key().find("s_in") != std::string::npos) p.value().mul_(1 + 0.1 * torch::randn_like(p.value()));
  }
  const auto batch = torch::randint(3, 259, {4, 33}, torch::kLong);
  t.loss_step(batch).total.backward();
  for (const char* name : {"layers.0.attention.wq.weight", "layers.0.attention.wq.s_in", "layers.0.attention.wq.s_out",
                           "layers.1.feed_forward.w2.router"}) {
    const auto g = s->named_parameters()[name].grad();
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_GT(g.abs().sum().item<double>(), 0.0) << name << " got no gradient";
  }
}

TEST_F(TinyJobs, NonFiniteLossStopsTheStepWithAReport) {
  const std::string job = save_job(dir_, "nan", job_text(dir_, "nan", teacher_, "{method: binarymos, experts: 4}", 3));
  Trainer t(load_job(job), false);
  {
    torch::NoGradGuard ng;
    t.student()->named_parameters()["norm.weight"].fill_(std::nan(""));
  }
  try {
    t.train();
    FAIL() << "expected the NaN guard to stop training";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("step 1: loss term 'kl' is nan"), std::string::npos) << e.what();
  }
}

TEST_F(TinyJobs, ResumeAfterSigkillIsBitIdentical) {
  const std::string build = test::build_dir();
  const std::string bmos = std::string(build) + "/bmos";
  const std::string quant = "{method: binarymos, experts: 4}";
  const std::string a = save_job(dir_, "full", job_text(dir_, "full", teacher_, quant, 24, 4));
  // The same job but its out_dir (a key a resume does not compare): write it under another folder.
  fs::create_directories(dir_ + "/b");
  std::string btext = job_text(dir_, "full", teacher_, quant, 24, 4);
  btext.replace(btext.find(dir_ + "/full"), (dir_ + "/full").size(), dir_ + "/b/full");
  const std::string b = save_job(dir_ + "/b", "full", btext);
  ASSERT_EQ(std::system(("OMP_WAIT_POLICY=PASSIVE " + bmos + " train " + a + " >/dev/null 2>&1").c_str()), 0);

  // Run B, SIGKILLed once its step-8 checkpoint exists (mid-run, between later checkpoints), then resumed.
  const pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    freopen("/dev/null", "w", stdout);
    execl(bmos.c_str(), bmos.c_str(), "train", b.c_str(), nullptr);
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir_ + "/b/full/checkpoints/step_00000008/checkpoint.json") &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it could be killed";
  ASSERT_FALSE(fs::exists(dir_ + "/b/full/checkpoints/step_00000024")) << "killed too late to test anything";
  ASSERT_EQ(std::system(("OMP_WAIT_POLICY=PASSIVE " + bmos + " train " + b + " --resume >/dev/null 2>&1").c_str()), 0);
  const std::string wa = read_bytes(dir_ + "/full/checkpoints/step_00000024/model.safetensors");
  const std::string wb = read_bytes(dir_ + "/b/full/checkpoints/step_00000024/model.safetensors");
  ASSERT_FALSE(wa.empty());
  EXPECT_TRUE(wa == wb) << "resumed weights differ from the uninterrupted run";
  const auto m = metrics(dir_ + "/b/full");
  ASSERT_EQ(m.size(), 24u) << "metrics.jsonl holds each step once after a resume";
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m[i]["step"].get<int64_t>(), int64_t(i + 1));
}

TEST_F(TinyJobs, ResumingWithAnotherJobIsRefused) {
  const std::string job = save_job(dir_, "r1", job_text(dir_, "r1", teacher_, "{method: binarymos, experts: 1}", 2));
  Trainer(load_job(job), false).train();
  std::string other = job_text(dir_, "r1", teacher_, "{method: binarymos, experts: 1}", 4);
  const std::string job2 = save_job(dir_, "r1b", other);
  try {
    Trainer(load_job(job2), true).train();
    FAIL() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("was trained with another job: train.steps 2 -> 4"), std::string::npos) << e.what();
  }
}

// The student's parameters after 5 KD steps with these extra train: keys.
std::map<std::string, torch::Tensor> trained(const std::string& dir, const std::string& teacher, const std::string& name,
                                             const std::string& extra, int steps = 5) {
  const std::string job = save_job(dir, name, job_text(dir, name, teacher, "{method: binarymos, experts: 4}", steps, 0,
                                                       extra));
  Trainer t(load_job(job), false);
  t.train();
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : t.student()->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

TEST_F(TinyJobs, ActivationCheckpointingGivesBitIdenticalWeights) {
  // Chunked attention (seq 32 in blocks of 8) in both, so the recomputed blocks use the custom backward too.
  for (const std::string chunk : {"0", "8"}) {
    const auto off = trained(dir_, teacher_, "ckpt_off_" + chunk, ", attention_chunk: " + chunk);
    const auto on = trained(dir_, teacher_, "ckpt_on_" + chunk,
                            ", attention_chunk: " + chunk + ", activation_checkpointing: true");
    ASSERT_EQ(off.size(), on.size());
    for (const auto& [name, w] : off)
      EXPECT_TRUE(torch::equal(w, on.at(name))) << name << ", attention_chunk " << chunk << ": max abs diff "
                                                << (w - on.at(name)).abs().max().item<double>();
  }
}

TEST_F(TinyJobs, ChunkedAttentionAndKlGiveTheWholeComputationsLossAndGradients) {
  // One KD step's loss terms and every gradient, attention in blocks of 8 and the KL in chunks of 50 tokens vs whole,
  // with an fp32 teacher (the claim is about fp32 rounding).
  auto step = [&](const std::string& name, const std::string& extra) {
    std::string text = job_text(dir_, name, teacher_, "{method: binarymos, experts: 4}", 1, 0, extra);
    const std::string line = "teacher: {path: " + teacher_ + "}";
    text.replace(text.find(line), line.size(), "teacher: {path: " + teacher_ + ", dtype: fp32}");
    const std::string job = save_job(dir_, name, text);
    Trainer t(load_job(job), false);
    torch::manual_seed(11);
    {  // move the student away from the teacher (at init they agree and the KL is rounding noise)
      torch::NoGradGuard ng;
      for (auto& p : t.student()->named_parameters())
        if (p.key().find("s_in") != std::string::npos) p.value().mul_(1 + 0.3 * torch::randn_like(p.value()));
    }
    const LossTerms terms = t.loss_step(torch::randint(3, 259, {4, 33}, torch::kLong));
    terms.total.backward();
    std::map<std::string, torch::Tensor> grads;
    for (const auto& p : t.student()->named_parameters()) grads[p.key()] = p.value().grad().clone();
    return std::make_pair(terms, grads);
  };
  const auto [whole, gw] = step("whole", ", attention_chunk: 0, logit_chunk: -1");
  const auto [chunked, gc] = step("chunked", ", attention_chunk: 8, logit_chunk: 50");
  // The KL is a sum of terms that nearly cancel (about 1e-5 per token here): its fp32 rounding is absolute, not
  // relative, about 1e-7 per token; the default sequence_sum adds the 32 tokens of a sequence.
  EXPECT_NEAR(chunked.kl.item<double>(), whole.kl.item<double>(), 32 * 1e-7);
  EXPECT_NEAR(chunked.hidden_mse.item<double>(), whole.hidden_mse.item<double>(), 1e-5 * whole.hidden_mse.item<double>());
  double worst = 0;
  for (const auto& [name, g] : gw)
    worst = std::max(worst, ((gc.at(name) - g).abs().max() / g.abs().max().clamp_min(1e-12)).item<double>());
  std::printf("one KD step, chunked vs whole: kl %.8f vs %.8f, worst gradient max rel diff %.2e\n",
              chunked.kl.item<double>(), whole.kl.item<double>(), worst);
  EXPECT_LT(worst, 1e-4);
}

TEST_F(TinyJobs, FrozenParametersKeepTheirValuesAndGetNoGradient) {
  const std::string job = save_job(dir_, "frozen", job_text(dir_, "frozen", teacher_, "{method: binarymos, experts: 2}",
                                                            3, 0, ", freeze: [tok_embeddings.weight, "
                                                                  "'layers.*.attention_norm.weight']"));
  Trainer t(load_job(job), false);
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : t.student()->named_parameters()) before[p.key()] = p.value().detach().clone();
  t.train();
  for (const auto& p : t.student()->named_parameters()) {
    const bool frozen = p.key() == "tok_embeddings.weight" || p.key().find("attention_norm") != std::string::npos;
    EXPECT_EQ(p.value().requires_grad(), !frozen) << p.key();
    if (frozen) {
      EXPECT_FALSE(p.value().grad().defined()) << p.key();
      EXPECT_TRUE(torch::equal(p.value(), before.at(p.key()))) << p.key() << " changed";
    }
  }
  EXPECT_FALSE(torch::equal(t.student()->named_parameters()["norm.weight"], before.at("norm.weight")));
  const std::string bad = save_job(dir_, "frozen_bad", job_text(dir_, "frozen_bad", teacher_, "{method: binarymos}", 1,
                                                                0, ", freeze: [embeddings]"));
  EXPECT_HAS(test::error_of([&] { Trainer(load_job(bad), false); }), "train.freeze: pattern 'embeddings' matches no parameter");
}

TEST_F(TinyJobs, EveryTensorOfAStepLivesOnTheJobsDevice) {
  const std::string job = save_job(dir_, "device", job_text(dir_, "device", teacher_, "{method: binarymos, experts: 2}", 2));
  JobConfig jc = load_job(job);
  ASSERT_EQ(jc.run.device, "cpu");  // the only device this build has; the same checks hold on cuda:N
  const torch::Device device(jc.run.device);
  Trainer t(std::move(jc), false);
  const auto batch = torch::randint(3, 259, {2, 33}, torch::kLong).to(device);
  const LossTerms terms = t.loss_step(batch);
  terms.total.backward();
  EXPECT_EQ(terms.total.device(), device);
  for (const auto& p : t.student()->named_parameters()) {
    EXPECT_EQ(p.value().device(), device) << p.key();
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_EQ(p.value().grad().device(), device) << p.key();
  }
  for (const auto& b : t.student()->named_buffers()) EXPECT_EQ(b.value().device(), device) << b.key();
  EXPECT_EQ(t.student()->device(), device);
}

TEST_F(TinyJobs, ADamagedCheckpointIsNamedOnResume) {
  const std::string job = save_job(dir_, "damaged", job_text(dir_, "damaged", teacher_, "{method: binarymos}", 2));
  Trainer(load_job(job), false).train();
  const std::string ck = dir_ + "/damaged/checkpoints/step_00000002";
  ASSERT_TRUE(fs::exists(ck + "/manifest.json"));
  {
    std::fstream f(ck + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  EXPECT_HAS(test::error_of([&] { Trainer(load_job(job), true).train(); }),
             ck + "/model.safetensors: its CRC-32 differs from the manifest's");
}

TEST_F(TinyJobs, ThePapersKlReductionAndHiddenStatesAreTheReferences) {
  // distill.kl_reduction: sequence_sum is T times the token mean; distill.hidden_states: hf compares the last block's
  // output after the final norm (transformers' hidden_states[1:]).
  auto terms = [&](const std::string& name, const std::string& distill) {
    std::string text = job_text(dir_, name, teacher_, "{method: binarymos, experts: 2}", 1);
    const std::string line = "teacher: {path: " + teacher_ + "}";
    text.replace(text.find(line), line.size(), "teacher: {path: " + teacher_ + ", dtype: fp32}\ndistill: " + distill);
    Trainer t(load_job(save_job(dir_, name, text)), false);
    torch::manual_seed(12);
    const auto batch = torch::randint(3, 259, {4, 33}, torch::kLong);
    LossTerms out = t.loss_step(batch);
    return std::make_tuple(out, t.student(), batch);
  };
  auto [mean, s1, b1] = terms("kl_mean", "{kl: 1.0, hidden_mse: 1.0, kl_reduction: token_mean, hidden_states: blocks}");
  auto [sum, s2, b2] = terms("kl_sum", "{kl: 1.0, hidden_mse: 1.0, kl_reduction: sequence_sum, hidden_states: blocks}");
  EXPECT_NEAR(sum.kl.item<double>(), 32.0 * mean.kl.item<double>(), 1e-5 * sum.kl.item<double>());
  EXPECT_EQ(sum.hidden_mse.item<double>(), mean.hidden_mse.item<double>());

  auto [hf, s3, b3] = terms("hidden_hf", "{kl: 1.0, hidden_mse: 1.0, hidden_states: hf}");
  LoadedModel teacher = load_model(resolve_model_path(teacher_));
  torch::NoGradGuard ng;
  const auto in = b3.narrow(1, 0, 32);
  const LlamaOutput so = s3->forward(in, true), to = teacher.model->forward(in, true);
  const double last_blocks = torch::mse_loss(so.hidden.back(), to.hidden.back()).item<double>();
  const double last_hf =
      torch::mse_loss(s3->norm->forward(so.hidden.back()), teacher.model->norm->forward(to.hidden.back())).item<double>();
  EXPECT_NEAR(hf.hidden_mse.item<double>() - mean.hidden_mse.item<double>(), last_hf - last_blocks,
              1e-5 * hf.hidden_mse.item<double>());
}

}  // namespace
}  // namespace bmos
