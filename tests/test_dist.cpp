// Data-parallel training on c10d (Gloo, ranks on loopback, a tiny model): 2 ranks give the losses and weights of 1
// rank on the same job and global batch, and a rank that dies takes the job down with its rank named.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "modules/io/safetensors.h"
#include "tests/test_util.h"
#include "trainer/trainer.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;

struct Command {
  int status = -1;
  std::string output;
};

Command run(const std::string& args) {
  const std::string cmd = "OMP_WAIT_POLICY=PASSIVE " + test::build_dir() + "/bmos " + args + " 2>&1";
  Command c;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) c.output.append(buf, n);
  const int st = pclose(p);
  c.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return c;
}

std::string job(const std::string& dir, const std::string& name, const std::string& teacher, int steps,
                double lr = 3.0e-3) {
  std::ostringstream j;
  j << "run: {out_dir: " << dir << "/" << name << ", seed: 3, threads: 1}\n";
  if (teacher.empty())
    j << "teacher: {format: random, init: {dim: 32, hidden_dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, "
         "max_seq_len: 32}}\ntokenizer: {kind: byte}\nquant: {method: none}\n";
  else
    j << "teacher: {path: " << teacher << ", dtype: fp32}\ntokenizer: {kind: byte}\nquant: {method: binarymos, experts: 4}\n";
  j << "data: {seq_len: 32, cache_dir: " << dir << "/cache, sources: [{name: toy, format: text, files: [" << dir
    << "/corpus.txt]}]}\n"
    << "train: {steps: " << steps << ", batch_size: 8, lr: " << lr << ", warmup_ratio: 0.1, log_every: 1}\n"
    << "checkpoint: {every: " << steps << ", keep: 1}\n";
  const std::string path = dir + "/" + name + ".yaml";
  std::ofstream(path) << j.str();
  return path;
}

class DataParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::temp_dir("dist");
    std::ofstream corpus(dir_ + "/corpus.txt");
    std::mt19937 rng(7);
    const char* words[] = {"the cat", "a dog", "saw", "liked", "the moon", "a red box", "and", "then"};
    for (int d = 0; d < 300; ++d) {
      for (int w = 0; w < 12; ++w) corpus << words[rng() % 8] << " ";
      corpus << "\n";
    }
    corpus.close();
    ASSERT_EQ(run("train " + job(dir_, "teacher", "", 40)).status, 0);
  }
  static std::string dir_;
};
std::string DataParallel::dir_;

std::vector<nlohmann::json> metrics(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

struct Agreement {
  double loss = 0, grad_norm = 0, weights = 0, routers = 0;
  int64_t bit_equal = 0, tensors = 0;
};

// Step by step and in the final weights, how far run b is from run a (20 steps, checkpoint at step 20).
Agreement compare_runs(const std::string& a_dir, const std::string& b_dir) {
  Agreement g;
  const auto m1 = metrics(a_dir), m2 = metrics(b_dir);
  EXPECT_EQ(m1.size(), 20u);
  EXPECT_EQ(m2.size(), 20u);
  for (size_t i = 0; i < std::min(m1.size(), m2.size()); ++i) {
    g.loss = std::max(g.loss, std::abs(m2[i]["loss"].get<double>() / m1[i]["loss"].get<double>() - 1));
    g.grad_norm = std::max(g.grad_norm, std::abs(m2[i]["grad_norm"].get<double>() / m1[i]["grad_norm"].get<double>() - 1));
  }
  const SafetensorsFile a(a_dir + "/checkpoints/step_00000020/model.safetensors");
  const SafetensorsFile b(b_dir + "/checkpoints/step_00000020/model.safetensors");
  // The routers apart: at init every expert is the same copy, so a router's true gradient is zero and AdamW
  // normalises what both runs hold there, rounding noise, into full-size steps (3e-5 after 20 steps here).
  for (const auto& name : a.names()) {
    const torch::Tensor x = a.load(name), y = b.load(name);
    const double d = ((x - y).norm() / x.norm().clamp_min(1e-30)).item<double>();
    double& worst = name.find(".router") != std::string::npos ? g.routers : g.weights;
    worst = std::max(worst, d);
    g.bit_equal += torch::equal(x, y);
    ++g.tensors;
  }
  return g;
}

void expect_agreement(const Agreement& g, const char* what, double comm) {
  std::printf("%s, 20 steps: worst step loss rel diff %.2e, grad norm %.2e; weights: worst tensor |a-b|/|a| %.2e "
              "(routers %.2e), %lld of %lld tensors bit-equal; communication %.3f s\n",
              what, g.loss, g.grad_norm, g.weights, g.routers, (long long)g.bit_equal, (long long)g.tensors, comm);
  EXPECT_LT(g.loss, 1e-5) << what;
  EXPECT_LT(g.grad_norm, 1e-5) << what;  // would show a sum taken for a mean
  EXPECT_LT(g.weights, 1e-5) << what;
  EXPECT_LT(g.routers, 1e-4) << what;
}

TEST_F(DataParallel, TwoRanksGiveTheLossesAndWeightsOfOne) {
  // Two ranks sum the gradient in another order than one: equal up to rounding, not in bits. At lr 1e-5 rounding
  // stays rounding for 20 steps; at the recipe's 3e-3, AdamW's sign-like early steps and the binarisation amplify it
  // (two one-rank runs that differ only in thread count drift as far apart: the closing note).
  const std::string teacher = dir_ + "/teacher";
  const Command one = run("train " + job(dir_, "one", teacher, 20, 1e-5));
  ASSERT_EQ(one.status, 0) << one.output;
  const Command two = run("train " + job(dir_, "two", teacher, 20, 1e-5) + " --nproc 2 --threads 1");
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_NE(two.output.find("[rank 0] step 20/20"), std::string::npos) << two.output;
  EXPECT_EQ(two.output.find("[rank 1] step"), std::string::npos) << "only rank 0 prints the progress line";
  expect_agreement(compare_runs(dir_ + "/one", dir_ + "/two"), "2 ranks vs 1",
                   metrics(dir_ + "/two").back().value("comm_seconds", -1.0));

  // The sharded optimiser: each rank steps half of the parameters, the same result.
  const Command sharded = run("train " + job(dir_, "sharded", teacher, 20, 1e-5) +
                              " --nproc 2 --threads 1 --set 'train.shard_optimizer=true'");
  ASSERT_EQ(sharded.status, 0) << sharded.output;
  expect_agreement(compare_runs(dir_ + "/one", dir_ + "/sharded"), "2 ranks, sharded optimiser, vs 1",
                   metrics(dir_ + "/sharded").back().value("comm_seconds", -1.0));
  EXPECT_TRUE(fs::exists(dir_ + "/sharded/checkpoints/step_00000020/optimizer.rank0.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ + "/sharded/checkpoints/step_00000020/optimizer.rank1.safetensors"));
  const SafetensorsFile s0(dir_ + "/sharded/checkpoints/step_00000020/optimizer.rank0.safetensors");
  const SafetensorsFile s1(dir_ + "/sharded/checkpoints/step_00000020/optimizer.rank1.safetensors");
  const SafetensorsFile whole(dir_ + "/one/checkpoints/step_00000020/optimizer.rank0.safetensors");
  EXPECT_EQ(s0.names().size() + s1.names().size(), whole.names().size()) << "the shards split the state, no overlap";
  EXPECT_GT(s1.names().size(), 0u);
}

// `bmos train JOB --nproc 2 --threads 1` in the background, its stderr into `log`; returns the launcher's pid.
pid_t start_two_ranks(const std::string& job, const std::string& log) {
  const std::string bmos = test::build_dir() + "/bmos";
  const pid_t launcher = fork();
  if (launcher == 0) {
    freopen(log.c_str(), "w", stderr);
    freopen("/dev/null", "w", stdout);
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execl(bmos.c_str(), bmos.c_str(), "train", job.c_str(), "--nproc", "2", "--threads", "1", nullptr);
    _exit(127);
  }
  return launcher;
}

// Waits (at most 2 minutes) until the run has logged `steps` steps.
void wait_for_steps(const std::string& run_dir, size_t steps) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (metrics(run_dir).size() < steps && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// bmos train --nproc 2 started in the background; SIGKILLed (the launcher: its ranks die with it) once the
// checkpoint of step `at` exists.
void run_and_kill_at(const std::string& job, const std::string& run_dir, int at) {
  const pid_t launcher = start_two_ranks(job, "/dev/null");
  char step[32];
  std::snprintf(step, sizeof step, "/step_%08d/checkpoint.json", at);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(run_dir + "/checkpoints" + step) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(launcher, SIGKILL);
  waitpid(launcher, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the ranks' death signal
}

// Killed at step 10 and resumed at 2 ranks: the bits of the uninterrupted 2-rank run; the 2-rank checkpoint of step 15
// goes on at 1 rank (unsharded: a sharded optimiser's state is re-sharded on load).
void kill_resume_and_continue_at_one_rank(const std::string& dir_, const std::string& tag, bool sharded) {
  const std::string teacher = dir_ + "/teacher";
  auto job_every = [&](const std::string& name, bool shard) {
    std::string text;
    {
      std::ifstream in(job(dir_, name, teacher, 20));
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const std::string from = "checkpoint: {every: 20, keep: 1}";
    text.replace(text.find(from), from.size(), "checkpoint: {every: 5, keep: 4}");
    if (shard) text.replace(text.find("log_every: 1}"), 13, "log_every: 1, shard_optimizer: true}");
    std::ofstream(dir_ + "/" + name + ".yaml") << text;
    return dir_ + "/" + name + ".yaml";
  };
  const std::string full = job_every(tag + "_full", sharded), killed = job_every(tag + "_killed", sharded);
  ASSERT_EQ(run("train " + full + " --nproc 2 --threads 1").status, 0);
  run_and_kill_at(killed, dir_ + "/" + tag + "_killed", 10);
  ASSERT_FALSE(fs::exists(dir_ + "/" + tag + "_killed/checkpoints/step_00000020")) << "killed too late to test anything";
  const Command resumed = run("train " + killed + " --nproc 2 --threads 1 --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_HAS(resumed.output, "resume: ");
  const std::string wa = dir_ + "/" + tag + "_full/checkpoints/step_00000020/model.safetensors";
  const std::string wb = dir_ + "/" + tag + "_killed/checkpoints/step_00000020/model.safetensors";
  std::ifstream fa(wa, std::ios::binary), fb(wb, std::ios::binary);
  const std::string ba((std::istreambuf_iterator<char>(fa)), {}), bb((std::istreambuf_iterator<char>(fb)), {});
  ASSERT_FALSE(ba.empty());
  EXPECT_TRUE(ba == bb) << tag << ": a 2-rank run killed at step 10 and resumed differs from the uninterrupted run";

  // The 2-rank checkpoint of step 15 goes on at 1 rank: the global batches and data cursor are the same.
  fs::create_directories(dir_ + "/" + tag + "_one/checkpoints");
  fs::copy(dir_ + "/" + tag + "_full/checkpoints/step_00000015", dir_ + "/" + tag + "_one/checkpoints/step_00000015",
           fs::copy_options::recursive);
  // The same job but its out_dir, which a resume does not compare (trainer/job/job_diff.h).
  const std::string one = job_every(tag + "_one", false);
  const Command at_one = run("train " + one + " --resume");
  ASSERT_EQ(at_one.status, 0) << at_one.output;
  const auto m = metrics(dir_ + "/" + tag + "_one"), mf = metrics(dir_ + "/" + tag + "_full");
  ASSERT_EQ(m.size(), 5u);  // steps 16..20
  for (size_t i = 0; i < m.size(); ++i)
    EXPECT_NEAR(m[i]["loss"].get<double>(), mf[15 + i]["loss"].get<double>(), 1e-3 * mf[15 + i]["loss"].get<double>())
        << "step " << m[i]["step"];
}

TEST_F(DataParallel, ResumesBitIdenticallyAfterAKillAndAtAnotherWorldSize) {
  kill_resume_and_continue_at_one_rank(dir_, "dp", false);
}

TEST_F(DataParallel, AShardedRunResumesBitIdenticallyAndReshardsAtOneRank) {
  kill_resume_and_continue_at_one_rank(dir_, "dp_sharded", true);
}

TEST_F(DataParallel, ARankThatDiesTakesTheJobDownNamingIt) {
  const std::string log = dir_ + "/killed.log";
  const pid_t launcher = start_two_ranks(job(dir_, "killed", dir_ + "/teacher", 100000), log);
  wait_for_steps(dir_ + "/killed", 3);
  // The ranks are the launcher's children, forked in rank order: rank 1 is the newer one.
  std::vector<pid_t> children;
  {
    std::ifstream in("/proc/" + std::to_string(launcher) + "/task/" + std::to_string(launcher) + "/children");
    for (pid_t p; in >> p;) children.push_back(p);
  }
  ASSERT_EQ(children.size(), 2u);
  kill(std::max(children[0], children[1]), SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  waitpid(launcher, &status, 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string out = read_text(log);
  std::printf("rank 1 SIGKILLed: the job ended in %.2f s with status %d\n", seconds, WEXITSTATUS(status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  EXPECT_HAS(out, "[launch] rank 1 was killed by signal 9");
  EXPECT_HAS(out, "[launch] failed: rank 1");
  EXPECT_LT(seconds, 30.0);
}

TEST_F(DataParallel, ABadLaunchEnvironmentIsNamed) {
  const std::string j = job(dir_, "env", dir_ + "/teacher", 1);
  const Command rank = run("train " + j + " --nproc 0");
  EXPECT_HAS(rank.output, "--nproc must be >= 2");
  setenv("WORLD_SIZE", "2", 1);
  setenv("RANK", "5", 1);
  const Command bad = run("train " + j);
  setenv("RANK", "1", 1);
  unsetenv("MASTER_ADDR");
  const Command partial = run("train " + j);
  unsetenv("WORLD_SIZE");
  unsetenv("RANK");
  EXPECT_EQ(bad.status, 1);
  EXPECT_HAS(bad.output, "environment variable RANK='5': expected an integer in [0, 1]");
  EXPECT_HAS(partial.output, "WORLD_SIZE=2 needs RANK, MASTER_ADDR and MASTER_PORT too");
}

TEST_F(DataParallel, ARankThatCannotReachTheStoreStopsWithinItsTimeout) {
  std::string text;
  {
    std::ifstream in(job(dir_, "alone", dir_ + "/teacher", 5));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  text.replace(text.find("threads: 1}"), 11, "threads: 1, dist_timeout_s: 3}");
  std::ofstream(dir_ + "/alone.yaml") << text;
  // Rank 1 of 2 with nobody serving the store.
  setenv("WORLD_SIZE", "2", 1);
  setenv("RANK", "1", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "29571", 1);
  const auto t0 = std::chrono::steady_clock::now();
  const Command c = run("train " + dir_ + "/alone.yaml");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(v);
  std::printf("rank 1 without a store: stopped after %.1f s (timeout 3 s)\n", seconds);
  EXPECT_EQ(c.status, 1);
  EXPECT_HAS(c.output, "rank 1 of 2 (store 127.0.0.1:29571): could not join the process group within 3 s");
  EXPECT_LT(seconds, 30.0);
}

TEST_F(DataParallel, CtrlCSavesOneCheckpointAndStopsEveryRank) {
  const std::string log = dir_ + "/ctrlc.log";
  const pid_t launcher = start_two_ranks(job(dir_, "ctrlc", dir_ + "/teacher", 100000), log);
  wait_for_steps(dir_ + "/ctrlc", 3);
  kill(launcher, SIGINT);
  int status = 0;
  waitpid(launcher, &status, 0);
  const std::string out = read_text(log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << out;
  EXPECT_HAS(out, "[rank 0] interrupted: saved ");
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/ctrlc/checkpoints"))
    checkpoints += fs::exists(e.path() / "checkpoint.json");
  EXPECT_EQ(checkpoints, 1);
}

}  // namespace
}  // namespace bmos
