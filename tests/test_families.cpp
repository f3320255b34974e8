// The families (issue 16): Llama-3 rotary scaling, Qwen2 q/k/v biases, Qwen3 head_dim + q/k norms, Mistral sliding
// window, OPT (LayerNorm, learned positions, ReLU, biases; pre-LN OPT-125M and post-LN OPT-350M with projections). Each family's real config.json (../shared/data/models/*), scaled down with every feature on, is
// written as a random-weight HF folder, loaded, and held to tests/reference/hf_reference.py (HF's formulas by hand in
// Python/torch, float64); the KV-cache decode to the full forward; chunked attention (forward and backward) to the
// plain one under a sliding window; a Qwen2/Qwen3 round trip through replacement, a few steps, our checkpoint files and
// the packed export; and configs we refuse, by key.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "modules/binarymos_linear.h"
#include "modules/io/hf_llama.h"
#include "modules/io/model_files.h"
#include "modules/io/model_loader.h"
#include "modules/io/safetensors.h"
#include "modules/packed/packed_layout.h"
#include "modules/replace.h"
#include "trainer/export/export.h"
#include "trainer/job/job_config.h"
#include "trainer/losses.h"
#include "trainer/plan.h"
#include "tests/test_util.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kPython = "/usr/bin/python3";

json real_config(const std::string& data, const std::string& model) {
  std::ifstream in(data + "/models/" + model + "/config.json");
  return json::parse(in);
}

// The real config scaled down: 2 layers, hidden 64, 4 heads over 2 kv heads, a small vocabulary; family features on.
json scaled(json j, const std::string& family) {
  if (family.rfind("opt", 0) == 0) {  // OPT's keys; OPT-350M: embeddings 48 wide, projected to 64
    j["hidden_size"] = 64;
    j["ffn_dim"] = 96;
    j["num_hidden_layers"] = 2;
    j["num_attention_heads"] = 4;
    j["vocab_size"] = 97;
    j["max_position_embeddings"] = 64;
    j["word_embed_proj_dim"] = j["word_embed_proj_dim"] == j["hidden_size"] ? 64 : 48;
    return j;
  }
  j["hidden_size"] = 64;
  j["intermediate_size"] = 96;
  j["num_hidden_layers"] = 2;
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 2;
  j["vocab_size"] = 97;
  j["max_position_embeddings"] = 64;
  j["bos_token_id"] = 1;
  j["eos_token_id"] = 2;
  if (j.contains("head_dim")) j["head_dim"] = 16;
  if (family == "llama3") {
    // head_dim 16, theta 500000: wavelengths 6.3, 32, 167, ...; original 64 -> high band < 16, medium 16..64, low > 64
    j["rope_scaling"]["original_max_position_embeddings"] = 64;
  } else if (family == "qwen3") {
    j["head_dim"] = 32;  // != hidden/heads = 16, as Qwen3-0.6B (1024 / 16 heads, head_dim 128)
  } else if (family == "mistral") {
    j["sliding_window"] = 8;  // shorter than the test sequences
  }
  return j;
}

struct Family {
  const char* name;
  const char* model;  // folder under ../shared/data/models
};
const Family kFamilies[] = {{"llama3", "llama-3.2-1b"},
                            {"llama3_untied", "llama-3.1-8b"},
                            {"qwen2", "qwen2.5-0.5b"},
                            {"qwen3", "qwen3-0.6b"},
                            {"mistral", "mistral-7b-v0.1"},
                            {"opt", "opt-125m"},
                            {"opt_postln", "opt-350m"}};

// An HF folder of `j` with random fp32 weights; norms are 1 + noise, so a wrongly ordered q_norm/k_norm shows.
void write_random_folder(const json& j, const std::string& dir, uint64_t seed) {
  const LlamaConfig c = llama_config_from_hf_json(j, dir + "/config.json");
  torch::manual_seed(seed);
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, shape] : hf_llama_tensor_shapes(c)) {
    torch::Tensor t = name.find("norm") != std::string::npos ? 1 + 0.2 * torch::randn(shape)
                      : name.find("embed") != std::string::npos || name.find("lm_head") != std::string::npos
                          ? torch::randn(shape)
                          : 0.15 * torch::randn(shape);
    entries.push_back({name, t, ""});
  }
  fs::create_directories(dir);
  write_safetensors(dir + "/model.safetensors", entries, {{"format", "pt"}});
  std::ofstream(dir + "/config.json") << j.dump(2) << "\n";
}

torch::Tensor tokens_for(int64_t vocab, int64_t T, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, vocab, {1, T}, torch::kLong);
}

using test::python_has_torch;

// tests/reference/hf_reference.py on the folder: logits (T, vocab).
torch::Tensor reference_logits(const std::string& dir, const torch::Tensor& tokens, int64_t vocab) {
  const std::string tok_file = dir + "/tokens.txt", out_file = dir + "/ref_logits.f32";
  {
    std::ofstream out(tok_file);
    for (int64_t i = 0; i < tokens.size(1); ++i) out << tokens[0][i].item<int64_t>() << " ";
  }
  const std::string cmd = std::string(kPython) + " " + BMOS_SOURCE_DIR + "/tests/reference/hf_reference.py " + dir +
                          " " + tok_file + " " + out_file;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out_file, std::ios::binary);
  torch::Tensor t = torch::empty({tokens.size(1), vocab});
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * sizeof(float));
  EXPECT_TRUE(in.good()) << "short reference output " << out_file;
  return t;
}

using test::max_rel;

// Sets `data` to ../shared/data (the families' config.json files are under models/), or skips loudly.
#define BMOS_FAMILY_CONFIGS(data)                                 \
  BMOS_REQUIRE_DATA(data##_file, "models/qwen3-0.6b/config.json"); \
  const std::string data = ::bmos::test::data_dir()

// ------------------------------------------------------------------------------------------------ real configs
TEST(Families, RealConfigsParseWithTheirFeatures) {
  BMOS_FAMILY_CONFIGS(data);
  const LlamaConfig l32 = llama_config_from_hf_json(real_config(data, "llama-3.2-1b"), "llama-3.2-1b");
  EXPECT_EQ(l32.rope_factor, 32.0);
  EXPECT_EQ(l32.rope_original_max_positions, 8192);
  EXPECT_TRUE(l32.tie_embeddings);
  EXPECT_EQ(l32.head_dim(), 64);
  const LlamaConfig q2 = llama_config_from_hf_json(real_config(data, "qwen2.5-0.5b"), "qwen2.5-0.5b");
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_EQ(q2.sliding_window, 0);
  EXPECT_EQ(q2.rope_theta, 1e6);
  const LlamaConfig q3 = llama_config_from_hf_json(real_config(data, "qwen3-0.6b"), "qwen3-0.6b");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_FALSE(q3.qkv_bias);
  EXPECT_EQ(q3.head_dim(), 128);
  EXPECT_EQ(q3.dim, 1024);
  const LlamaConfig m = llama_config_from_hf_json(real_config(data, "mistral-7b-v0.1"), "mistral-7b-v0.1");
  EXPECT_EQ(m.sliding_window, 4096);
  EXPECT_EQ(m.family, "mistral");
  const LlamaConfig o1 = llama_config_from_hf_json(real_config(data, "opt-125m"), "opt-125m");
  EXPECT_TRUE(o1.layer_norm && o1.learned_positions && o1.relu_mlp && o1.linear_bias && o1.final_norm);
  EXPECT_FALSE(o1.post_norm || o1.projects_embeddings());
  EXPECT_TRUE(o1.tie_embeddings);
  EXPECT_EQ(o1.bos_id, 2);
  EXPECT_EQ(o1.hidden_dim, 3072);
  const LlamaConfig o3 = llama_config_from_hf_json(real_config(data, "opt-350m"), "opt-350m");
  EXPECT_TRUE(o3.post_norm);
  EXPECT_FALSE(o3.final_norm);
  EXPECT_EQ(o3.embedding_dim(), 512);
  EXPECT_EQ(o3.dim, 1024);
  // Hugging Face's parameter counts of OPT-125M and OPT-350M (num_parameters()).
  EXPECT_EQ(fp_model_params(o1), 125239296);
  EXPECT_EQ(fp_model_params(o3), 331196416);
  // Written back and read again: the same model (our checkpoint files and exports store config this way).
  for (const LlamaConfig& c : {l32, q2, q3, m, o1, o3})
    EXPECT_EQ(llama_config_from_hf_json(llama_config_to_hf_json(c), "round trip").describe(), c.describe());
}

TEST(Families, EveryShapeConfigParses) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(std::string(BMOS_SOURCE_DIR) + "/configs/shapes")) {
    if (e.path().extension() != ".json") continue;
    std::ifstream in(e.path());
    const LlamaConfig c = llama_config_from_hf_json(json::parse(in), e.path().string());
    std::printf("[shapes] %s: %s\n", e.path().filename().c_str(), c.describe().c_str());
    ++n;
  }
  EXPECT_GE(n, 8);
}

// Each family's job (configs/families/<model>_e4.yaml) and the paper's jobs (configs/paper/<model>.yaml) load and plan
// at their real shapes (configs/shapes/): the student's parameter count is the FP model's plus the scales and routers;
// the family jobs fit their device (the paper's LLaMA-2 jobs need more than one 80 GB GPU, as the paper's did).
TEST(Families, FamilyAndPaperJobsLoadAndPlanAtTheirShapes) {
  int n = 0, paper = 0;
  std::vector<fs::path> jobs;
  for (const char* folder : {"/configs/families", "/configs/paper"})
    for (const auto& e : fs::directory_iterator(std::string(BMOS_SOURCE_DIR) + folder))
      if (e.path().extension() == ".yaml") jobs.push_back(e.path());
  for (const fs::path& path : jobs) {
    SCOPED_TRACE(path.string());
    const bool is_paper = path.parent_path().filename() == "paper";
    const std::string stem = path.stem().string();
    std::string model = is_paper ? stem : stem.substr(0, stem.rfind("_e"));
    if (model.rfind("llama-2-", 0) == 0) model = "llama2-" + model.substr(8);
    const JobConfig job = load_job(path.string());
    const LlamaConfig shape = read_model_config(std::string(BMOS_SOURCE_DIR) + "/configs/shapes/" + model + ".json");
    PlanOptions o;
    o.device_memory_gb = job.run.device == "cpu" ? 24 : 80;  // this machine / an 80 GB GPU
    const MemoryPlan plan = plan_memory(job, shape, o);
    std::printf("[%s job %s] %s: teacher %.3f B params, student %.3f B, plan %.2f GiB of %.0f (%s)\n",
                is_paper ? "paper" : "family", stem.c_str(), shape.describe().c_str(), plan.teacher_params / 1e9, plan.student_params / 1e9,
                plan.total / 1073741824.0, plan.capacity / 1073741824.0, plan.fits ? "fits" : "DOES NOT FIT");
    EXPECT_EQ(job.quant.experts, 4);
    EXPECT_EQ(job.data.seq_len, 2048);
    EXPECT_GT(plan.student_params, plan.teacher_params);
    if (is_paper) {
      EXPECT_EQ(job.train.epochs, 3.0);
      EXPECT_EQ(job.distill.kl_reduction, "sequence_sum");
      EXPECT_EQ(job.distill.hidden_states, "hf");
      ++paper;
    } else {
      EXPECT_TRUE(plan.fits);
      ++n;
    }
  }
  EXPECT_GE(n, 4) << "configs/families/ should hold OPT-125M, OPT-1.3B, Llama-3.2-1B and Qwen2.5-0.5B jobs";
  EXPECT_EQ(paper, 4) << "configs/paper/ holds the paper's OPT-125M, OPT-1.3B, LLaMA-2-7B and LLaMA-2-13B jobs";
}

// ------------------------------------------------------------------------------------ logits against HF's formulas
TEST(Families, LogitsMatchPythonReferenceOfHfFormulas) {
  BMOS_FAMILY_CONFIGS(data);
  if (!python_has_torch())
    GTEST_SKIP() << "SKIPPED: /usr/bin/python3 has no torch, so the HF reference (tests/reference/hf_reference.py) "
                    "cannot run; install it with `apt-get install python3-torch` (scripts/setup.sh does)";
  const std::string tmp = test::temp_dir("families_ref");
  uint64_t seed = 1;
  for (const Family& f : kFamilies) {
    SCOPED_TRACE(f.name);
    const json j = scaled(real_config(data, f.model), f.name);
    const std::string dir = tmp + "/" + f.name;
    write_random_folder(j, dir, ++seed);
    Llama model = load_model(dir).model;
    const torch::Tensor tokens = tokens_for(97, 40, seed);  // 40 > 8 (window), > 2 x 16 (llama3 medium band)
    torch::NoGradGuard no_grad;
    const torch::Tensor got = model->forward(tokens).logits[0];
    const torch::Tensor want = reference_logits(dir, tokens, 97);
    const double abs_diff = (got - want).abs().max().item<double>(), rel = max_rel(got, want);
    std::printf("[families %s] C++ vs Python HF reference: max |logit diff| %.3e (max |logit| %.2f, rel %.3e)\n",
                f.name, abs_diff, want.abs().max().item<double>(), rel);
    EXPECT_LE(rel, 1e-4);
  }
  fs::remove_all(tmp);
}

// -------------------------------------------------------------------------- pytorch_model.bin = model.safetensors
// The same random weights saved by PyTorch itself (torch.save, as transformers' save_pretrained without
// safe_serialization): OPT under facebook's "decoder." names in one pytorch_model.bin, Llama-3 in two shards with
// pytorch_model.bin.index.json. The logits must be bit-identical to the safetensors folder's.
TEST(Families, PytorchModelBinGivesTheSameLogitsAsSafetensors) {
  BMOS_FAMILY_CONFIGS(data);
  if (!python_has_torch())
    GTEST_SKIP() << "SKIPPED: /usr/bin/python3 has no torch, so no pytorch_model.bin can be written; install it with "
                    "`apt-get install python3-torch` (scripts/setup.sh does)";
  const std::string tmp = test::temp_dir("families_bin");
  for (const Family& f : {Family{"opt", "opt-125m"}, Family{"llama3", "llama-3.2-1b"}}) {
    SCOPED_TRACE(f.name);
    const std::string st = tmp + "/" + f.name + "_st", bin = tmp + "/" + f.name + "_bin";
    write_random_folder(scaled(real_config(data, f.model), f.name), st, 77);
    fs::create_directories(bin);
    fs::copy_file(st + "/config.json", bin + "/config.json");
    const bool sharded = f.name == std::string("llama3");
    const std::string script =
        "import sys, json, torch; sys.path.insert(0, '" + std::string(BMOS_SOURCE_DIR) + "/tests/reference')\n"
        "import make_torch_bin as m\n"
        "w = m.read_safetensors('" + st + "/model.safetensors')\n"
        "if " + (sharded ? "False" : "True") + ": w = {k[len('model.'):] if k.startswith('model.decoder.') else k: v "
        "for k, v in w.items()}\n"
        "if " + (sharded ? "True" : "False") + ":\n"
        "  names = list(w); half = len(names) // 2; wm = {}\n"
        "  for i, part in enumerate((names[:half], names[half:])):\n"
        "    fn = 'pytorch_model-%05d-of-00002.bin' % (i + 1)\n"
        "    torch.save({n: w[n] for n in part}, '" + bin + "/' + fn); wm.update({n: fn for n in part})\n"
        "  json.dump({'metadata': {}, 'weight_map': wm}, open('" + bin + "/pytorch_model.bin.index.json', 'w'))\n"
        "else:\n"
        "  torch.save(w, '" + bin + "/pytorch_model.bin')\n";
    std::ofstream(tmp + "/to_bin.py") << script;
    ASSERT_EQ(std::system((std::string(kPython) + " " + tmp + "/to_bin.py").c_str()), 0) << script;
    ASSERT_TRUE(fs::exists(bin + (sharded ? "/pytorch_model.bin.index.json" : "/pytorch_model.bin")));
    Llama from_st = load_model(st).model, from_bin = load_model(bin).model;
    const torch::Tensor tokens = tokens_for(97, 20, 5);
    torch::NoGradGuard no_grad;
    const torch::Tensor a = from_st->forward(tokens).logits, b = from_bin->forward(tokens).logits;
    std::printf("[families %s] pytorch_model.bin%s vs model.safetensors: max |logit diff| %.1e\n", f.name,
                sharded ? " (2 shards + index)" : " (facebook's decoder.* names)", (a - b).abs().max().item<double>());
    EXPECT_TRUE(torch::equal(a, b));
    // The Python reference reads the .bin too: the same logits as from the safetensors folder.
    EXPECT_LE(max_rel(reference_logits(bin, tokens, 97), a[0]), 1e-4);
  }
  fs::remove_all(tmp);
}

// -------------------------------------------------------------------------------------- decode equals full forward
TEST(Families, KvCacheDecodeEqualsFullForward) {
  BMOS_FAMILY_CONFIGS(data);
  const std::string tmp = test::temp_dir("families_cache");
  uint64_t seed = 20;
  for (const Family& f : kFamilies) {
    SCOPED_TRACE(f.name);
    const std::string dir = tmp + "/" + f.name;
    write_random_folder(scaled(real_config(data, f.model), f.name), dir, ++seed);
    Llama model = load_model(dir).model;
    torch::NoGradGuard no_grad;
    const int64_t T = 30;  // mistral: well past its window of 8
    const torch::Tensor tokens = tokens_for(97, T, seed);
    const torch::Tensor full = model->forward(tokens).logits;  // (1, T, V)
    KVCache cache = model->new_cache(1, T);
    std::vector<torch::Tensor> steps = {model->forward_cached(tokens.narrow(1, 0, 5), cache)};  // a prompt, then 1 by 1
    for (int64_t t = 5; t < T; ++t) steps.push_back(model->forward_cached(tokens.narrow(1, t, 1), cache));
    const double rel = max_rel(torch::cat(steps, 1), full);
    std::printf("[families %s] KV-cache decode vs full forward: max rel diff %.3e\n", f.name, rel);
    EXPECT_LE(rel, 1e-5);
  }
  fs::remove_all(tmp);
}

// ----------------------------------------------------------------- chunked attention keeps the window, both ways
TEST(Families, ChunkedAttentionWithSlidingWindowMatchesPlain) {
  BMOS_FAMILY_CONFIGS(data);
  const std::string dir = test::temp_dir("families_chunk");
  write_random_folder(scaled(real_config(data, "mistral-7b-v0.1"), "mistral"), dir, 7);
  Llama model = load_model(dir).model;
  for (auto& p : model->parameters()) p.set_requires_grad(true);
  model->train();
  const torch::Tensor tokens = tokens_for(97, 29, 3);
  torch::manual_seed(4);
  const torch::Tensor probe = torch::randn({1, 29, 97});
  auto run = [&](int64_t chunk) {
    model->set_run_options({chunk, false});
    model->zero_grad();
    const torch::Tensor logits = model->forward(tokens).logits;
    (logits * probe).sum().backward();
    std::vector<torch::Tensor> grads = {logits.detach()};
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const auto plain = run(0), chunked = run(4);
  double worst = 0;
  for (size_t i = 0; i < plain.size(); ++i) worst = std::max(worst, max_rel(chunked[i], plain[i]));
  std::printf("[families mistral] chunked (4) vs plain attention, window 8: logits and gradients max rel diff %.3e\n",
              worst);
  EXPECT_LE(worst, 1e-4);
  fs::remove_all(dir);
}

// ------------------------------------------------------- replacement -> steps -> checkpoint -> export -> packed
TEST(Families, RoundTripThroughCheckpointAndPackedExport) {
  BMOS_FAMILY_CONFIGS(data);
  const std::string tmp = test::temp_dir("families_roundtrip");
  uint64_t seed = 40;
  for (const Family& f : {Family{"qwen2", "qwen2.5-0.5b"}, Family{"qwen3", "qwen3-0.6b"}, Family{"opt", "opt-125m"},
                          Family{"opt_postln", "opt-350m"}}) {
    SCOPED_TRACE(f.name);
    const std::string dir = tmp + "/" + f.name;
    write_random_folder(scaled(real_config(data, f.model), f.name), dir + "/hf", ++seed);
    Llama teacher = load_model(dir + "/hf").model;
    Llama student = load_model(dir + "/hf").model;
    const std::string wq = "layers.1.attention.wq";
    const torch::Tensor fp_bias = f.name != std::string("qwen3")
                                      ? std::dynamic_pointer_cast<FpLinearImpl>(student->get_linear(wq))->bias.clone()
                                      : torch::Tensor();
    replace_linears(student, QuantSpec{});
    for (auto& p : student->parameters()) p.set_requires_grad(true);
    auto bq = std::dynamic_pointer_cast<BinaryMoSLinearImpl>(student->get_linear(wq));
    ASSERT_TRUE(bq);
    ASSERT_EQ(bq->bias.defined(), fp_bias.defined());
    if (fp_bias.defined()) {
      EXPECT_TRUE(torch::equal(bq->bias, fp_bias)) << "the q bias did not survive replacement";
    }

    // Text the teacher wrote (sampled), so perplexities are those of a language model on its own kind of text; then
    // a few KD steps toward the teacher's logits: biases, norms and scales all move.
    torch::Tensor tokens = tokens_for(97, 1, seed), target;
    {
      torch::NoGradGuard no_grad;
      while (tokens.size(1) < 24) {
        const torch::Tensor p = torch::softmax(teacher->forward(tokens).logits[0][-1] / 4.0, -1);
        tokens = torch::cat({tokens, torch::multinomial(p, 1).unsqueeze(0)}, 1);
      }
      target = teacher->forward(tokens).logits;
    }
    torch::optim::Adam opt(student->parameters(), torch::optim::AdamOptions(1e-3));
    student->train();
    double first = 0, last = 0;
    for (int step = 0; step < 4; ++step) {
      opt.zero_grad();
      const torch::Tensor loss = kd_kl(student->forward(tokens).logits, target, 1.0);
      loss.backward();
      opt.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    student->eval();
    if (fp_bias.defined()) {
      EXPECT_FALSE(torch::equal(bq->bias, fp_bias)) << "the q bias did not train";
    }

    torch::NoGradGuard no_grad;
    save_model_files(dir + "/ck", student);
    Llama back = load_model_files(dir + "/ck");
    back->eval();
    const torch::Tensor graph = student->forward(tokens).logits;
    const double ck_diff = (back->forward(tokens).logits - graph).abs().max().item<double>();
    EXPECT_EQ(ck_diff, 0.0) << "checkpoint files changed the model";

    ExportOptions o;
    o.scale_dtype = o.fp_dtype = "f32";
    o.sample_sequences = 2;
    o.sample_len = 12;
    const ExportReport report = export_packed(back, dir + "/out", o);
    LoadedModel packed = load_model(dir + "/out");
    EXPECT_EQ(packed.format, "packed");
    EXPECT_EQ(packed.model->config.describe(), student->config.describe());
    const torch::Tensor packed_logits = packed.model->forward(tokens).logits;
    const double rel = max_rel(packed_logits, graph);
    // Perplexity of the sequence's next tokens under each (the yardstick: within 0.5%).
    auto ppl = [&](const torch::Tensor& logits) {
      const torch::Tensor lp = torch::log_softmax(logits[0].narrow(0, 0, 23), -1);
      return std::exp(-lp.gather(1, tokens[0].narrow(0, 1, 23).unsqueeze(1)).mean().item<double>());
    };
    const double ppl_graph = ppl(graph), ppl_packed = ppl(packed_logits);
    std::printf("[families %s round trip] KD loss %.4g -> %.4g over 4 steps; checkpoint max |diff| %.1e; packed vs "
                "graph logits max rel %.3e, perplexity %.4f vs %.4f (export report: logits %.3e, worst layer %s "
                "%.3e)\n",
                f.name, first, last, ck_diff, rel, ppl_packed, ppl_graph, report.logits_max_rel,
                report.worst_layer.c_str(), report.worst_max_rel);
    EXPECT_LE(rel, 2e-5);
    EXPECT_LE(std::abs(ppl_packed / ppl_graph - 1), 0.005);
  }
  fs::remove_all(tmp);
}

// --------------------------------------------------------------------------------------------- what we refuse
TEST(Families, UnsupportedConfigsNameTheKey) {
  BMOS_FAMILY_CONFIGS(data);
  auto error = [&](const char* model, const std::function<void(json&)>& edit) {
    json j = real_config(data, model);
    edit(j);
    return test::error_of([&] { llama_config_from_hf_json(j, "cfg.json"); });
  };
  std::string m = error("llama-3.2-1b", [](json& j) { j["model_type"] = "gpt_neox"; });
  EXPECT_HAS(m, "cfg.json: key 'model_type'");
  EXPECT_HAS(m, "gpt_neox");
  m = error("llama-3.2-1b", [](json& j) { j["rope_scaling"]["rope_type"] = "yarn"; });
  EXPECT_HAS(m, "key 'rope_scaling'");
  EXPECT_HAS(m, "yarn");
  m = error("llama-3.2-1b", [](json& j) { j["rope_scaling"]["beta_fast"] = 32; });
  EXPECT_HAS(m, "key 'rope_scaling.beta_fast'");
  m = error("qwen2.5-0.5b", [](json& j) { j["use_sliding_window"] = true; });
  EXPECT_HAS(m, "key 'use_sliding_window'");
  m = error("qwen3-0.6b", [](json& j) { j["attention_bias"] = true; });
  EXPECT_HAS(m, "key 'attention_bias'");
  m = error("llama-3.2-1b", [](json& j) { j["sliding_window"] = 4096; });
  EXPECT_HAS(m, "key 'sliding_window'");
  m = error("mistral-7b-v0.1", [](json& j) { j["sliding_window"] = 0; });
  EXPECT_HAS(m, "key 'sliding_window'");
  m = error("qwen3-0.6b", [](json& j) { j["layer_types"] = {"full_attention", "sliding_attention"}; });
  EXPECT_HAS(m, "key 'layer_types'");
  m = error("opt-125m", [](json& j) { j["activation_function"] = "gelu"; });
  EXPECT_HAS(m, "cfg.json: key 'activation_function'");
  m = error("opt-125m", [](json& j) { j["layer_norm_elementwise_affine"] = false; });
  EXPECT_HAS(m, "key 'layer_norm_elementwise_affine'");
  m = error("opt-350m", [](json& j) { j.erase("ffn_dim"); });
  EXPECT_HAS(m, "key 'ffn_dim' is missing");
  // null sliding_window: no window
  EXPECT_EQ(llama_config_from_hf_json(
                [&] {
                  json j = real_config(data, "mistral-7b-v0.1");
                  j["sliding_window"] = nullptr;
                  return j;
                }(),
                "cfg.json")
                .sliding_window,
            0);
}

}  // namespace
}  // namespace bmos
