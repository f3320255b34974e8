// The raw one-token decode path (modules/decode_step.h) against the torch ops of the same packed model
// (LlamaRunOptions::fast_decode = false): logits and KV caches over a prompt and 12 decoded tokens, for grouped-query
// attention, biases, Qwen3's q/k norms with an explicit head_dim, Mistral's sliding window, a tied int8 head, and a
// long context whose attention is split across threads; and the models it must leave to the torch path.
#include <algorithm>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "modules/binarymos_linear.h"
#include "modules/decode_step.h"
#include "modules/llama.h"
#include "modules/packed/int8_rows_linear.h"
#include "modules/packed/packed_binarymos_linear.h"
#include "modules/packed/packed_model.h"
#include "modules/replace.h"
#include "tests/test_util.h"

namespace bmos {
namespace {

LlamaConfig small_config() {
  LlamaConfig c;
  c.dim = 48;
  c.hidden_dim = 100;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 67;
  c.max_seq_len = 40;
  return c;
}

// A served model: random weights, every decoder linear packed (E = 4, distinct experts, some biases), norms and
// embeddings random too; with int8 = true the embeddings and head become int8 rows (tied: one table for both).
Llama packed_model(const LlamaConfig& c, uint64_t seed, bool int8 = false) {
  torch::NoGradGuard no_grad;
  Llama m(c);
  m->init_random(seed);
  for (auto& p : m->named_parameters())
    if (p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);
  replace_linears(m, QuantSpec{});
  int k = 0;
  for (const auto& name : m->linear_names()) {
    auto b = std::dynamic_pointer_cast<BinaryMoSLinearImpl>(m->get_linear(name));
    b->s_in.mul_(1 + 0.3 * torch::randn_like(b->s_in));
    b->s_out.mul_(1 + 0.3 * torch::randn_like(b->s_out));
    b->router.normal_(0, 0.5);
    const torch::Tensor bias = ++k % 3 == 0 ? torch::randn({b->out_features()}) * 0.1 : torch::Tensor();
    m->set_linear(name, std::make_shared<PackedBinaryMoSLinearImpl>(pack_sign_bits(b->weight), b->in_features(),
                                                                     b->router, b->s_in, b->s_out, bias));
  }
  if (int8) {
    auto [codes, scale] = quantize_rows_int8(m->tok_embeddings->weight, "F32");
    auto rows = std::make_shared<Int8RowsLinearImpl>(codes, scale);
    m->token_rows = rows;
    if (c.tie_embeddings) m->tied_head = rows;
  }
  m->eval();
  return m;
}

// Prompt through the torch prefill, then `steps` one-token decodes on each path from identical caches; the caches and
// logits of the two paths within cache_tol and logit_tol (max_rel). Returns the last token's logits of the raw path.
torch::Tensor expect_paths_agree(Llama& m, int64_t prompt, int64_t steps, uint64_t seed, double cache_tol = 1e-5,
                                 double logit_tol = 1e-5) {
  torch::NoGradGuard no_grad;
  const LlamaConfig& c = m->config;
  torch::manual_seed(seed);
  const torch::Tensor ids = torch::randint(0, c.vocab_size, {1, prompt + steps}, torch::kLong);
  KVCache fast = m->new_cache(1, prompt + steps), ref = m->new_cache(1, prompt + steps);
  for (int64_t p = 0; p < prompt; p += 256) {  // the torch prefill, in chunks (bounded score matrices)
    const int64_t e = std::min(prompt, p + 256);
    m->forward_cached(ids.slice(1, p, e), fast);
    m->forward_cached(ids.slice(1, p, e), ref);
  }
  EXPECT_EQ(fast_decode_blocker(*m, fast), "");
  LlamaRunOptions off = m->run_options();
  off.fast_decode = false;
  const LlamaRunOptions on = m->run_options();
  double worst = 0;
  torch::Tensor last;
  for (int64_t i = prompt; i < prompt + steps; ++i) {
    const torch::Tensor tok = ids.slice(1, i, i + 1);
    m->set_run_options(on);
    const torch::Tensor got = m->forward_cached(tok, fast);
    m->set_run_options(off);
    EXPECT_NE(fast_decode_blocker(*m, ref), "");
    const torch::Tensor want = m->forward_cached(tok, ref);
    EXPECT_EQ(got.sizes(), want.sizes());
    worst = std::max(worst, test::max_rel(got, want));
    last = got;
  }
  m->set_run_options(on);
  EXPECT_EQ(fast.len, ref.len);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    EXPECT_LE(test::max_rel(fast.k[l], ref.k[l]), cache_tol) << "layer " << l << " keys";
    EXPECT_LE(test::max_rel(fast.v[l], ref.v[l]), cache_tol) << "layer " << l << " values";
  }
  std::printf("[decode_step] %s, %s cache: max rel logit diff raw vs torch over %lld tokens %.3e\n",
              c.describe().c_str(), c10::toString(fast.k[0].scalar_type()), static_cast<long long>(steps), worst);
  EXPECT_LE(worst, logit_tol);
  return last;
}

// An fp16 KV cache (LlamaRunOptions::fp16_kv_cache): the raw path rounds keys and values as torch's .to(kHalf) does
// and widens them exactly, so it agrees with the torch path over its own fp16 cache, but for the entries whose fp32
// values (equal up to summation order) fall on either side of an fp16 rounding boundary: one fp16 ulp (2^-11 of the
// entry) in the cache, and what that moves in the logits. Against the fp32 cache the logits move by the rounding.
void expect_fp16_cache_agrees(const LlamaConfig& c, uint64_t seed, int64_t prompt, int64_t steps) {
  Llama m = packed_model(c, seed);
  const torch::Tensor fp32 = expect_paths_agree(m, prompt, steps, seed + 1);
  // kv_cache_bytes_per_position() is what new_cache() holds for one position, in either dtype.
  auto cache_bytes = [&] {
    const KVCache one = m->new_cache(1, 1);
    int64_t bytes = 0;
    for (size_t l = 0; l < one.k.size(); ++l) bytes += one.k[l].nbytes() + one.v[l].nbytes();
    return bytes;
  };
  const int64_t fp32_bytes = m->kv_cache_bytes_per_position();
  EXPECT_EQ(fp32_bytes, 2 * c.n_layers * c.n_kv_heads * c.head_dim() * 4);
  EXPECT_EQ(cache_bytes(), fp32_bytes);
  LlamaRunOptions run = m->run_options();
  run.fp16_kv_cache = true;
  m->set_run_options(run);
  EXPECT_EQ(m->new_cache(1, 2).k[0].scalar_type(), torch::kHalf);
  EXPECT_EQ(m->kv_cache_bytes_per_position() * 2, fp32_bytes);
  EXPECT_EQ(cache_bytes(), fp32_bytes / 2);
  const torch::Tensor fp16 = expect_paths_agree(m, prompt, steps, seed + 1, 1e-3, 1e-4);
  const double moved = test::max_rel(fp16, fp32);
  std::printf("[decode_step] fp16 against fp32 cache: max rel logit diff %.3e\n", moved);
  EXPECT_GT(moved, 0.0);  // the cache really is rounded
  EXPECT_LE(moved, 1e-3);
}

TEST(DecodeStep, Fp16CacheMatchesTorchPath) { expect_fp16_cache_agrees(small_config(), 13, 5, 12); }

TEST(DecodeStep, MatchesTorchPathGqaBiases) {
  Llama m = packed_model(small_config(), 1);
  expect_paths_agree(m, 5, 12, 2);
}

TEST(DecodeStep, MatchesTorchPathQkNormExplicitHeadDimSlidingWindow) {
  LlamaConfig c = small_config();
  c.qk_norm = true;
  c.explicit_head_dim = 16;  // q: 4 x 16 = 64 != dim 48 (Qwen3's shape)
  c.sliding_window = 5;      // the window is passed during the decode: keys drop out
  Llama m = packed_model(c, 3);
  expect_paths_agree(m, 3, 12, 4);
}

TEST(DecodeStep, MatchesTorchPathTiedInt8Head) {
  LlamaConfig c = small_config();
  c.tie_embeddings = true;
  Llama m = packed_model(c, 5, /*int8=*/true);
  EXPECT_EQ(m->tied_head->kind(), "int8_rows");
  expect_paths_agree(m, 4, 12, 6);
}

TEST(DecodeStep, LongContextSplitsAttentionAcrossThreads) {
  LlamaConfig c = small_config();
  c.dim = 1024;
  c.n_heads = 8;  // 8 heads x 128 x (S >= 64): past the threaded-attention threshold, and a long context
  c.n_kv_heads = 2;
  c.hidden_dim = 64;
  c.n_layers = 1;
  c.max_seq_len = 1100;
  Llama m = packed_model(c, 7);
  const int before = at::get_num_threads();
  at::set_num_threads(2);  // the split needs 2 threads whatever the test runner set
  expect_paths_agree(m, 1030, 6, 8);
  expect_fp16_cache_agrees(c, 7, 1030, 6);
  at::set_num_threads(before);
}

TEST(DecodeStep, LeavesOtherModelsToTheTorchPath) {
  torch::NoGradGuard no_grad;
  Llama fp(small_config());  // FP linears: no raw forward
  KVCache cache = fp->new_cache(1, 4);
  EXPECT_NE(fast_decode_blocker(*fp, cache).find("raw forward"), std::string::npos);

  LlamaConfig opt = small_config();
  opt.layer_norm = true;
  opt.relu_mlp = true;
  Llama o = packed_model(opt, 9);
  KVCache oc = o->new_cache(1, 4);
  EXPECT_NE(fast_decode_blocker(*o, oc).find("OPT"), std::string::npos);

  Llama m = packed_model(small_config(), 11);
  KVCache two = m->new_cache(2, 4);
  EXPECT_NE(fast_decode_blocker(*m, two).find("KV cache"), std::string::npos);
  {
    torch::AutoGradMode grad(true);
    KVCache one = m->new_cache(1, 4);
    EXPECT_NE(fast_decode_blocker(*m, one).find("gradients"), std::string::npos);
  }
}

}  // namespace
}  // namespace bmos
