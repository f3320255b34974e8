// Perplexity and zero-shot scoring on models built here (a bigram table, a position table, a uniform model) where every
// number can be worked out by hand, the batched paths held to their one-at-a-time references, and the same on the real
// stories260K model (padding must not change a causal model's log-likelihoods).
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data/eval/eval_windows.h"
#include "modules/io/model_loader.h"
#include "tests/test_util.h"
#include "trainer/eval/eval_ppl.h"
#include "trainer/eval/eval_zeroshot.h"
#include "trainer/eval/eval_zeroshot_shared.h"

namespace bmos {
namespace {

// logits[b, t] = table[tokens[b, t]]: the next-token distribution depends on the current token only.
class BigramModel : public LanguageModel {
 public:
  explicit BigramModel(torch::Tensor table, int64_t max_len = 64) : table_(std::move(table)), max_len_(max_len) {}
  torch::Tensor logits(const torch::Tensor& tokens) override {
    return table_.index_select(0, tokens.reshape({-1})).view({tokens.size(0), tokens.size(1), -1});
  }
  int64_t vocab_size() const override { return table_.size(0); }
  int64_t max_seq_len() const override { return max_len_; }

 private:
  torch::Tensor table_;  // (V, V)
  int64_t max_len_;
};

// logits[b, t] = table[t]: depends on the position only, so left truncation is visible.
class PositionModel : public LanguageModel {
 public:
  explicit PositionModel(torch::Tensor table) : table_(std::move(table)) {}
  torch::Tensor logits(const torch::Tensor& tokens) override {
    return table_.narrow(0, 0, tokens.size(1)).unsqueeze(0).expand({tokens.size(0), -1, -1}).contiguous();
  }
  int64_t vocab_size() const override { return table_.size(1); }
  int64_t max_seq_len() const override { return table_.size(0); }

 private:
  torch::Tensor table_;  // (max_len, V)
};

// One id per byte (0-255), BOS 256, EOS 257.
class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids)
      if (id < 256) s += static_cast<char>(id);
    return s;
  }
  std::string decode_piece(int32_t, int32_t id) const override { return decode({id}); }
  int32_t vocab_size() const override { return 258; }
  int32_t bos_id() const override { return 256; }
  int32_t eos_id() const override { return 257; }
  std::string hash() const override { return "bytes"; }
  std::string kind() const override { return "bytes"; }
  std::string path() const override { return "<bytes>"; }
};

// Next-token probabilities 1/2 for "same token", 1/4 for each other one (V = 3).
torch::Tensor half_quarter_table() {
  const double h = std::log(0.5), q = std::log(0.25);
  return torch::tensor({h, q, q, q, h, q, q, q, h}, torch::kFloat).view({3, 3});
}

// ----------------------------------------------------------------------------------------------------- perplexity
TEST(EvalPerplexity, BigramModelMatchesHandComputedValue) {
  BigramModel model(half_quarter_table());
  // 13 tokens, seq_len 6: 13 // 6 = 2 windows, the last token dropped.
  //   [0 0 1 1 2 0]: 0->0 1/2, 0->1 1/4, 1->1 1/2, 1->2 1/4, 2->0 1/4  NLL = 8 ln 2
  //   [1 1 1 1 1 1]: five times 1/2                                     NLL = 5 ln 2
  //   ppl = exp(13 ln 2 / 10) = 2^1.3
  const std::vector<int32_t> tokens = {0, 0, 1, 1, 2, 0, 1, 1, 1, 1, 1, 1, 2};
  const EvalWindows w = contiguous_windows(tokens, 6, 0, "toy");
  ASSERT_EQ(w.count(), 2);
  for (int64_t batch : {1, 2, 0}) {
    PplOptions opt;
    opt.batch_windows = batch;
    const PplResult r = evaluate_perplexity(model, w, "toy", opt);
    EXPECT_EQ(r.tokens_scored, 10);
    EXPECT_NEAR(r.nll_sum, 13 * std::log(2.0), 1e-5) << "batch " << batch;
    EXPECT_NEAR(r.ppl, std::pow(2.0, 1.3), 1e-5) << "batch " << batch;
  }
}

TEST(EvalPerplexity, RefusesWindowsLongerThanTheModel) {
  BigramModel model(half_quarter_table(), /*max_len=*/4);
  const EvalWindows w = contiguous_windows(std::vector<int32_t>(12, 1), 6, 0, "toy");
  EXPECT_THROW(evaluate_perplexity(model, w, "toy"), std::runtime_error);
}

// ------------------------------------------------------------------------------------------------------ zero-shot
TEST(EvalZeroShot, AccAndAccNormPickDifferentChoices) {
  // Uniform model: every token costs ln 258. " ab" = 3 tokens, " abcdef" = 7 tokens.
  //   acc:      -3 ln258 > -7 ln258                   -> choice 0
  //   acc_norm: -3 ln258 / 2 < -7 ln258 / 6            -> choice 1 (the label)
  BigramModel model(torch::zeros({258, 258}));
  ByteTokenizer tok;
  TaskRecord r{"q", {"ab", "abcdef"}, /*label=*/1, 1};
  const TaskScore s = score_task(model, tok, "arc_easy", {r});
  EXPECT_EQ(s.items, 1);
  EXPECT_EQ(s.requests, 2);
  EXPECT_EQ(s.acc, 0.0);
  EXPECT_EQ(s.acc_norm, 1.0);
  EXPECT_EQ(s.metric, "acc_norm");
  EXPECT_EQ(s.reported(), 1.0);

  const auto ll = loglikelihood_tokens(model, {tokenize_request(tok, {"Question: q\nAnswer:", " ab"}),
                                               tokenize_request(tok, {"Question: q\nAnswer:", " abcdef"})});
  EXPECT_NEAR(ll[0], -3 * std::log(258.0), 1e-4);
  EXPECT_NEAR(ll[1], -7 * std::log(258.0), 1e-4);
}

TEST(EvalZeroShot, PredictFollowsNumpyArgmax) {
  const ItemPrediction a = predict({-4.0, -6.0, -4.0}, {2.0, 6.0, 1.0});
  EXPECT_EQ(a.pred_acc, 0);       // tie between 0 and 2: the first wins
  EXPECT_EQ(a.pred_acc_norm, 1);  // -2, -1, -4
  const ItemPrediction b = predict({-2.0, -2.0}, {1.0, 1.0});
  EXPECT_EQ(b.pred_acc, 0);  // BoolQ ["no", "yes"]: a tie is "no", as ll_yes > ll_no fails
}

TEST(EvalZeroShot, LeftTruncationFollowsTheHarness) {
  // max_length 4: context [1 2 3 4 5] + continuation [6 7] -> inp = [1..7][-5:][:-1] = [3 4 5 6], and the
  // continuation is scored at positions 2 and 3.
  torch::manual_seed(3);
  const torch::Tensor table = torch::randn({4, 10});
  PositionModel model(table);
  const auto logp = torch::log_softmax(table, -1);
  const double expected = logp[2][6].item<double>() + logp[3][7].item<double>();
  const std::vector<TokenRequest> req = {{{1, 2, 3, 4, 5}, {6, 7}}};
  EXPECT_NEAR(loglikelihood_tokens(model, req)[0], expected, 1e-5);
  EXPECT_NEAR(loglikelihood_tokens_ref(model, req, 4)[0], expected, 1e-5);
  // short request, no truncation: inp = [1 6], continuation [6 7] at positions 0 and 1
  const std::vector<TokenRequest> shorter = {{{1}, {6, 7}}};
  EXPECT_NEAR(loglikelihood_tokens(model, shorter)[0], logp[0][6].item<double>() + logp[1][7].item<double>(), 1e-5);
  // a continuation longer than max_length (the harness asserts) is scored on its last max_length tokens:
  // [1 | 1 2 3 4 5] -> inp = [1 2 3 4], scoring 2 3 4 5 at positions 0..3
  const std::vector<TokenRequest> clipped = {{{1}, {1, 2, 3, 4, 5}}};
  const double expected_clipped = logp[0][2].item<double>() + logp[1][3].item<double>() + logp[2][4].item<double>() +
                                  logp[3][5].item<double>();
  EXPECT_NEAR(loglikelihood_tokens(model, clipped)[0], expected_clipped, 1e-5);
  EXPECT_NEAR(loglikelihood_tokens_ref(model, clipped, 4)[0], expected_clipped, 1e-5);
}

std::vector<TokenRequest> random_requests(int n, int vocab, int max_ctx, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<TokenRequest> reqs;
  for (int i = 0; i < n; ++i) {
    const int64_t c = torch::randint(1, max_ctx, {1}).item<int64_t>();
    const int64_t k = torch::randint(1, 6, {1}).item<int64_t>();
    TokenRequest r;
    for (int64_t t = 0; t < c; ++t) r.context.push_back(static_cast<int32_t>(torch::randint(0, vocab, {1}).item<int64_t>()));
    for (int64_t t = 0; t < k; ++t)
      r.continuation.push_back(static_cast<int32_t>(torch::randint(0, vocab, {1}).item<int64_t>()));
    reqs.push_back(std::move(r));
  }
  return reqs;
}

TEST(EvalZeroShot, BatchedMatchesReferenceOnPositionModel) {
  torch::manual_seed(5);
  PositionModel model(torch::randn({24, 30}));
  const auto reqs = random_requests(40, 30, 40, 11);  // many longer than max_length 24: truncated
  ZeroShotOptions opt;
  opt.token_budget = 100;  // several rows per batch, with padding
  const auto fast = loglikelihood_tokens(model, reqs, opt);
  const auto ref = loglikelihood_tokens_ref(model, reqs, 0);
  double worst = 0;
  for (size_t i = 0; i < reqs.size(); ++i) worst = std::max(worst, std::abs(fast[i] - ref[i]));
  std::printf("batched vs reference (position model): max |diff| = %.3g\n", worst);
  EXPECT_LT(worst, 1e-4);
}

// ----------------------------------------------------------------------------------------------- real stories260K
TEST(EvalOnStories260K, PaddedBatchesEqualSingleRequests) {
  BMOS_REQUIRE_DATA(path, "models/stories260K/stories260K.bin");
  LoadedModel m = load_model(path);
  const auto reqs = random_requests(24, 512, 80, 7);
  ZeroShotOptions opt;
  opt.token_budget = 400;
  const auto fast = loglikelihood_tokens(*m.model, reqs, opt);
  const auto ref = loglikelihood_tokens_ref(*m.model, reqs, 0);
  double worst = 0;
  for (size_t i = 0; i < reqs.size(); ++i) worst = std::max(worst, std::abs(fast[i] - ref[i]));
  std::printf("batched vs reference (stories260K): max |diff| = %.3g\n", worst);
  EXPECT_LT(worst, 1e-3);

  // perplexity: batched windows equal one window at a time
  std::vector<int32_t> tokens;
  for (const auto& r : reqs) tokens.insert(tokens.end(), r.context.begin(), r.context.end());
  const EvalWindows w = contiguous_windows(tokens, 64, 0, "random");
  PplOptions one;
  one.batch_windows = 1;
  const PplResult a = evaluate_perplexity(*m.model, w, "random", one);
  const PplResult b = evaluate_perplexity(*m.model, w, "random");
  std::printf("stories260K ppl on random tokens: %.3f (batched) vs %.3f (one window at a time)\n", b.ppl, a.ppl);
  EXPECT_NEAR(a.nll_sum, b.nll_sum, 1e-3 * a.tokens_scored);
}


TEST(EvalOnStories260K, SharedContextMatchesReference) {
  BMOS_REQUIRE_DATA(path, "models/stories260K/stories260K.bin");
  LoadedModel m = load_model(path);
  // Several choices per context (1 to 4 continuation tokens, one-token ones included), contexts of repeated lengths,
  // and with max_length 48 some requests are truncated (they take the plain path).
  auto reqs = random_requests(12, 512, 60, 9);
  const size_t n_ctx = reqs.size();
  torch::manual_seed(4);
  for (size_t i = 0; i < n_ctx; ++i)
    for (int c = 0; c < 3; ++c) {
      TokenRequest r{reqs[i].context, {}};
      const int64_t k = torch::randint(1, 5, {1}).item<int64_t>();
      for (int64_t t = 0; t < k; ++t) r.continuation.push_back(static_cast<int32_t>(torch::randint(0, 512, {1}).item<int64_t>()));
      reqs.push_back(r);
    }
  reqs.push_back({reqs[0].context, reqs[1].continuation});  // same length context as others in its bucket
  for (int64_t max_length : {int64_t{0}, int64_t{48}}) {
    ZeroShotOptions opt;
    opt.max_length = max_length;
    opt.token_budget = 150;  // several chunks per context length
    const auto fast = loglikelihood_shared_context(*m.model, reqs, opt);
    const auto ref = loglikelihood_tokens_ref(*m.model, reqs, max_length);
    double worst = 0;
    for (size_t i = 0; i < reqs.size(); ++i) worst = std::max(worst, std::abs(fast[i] - ref[i]));
    std::printf("shared-context vs reference (stories260K, max_length %lld): max |diff| = %.3g over %zu requests\n",
                static_cast<long long>(max_length), worst, reqs.size());
    EXPECT_LT(worst, 1e-3);
  }
}


TEST(EvalOnStories260K, WorkerThreadsGiveTheSameNumbers) {
  BMOS_REQUIRE_DATA(path, "models/stories260K/stories260K.bin");
  LoadedModel m = load_model(path);
  const auto reqs = random_requests(30, 512, 70, 13);
  for (bool shared : {false, true}) {
    ZeroShotOptions one, two;
    one.token_budget = two.token_budget = 200;
    two.workers = 2;
    int64_t last = 0;
    two.progress = [&](int64_t done, int64_t total) {
      EXPECT_GT(done, last);
      EXPECT_LE(done, total);
      last = done;
    };
    const auto a = shared ? loglikelihood_shared_context(*m.model, reqs, one) : loglikelihood_tokens(*m.model, reqs, one);
    const auto b = shared ? loglikelihood_shared_context(*m.model, reqs, two) : loglikelihood_tokens(*m.model, reqs, two);
    EXPECT_EQ(a, b) << (shared ? "shared-context" : "full-sequence") << " path";
    EXPECT_EQ(last, static_cast<int64_t>(reqs.size()));
  }
  std::vector<int32_t> tokens;
  for (const auto& r : reqs) tokens.insert(tokens.end(), r.context.begin(), r.context.end());
  const EvalWindows w = contiguous_windows(tokens, 32, 0, "random");
  PplOptions one, two;
  one.batch_windows = two.batch_windows = 3;
  two.workers = 2;
  EXPECT_EQ(evaluate_perplexity(*m.model, w, "w", one).nll_sum, evaluate_perplexity(*m.model, w, "w", two).nll_sum);
}

}  // namespace
}  // namespace bmos
