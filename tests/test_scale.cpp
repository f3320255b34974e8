// What makes real models fit: chunked attention and KD loss equal the whole computation within fp32 rounding, a
// sharded bf16 Hugging Face folder streams in with the logits of the old loader, power iteration agrees with the SVD,
// and `bmos plan` predicts the peak memory of real training runs.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "modules/binarymos_linear.h"
#include "modules/causal_attention.h"
#include "modules/io/hf_llama.h"
#include "modules/io/model_loader.h"
#include "modules/io/random_model.h"
#include "tests/test_util.h"
#include "trainer/losses.h"
#include "trainer/plan.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;

double max_rel(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item<double>();
}

TEST(ChunkedAttention, EqualsTheWholeMatrixForwardAndBackward) {
  torch::manual_seed(1);
  const int64_t BK = 3, rep = 2, T = 37, hd = 16;
  for (int64_t chunk : {1, 8, 16, 36}) {
    auto q = torch::randn({BK, rep, T, hd}, torch::requires_grad());
    auto k = torch::randn({BK, T, hd}, torch::requires_grad());
    auto v = torch::randn({BK, T, hd}, torch::requires_grad());
    const auto dout = torch::randn({BK, rep, T, hd});
    const double scale = 1.0 / std::sqrt(double(hd));
    const auto whole = causal_attention(q, k, v, 0, scale, 0);
    const auto grads_whole = torch::autograd::grad({whole}, {q, k, v}, {dout});
    const auto part = causal_attention(q, k, v, 0, scale, chunk);
    const auto grads_part = torch::autograd::grad({part}, {q, k, v}, {dout});
    const double e = max_rel(part, whole);
    std::printf("chunk %lld: out %.2e, dq %.2e, dk %.2e, dv %.2e\n", (long long)chunk, e,
                max_rel(grads_part[0], grads_whole[0]), max_rel(grads_part[1], grads_whole[1]),
                max_rel(grads_part[2], grads_whole[2]));
    EXPECT_LT(e, 1e-5);
    for (int i = 0; i < 3; ++i) EXPECT_LT(max_rel(grads_part[i], grads_whole[i]), 1e-5) << "gradient " << i;
  }
  // Decoding after a prefix (a KV cache): queries at positions start.. see keys up to their own position.
  torch::NoGradGuard no_grad;
  const auto q = torch::randn({BK, rep, 9, hd}), k = torch::randn({BK, 29, hd}), v = torch::randn({BK, 29, hd});
  EXPECT_LT(max_rel(causal_attention(q, k, v, 20, 0.25, 4), causal_attention(q, k, v, 20, 0.25, 0)), 1e-5);
}

TEST(ChunkedKl, EqualsTheWholeLogitsForwardAndBackward) {
  torch::manual_seed(2);
  const int64_t N = 53, D = 24, V = 301;
  auto hs = torch::randn({N, D}, torch::requires_grad());
  auto ws = (0.3 * torch::randn({V, D})).requires_grad_(true);
  const auto ht = torch::randn({N, D}), wt = 0.3 * torch::randn({V, D});
  for (double temperature : {1.0, 2.0}) {
    const auto whole = kd_kl(torch::matmul(hs, ws.t()), torch::matmul(ht, wt.t()), temperature);
    const auto gw = torch::autograd::grad({whole}, {hs, ws});
    for (int64_t chunk : {7, 53, 100}) {
      const auto part = kd_kl_chunked(hs, ws, ht, wt, temperature, chunk);
      const auto gp = torch::autograd::grad({part}, {hs, ws});
      EXPECT_LT(std::abs(part.item<double>() - whole.item<double>()), 1e-5 * whole.item<double>()) << chunk;
      EXPECT_LT(max_rel(gp[0], gw[0]), 1e-5) << "d student hidden, chunk " << chunk;
      EXPECT_LT(max_rel(gp[1], gw[1]), 1e-5) << "d head, chunk " << chunk;
    }
  }
}

// What CUDA autocast hands the loss: a bf16 student hidden stream with an fp32 head, a bf16 teacher. The gradients
// come back in each input's own dtype and match the fp32 computation to bf16 precision.
TEST(ChunkedKl, MixedDtypesGiveGradientsInEachInputsDtype) {
  torch::manual_seed(4);
  const int64_t N = 40, D = 32, V = 211;
  const auto hs32 = torch::randn({N, D}), ws32 = 0.3 * torch::randn({V, D});
  const auto ht = torch::randn({N, D}).to(torch::kBFloat16), wt = (0.3 * torch::randn({V, D})).to(torch::kBFloat16);
  auto hs = hs32.to(torch::kBFloat16).requires_grad_(true);
  auto ws = ws32.clone().requires_grad_(true);
  const auto part = kd_kl_chunked(hs, ws, ht, wt, 1.0, 16);
  const auto g = torch::autograd::grad({part}, {hs, ws});
  EXPECT_EQ(g[0].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(g[1].scalar_type(), torch::kFloat32);
  auto h_ref = hs.detach().to(torch::kFloat).requires_grad_(true);
  auto w_ref = ws32.clone().requires_grad_(true);
  const auto whole = kd_kl(torch::matmul(h_ref, w_ref.t()), torch::matmul(ht.to(torch::kFloat), wt.to(torch::kFloat).t()), 1.0);
  const auto gr = torch::autograd::grad({whole}, {h_ref, w_ref});
  EXPECT_LT(std::abs(part.item<double>() - whole.item<double>()), 2e-2 * whole.item<double>());
  EXPECT_LT(max_rel(g[0].to(torch::kFloat), gr[0]), 5e-2);
  EXPECT_LT(max_rel(g[1], gr[1]), 5e-2);
}

TEST(ScaleInit, PowerIterationAgreesWithTheSvd) {
  torch::manual_seed(3);
  for (auto [out, in] : {std::pair<int64_t, int64_t>{300, 200}, {64, 1000}}) {
    const auto A = torch::randn({out, in}).abs();
    const auto [u1, v1] = rank1_svd(A);
    const auto [u2, v2] = rank1_power(A);
    EXPECT_LT(max_rel(torch::outer(u2, v2), torch::outer(u1, v1)), 1e-5) << out << "x" << in;
  }
}

nlohmann::json small_config(int64_t dim, int64_t layers, int64_t vocab, bool tied) {
  return {{"model_type", "llama"},           {"hidden_size", dim},
          {"intermediate_size", dim * 11 / 4}, {"num_hidden_layers", layers},
          {"num_attention_heads", 8},        {"num_key_value_heads", 4},
          {"vocab_size", vocab},             {"max_position_embeddings", 256},
          {"rms_norm_eps", 1e-5},            {"tie_word_embeddings", tied},
          {"bos_token_id", 1},               {"eos_token_id", 2}};
}

TEST(StreamingLoad, AShardedBf16FolderGivesTheOldLoadersLogits) {
  const std::string dir = test::temp_dir("stream_load");
  RandomModelOptions o;
  o.seed = 5;
  o.shard_bytes = 100 << 10;  // several shards and an index
  const RandomModelReport r = write_random_hf_model(small_config(64, 3, 300, false), "test", dir, o);
  ASSERT_GT(r.shards, 2);
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));

  const LoadedCheckpoint ck = read_hf_llama(dir);  // the whole-dict reader, as before
  Llama old_model(ck.config);
  old_model->load_fp_state(ck.tensors);
  LoadedModel streamed = load_model(dir);
  const auto tokens = torch::randint(3, 300, {2, 20}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(streamed.model->forward(tokens).logits, old_model->forward(tokens).logits));

  LoadedModel bf16 = load_model(dir, {torch::kBFloat16, torch::kCPU});
  for (const auto& p : bf16.model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kBFloat16);
  const double e = max_rel(bf16.model->forward(tokens).logits.to(torch::kFloat), old_model->forward(tokens).logits);
  std::printf("bf16 teacher (weights stored bf16): logits max rel diff %.2e vs fp32 compute\n", e);
  EXPECT_LT(e, 0.05);
}

// Peak RSS of `bmos ARGS` (its own, from wait4), in bytes; exit status in *status.
double peak_rss_of(const std::vector<std::string>& args, int* status) {
  const pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv(argv[0], argv.data());
    _exit(127);
  }
  struct rusage ru {};
  wait4(pid, status, 0, &ru);
  return double(ru.ru_maxrss) * 1024.0;
}

TEST(Plan, PredictsThePeakMemoryOfRealTrainingRuns) {
  const std::string dir = test::temp_dir("plan_rss");
  RandomModelOptions o;
  ASSERT_EQ(write_random_hf_model(small_config(512, 4, 259, false), "test", dir + "/teacher", o).shards, 1);
  {
    std::ofstream corpus(dir + "/corpus.txt");
    std::mt19937 rng(1);
    for (int d = 0; d < 300; ++d) {
      for (int c = 0; c < 600; ++c) corpus << char('a' + rng() % 26);
      corpus << "\n";
    }
  }
  const std::string bmos = test::build_dir() + "/bmos";
  struct Case {
    const char* name;
    std::string train;
  };
  for (const Case& c : {Case{"full", "activation_checkpointing: false"}, Case{"ckpt", "activation_checkpointing: true"}}) {
    const std::string job = dir + "/" + c.name + ".yaml";
    std::ofstream(job) << "run: {out_dir: " << dir << "/" << c.name << ", threads: 2}\n"
                       << "teacher: {path: " << dir << "/teacher}\n"
                       << "tokenizer: {kind: byte}\n"
                       << "quant: {method: binarymos, experts: 4}\n"
                       << "data: {seq_len: 256, cache_dir: " << dir << "/cache, sources: [{name: toy, format: text, "
                       << "files: [" << dir << "/corpus.txt]}]}\n"
                       << "train: {steps: 3, batch_size: 8, log_every: 1, " << c.train << "}\n"
                       << "checkpoint: {every: 100, keep: 1}\n";
    const MemoryPlan plan = plan_memory(load_job(job), read_model_config(dir + "/teacher"), PlanOptions{});
    int status = 0;
    const double rss = peak_rss_of({bmos, "train", job}, &status);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "bmos train " << job << " failed";
    std::printf("%s: plan %.3f GiB, measured peak RSS %.3f GiB (plan/measured %.3f)\n", c.name, plan.total / 1073741824.0,
                rss / 1073741824.0, plan.total / rss);
    EXPECT_NEAR(plan.total / rss, 1.0, 0.15) << c.name;
  }
}

}  // namespace
}  // namespace bmos
