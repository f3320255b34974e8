// The LLaMA model on the real stories260K checkpoints, layer replacement, and the golden greedy text.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "modules/binarymos_linear.h"
#include "modules/io/model_loader.h"
#include "modules/replace.h"
#include "modules/threads.h"
#include "tests/test_util.h"

namespace bmos {
namespace {

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 50;
  c.max_seq_len = 16;
  return c;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Llama, CachedDecodingMatchesFullForward) {
  Llama m(tiny_config());
  m->init_random(1);
  m->eval();
  const auto tokens = torch::randint(0, 50, {2, 10}, torch::kLong);
  torch::NoGradGuard ng;
  const auto full = m->forward(tokens).logits;
  KVCache cache = m->new_cache(2, 16);
  auto a = m->forward_cached(tokens.narrow(1, 0, 4), cache);  // a prefill, then one token at a time
  std::vector<torch::Tensor> parts = {a};
  for (int t = 4; t < 10; ++t) parts.push_back(m->forward_cached(tokens.narrow(1, t, 1), cache));
  const auto inc = torch::cat(parts, 1);
  EXPECT_LT((full - inc).abs().max().item<float>(), 1e-5);
  // last_only (what generation asks of a prompt): the last position's logits, and the same cache.
  KVCache last_cache = m->new_cache(2, 16);
  const auto last = m->forward_cached(tokens.narrow(1, 0, 4), last_cache, /*last_only=*/true);
  ASSERT_EQ(last.sizes(), (std::vector<int64_t>{2, 1, m->config.vocab_size}));
  EXPECT_LT((last - a.narrow(1, 3, 1)).abs().max().item<float>(), 1e-6);
  const auto next = m->forward_cached(tokens.narrow(1, 4, 1), last_cache);
  EXPECT_LT((next - parts[1]).abs().max().item<float>(), 1e-6);
}

TEST(Llama, CausalityFutureTokensDoNotChangePast) {
  Llama m(tiny_config());
  m->init_random(2);
  torch::NoGradGuard ng;
  auto t1 = torch::randint(0, 50, {1, 12}, torch::kLong);
  auto t2 = t1.clone();
  t2.index_put_({0, torch::indexing::Slice(6)}, torch::randint(0, 50, {6}, torch::kLong));
  const auto l1 = m->forward(t1).logits.narrow(1, 0, 6), l2 = m->forward(t2).logits.narrow(1, 0, 6);
  EXPECT_TRUE(torch::allclose(l1, l2, 1e-6, 1e-6));
}

TEST(Replace, PatternsReplaceAndCountParameters) {
  Llama m(tiny_config());
  m->init_random(3);
  EXPECT_TRUE(pattern_matches("layers.*.attention.*", "layers.1.attention.wq"));
  EXPECT_FALSE(pattern_matches("layers.*.attention.*", "layers.1.feed_forward.w1"));
  EXPECT_FALSE(pattern_matches("layers.*", "layers.1.attention.wq"));  // '*' does not cross dots
  QuantSpec spec;
  spec.experts = 4;
  const auto rep = replace_linears(m, spec);
  EXPECT_EQ(rep.replaced.size(), 14u);
  // Each linear (out x in) gains a router E x in and scales E x (in + out).
  int64_t extra = 0;
  for (const auto& n : rep.replaced) {
    auto l = m->get_linear(n);
    EXPECT_EQ(l->kind(), "binarymos");
    extra += 4 * l->in_features() + 4 * (l->in_features() + l->out_features());
  }
  EXPECT_EQ(rep.params_after - rep.params_before, extra);
  const auto named = m->named_parameters();
  EXPECT_TRUE(named.contains("layers.0.attention.wq.router"));
  EXPECT_TRUE(named.contains("layers.1.feed_forward.w2.s_out"));
  torch::NoGradGuard ng;
  EXPECT_EQ(m->forward(torch::zeros({1, 5}, torch::kLong)).logits.sizes(), (std::vector<int64_t>{1, 5, 50}));
}

TEST(Replace, UnmatchedPatternIsAnError) {
  Llama m(tiny_config());
  QuantSpec spec;
  spec.patterns = {"layers.*.attn.*"};
  try {
    replace_linears(m, spec);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'layers.*.attn.*' matches no decoder linear"), std::string::npos) << e.what();
  }
}

TEST(Replace, SignMethodAndSubsetPattern) {
  Llama m(tiny_config());
  QuantSpec spec;
  spec.method = "sign";
  spec.patterns = {"layers.1.feed_forward.w2"};
  const auto rep = replace_linears(m, spec);
  ASSERT_EQ(rep.replaced, std::vector<std::string>{"layers.1.feed_forward.w2"});
  EXPECT_EQ(m->get_linear("layers.1.feed_forward.w2")->kind(), "sign");
  EXPECT_EQ(m->get_linear("layers.0.feed_forward.w2")->kind(), "fp");
  EXPECT_EQ(rep.params_after, rep.params_before);
}

TEST(Stories260K, LegacyAndVersion1FilesGiveIdenticalLogits) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(v1, "models/stories260K/stories260K_v1.bin");
  auto a = load_model(v0), b = load_model(v1);
  const auto tokens = torch::randint(0, 512, {2, 33}, torch::kLong);
  EXPECT_TRUE(torch::equal(a.model->logits(tokens), b.model->logits(tokens)));
}

TEST(Stories260K, HuggingFaceFolderGivesTheSameLogits) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(hf, "models/stories260K-hf");
  auto a = load_model(v0), b = load_model(hf);
  EXPECT_EQ(b.format, "hf");
  const auto tokens = torch::randint(0, 512, {1, 40}, torch::kLong);
  const float diff = (a.model->logits(tokens) - b.model->logits(tokens)).abs().max().item<float>();
  EXPECT_LT(diff, 1e-4) << "max logit diff " << diff;
}

TEST(Stories260K, GreedyGenerationMatchesGoldenTextByteForByte) {
  BMOS_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(tok, "models/stories260K/tok512.model");
  BMOS_REQUIRE_DATA(golden, "models/stories260K/greedy_256steps_expected.txt");
  const std::string build = test::build_dir();
  // The fp16 KV cache (--kv_cache fp16) rounds every key and value, and moves no greedy choice of this teacher.
  for (const char* kv : {"model", "fp16"}) {
    const std::string out = run_command(std::string("OMP_WAIT_POLICY=PASSIVE ") + build + "/bmos generate --model " +
                                        model + " --tokenizer " + tok +
                                        " --prompt 'Once upon a time' --steps 256 --temperature 0 --kv_cache " + kv +
                                        " 2>/dev/null");
    EXPECT_EQ(out, read_file(golden)) << "--kv_cache " << kv;
  }
}

// --threads 0 (the default) is every core, not libtorch's own default (1 on a 2-vCPU VM, which halved decode speed).
TEST(Stories260K, GenerateUsesEveryCoreByDefault) {
  BMOS_REQUIRE_DATA(model, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(tok, "models/stories260K/tok512.model");
  const std::string cmd = std::string("OMP_WAIT_POLICY=PASSIVE ") + test::build_dir() + "/bmos generate --model " +
                          model + " --tokenizer " + tok + " --prompt 'Once' --steps 8 --temperature 0";
  const int cores = available_cores();
  EXPECT_NE(run_command(cmd + " 2>&1 >/dev/null").find(", " + std::to_string(cores) + " CPU threads)"),
            std::string::npos);
  EXPECT_NE(run_command(cmd + " --threads 1 2>&1 >/dev/null").find(", 1 CPU threads)"), std::string::npos);
}

}  // namespace
}  // namespace bmos
