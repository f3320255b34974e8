// Job files: every file in configs/ loads, and each kind of mistake names the file, the line and the key.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "trainer/job/job_config.h"

namespace bmos {
namespace {

std::string error_of(const std::string& yaml) {
  return test::error_of([&] { parse_job(yaml, "job.yaml", ""); });
}

const char* kMinimal = "teacher: {path: t.bin}\n";

TEST(JobConfig, EveryFileInConfigsLoads) {
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(BMOS_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    EXPECT_NO_THROW(load_job(e.path().string()));
    ++n;
  }
  EXPECT_GT(n, 0) << "configs/ holds no job file";
}

TEST(JobConfig, OneBudgetOfTokensStepsOrEpochs) {
  EXPECT_DOUBLE_EQ(parse_job("teacher: {path: t.bin}\ntrain: {epochs: 3}\n", "job.yaml", "").train.epochs, 3.0);
  EXPECT_HAS(error_of("teacher: {path: t.bin}\ntrain: {epochs: 3, tokens: 1000}\n"),
             "train.epochs: set one budget: tokens, steps or epochs");
  EXPECT_HAS(error_of("teacher: {path: t.bin}\ntrain: {epochs: -1}\n"), "train.epochs: must be >= 0");
  // weight: size mixes the sources as their concatenation would (the paper's C4 + WikiText-2)
  const JobConfig j = parse_job("teacher: {path: t.bin}\ndata: {sources: [{name: a, files: [x], weight: size}, "
                                "{name: b, files: [y], weight: 0.5}]}\n", "job.yaml", "");
  EXPECT_EQ(j.data.sources[0].weight, DataSource::kWeightBySize);
  EXPECT_EQ(j.data.sources[1].weight, 0.5);
}

TEST(JobConfig, DefaultsAndResolvedFields) {
  const JobConfig j = parse_job("run: {name: x}\nteacher: {path: t.bin}\ntrain: {lr: 1.0e-3, betas: [0.8, 0.9]}\n",
                                "job.yaml", "/base");
  EXPECT_EQ(j.run.out_dir, "runs/x");
  EXPECT_EQ(j.teacher.path, "/base/t.bin");
  EXPECT_EQ(j.quant.method, "binarymos");
  EXPECT_EQ(j.quant.experts, 4);
  EXPECT_DOUBLE_EQ(j.train.lr, 1e-3);
  EXPECT_DOUBLE_EQ(j.train.beta1, 0.8);
  EXPECT_DOUBLE_EQ(j.distill.hidden_mse, 10.0);
  EXPECT_EQ(j.data.cache_dir, "runs/data-cache");
}

TEST(JobConfig, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "train: {lr: fast}\n"), "job.yaml:2: train.lr: expected a number, got 'fast'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "train:\n  lrr: 1\n"),
            "job.yaml:3: train.lrr: unknown key (known keys here: activation_checkpointing, attention_chunk, batch_size, "
            "betas, clip, epochs, freeze, grad_accum, log_every, logit_chunk, lr, lr_router, lr_scales, min_lr_ratio, "
            "schedule, shard_optimizer, steps, tokens, warmup_ratio, weight_decay)");
  EXPECT_EQ(error_of(std::string(kMinimal) + "quant: {method: ternary}\n"),
            "job.yaml:2: quant.method: must be binarymos, sign or none");
  EXPECT_EQ(error_of(std::string(kMinimal) + "quant: {experts: 0}\n"), "job.yaml:2: quant.experts: must be between 1 and 64");
  EXPECT_EQ(error_of("teacher: {format: llama2c}\n"), "job.yaml:1: teacher.path: missing: the teacher model file or folder");
  EXPECT_NE(error_of(std::string(kMinimal) + "data:\n  sources:\n    - {name: a, files: [x], weight: -1}\n")
                .find("data.sources[0].weight: must be a number > 0 or \"size\""),
            std::string::npos);
  EXPECT_NE(error_of("run: [1, 2\n").find("job.yaml:"), std::string::npos);
  EXPECT_EQ(error_of(std::string(kMinimal) + "bogus: 1\n").rfind("job.yaml:2: bogus: unknown key", 0), 0u);
  EXPECT_EQ(error_of(std::string(kMinimal) + "tokenizer: {add_bos: maybe}\n"),
            "job.yaml:2: tokenizer.add_bos: expected true or false, got 'maybe'");
}

TEST(JobConfig, DistillReductionHiddenStatesAndTensorboardKeys) {
  const JobConfig d = parse_job(kMinimal, "job.yaml", "");
  EXPECT_EQ(d.distill.kl_reduction, "sequence_sum");  // defaults: the paper's loss (experiments/results/recipe_e4)
  EXPECT_EQ(d.distill.hidden_states, "hf");
  EXPECT_TRUE(d.run.tensorboard);
  const JobConfig p = parse_job(std::string(kMinimal) + "distill: {kl_reduction: token_mean, hidden_states: blocks}\n" +
                                    "run: {tensorboard: false}\n",
                                "job.yaml", "");
  EXPECT_EQ(p.distill.kl_reduction, "token_mean");
  EXPECT_EQ(p.distill.hidden_states, "blocks");
  EXPECT_FALSE(p.run.tensorboard);
  EXPECT_EQ(error_of(std::string(kMinimal) + "distill: {kl_reduction: batchmean}\n"),
            "job.yaml:2: distill.kl_reduction: must be token_mean or sequence_sum");
  EXPECT_EQ(error_of(std::string(kMinimal) + "distill: {hidden_states: all}\n"),
            "job.yaml:2: distill.hidden_states: must be blocks or hf");
  EXPECT_EQ(error_of(std::string(kMinimal) + "run: {tensorboard: maybe}\n"),
            "job.yaml:2: run.tensorboard: expected true or false, got 'maybe'");
}

TEST(JobConfig, MissingFileSaysSo) {
  try {
    load_job("/nonexistent/job.yaml");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/job.yaml: cannot open job file"), std::string::npos);
  }
}

TEST(JobConfig, OverridesReplaceAddAndNameTheirErrors) {
  const std::string base = "run: {name: x}\nteacher: {path: t.bin}\nquant: {method: binarymos, experts: 4}\n";
  const std::string text =
      apply_overrides(base, {"quant.experts=2", "run.out_dir=runs/e2", "train.lr_scales=1.0e-2", "quant.layers=[a, b]"},
                      "job.yaml");
  const JobConfig j = parse_job(text, "job.yaml", "");
  EXPECT_EQ(j.quant.experts, 2);
  EXPECT_EQ(j.quant.method, "binarymos");  // siblings kept
  EXPECT_EQ(j.run.out_dir, "runs/e2");
  EXPECT_EQ(j.run.name, "x");
  EXPECT_DOUBLE_EQ(j.train.lr_scales, 1e-2);  // a section that was not in the file
  EXPECT_EQ(j.quant.layers, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(text.rfind("# job.yaml with overrides: quant.experts=2; run.out_dir=runs/e2", 0), 0u);
  EXPECT_EQ(apply_overrides(base, {}, "job.yaml"), base);  // no overrides: the text itself (same resume hash)

  auto error = [&](const std::string& o) {
    try {
      apply_overrides(base, {o}, "job.yaml");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error("quant.experts"), "override 'quant.experts': expected key.path=value, e.g. quant.experts=2");
  EXPECT_EQ(error("quant.experts.n=2"), "override 'quant.experts.n=2': 'experts' is not a section in job.yaml");
  EXPECT_EQ(error("quant..experts=2"), "override 'quant..experts=2': empty component in key 'quant..experts'");
  // a misspelt key passes the override and is refused by the parser, by name; load_job says the line is of the
  // rewritten text
  const std::string dir = test::temp_dir("job_overrides");
  { std::ofstream(dir + "/job.yaml") << base; }
  try {
    load_job(dir + "/job.yaml", {"quant.expert=2"});
    ADD_FAILURE() << "quant.expert=2 was accepted";
  } catch (const std::exception& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("quant.expert: unknown key"), std::string::npos) << m;
    EXPECT_NE(m.find("[with --set overrides applied; the line is of the rewritten job]"), std::string::npos) << m;
  }
  std::filesystem::remove_all(dir);
  EXPECT_NE(error_of(apply_overrides(base, {"quant.expert=2"}, "job.yaml")).find("quant.expert: unknown key"),
            std::string::npos);
}

}  // namespace
}  // namespace bmos
