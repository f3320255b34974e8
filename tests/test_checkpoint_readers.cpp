// Checkpoint readers on the real stories260K files: the llama2.c legacy and version-1 exports, and the Hugging Face
// folder, give the same tensors (the HF one only after the rotary q/k permutation); write_hf_llama round-trips; broken
// files give errors that name the path and say what is wrong.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "modules/io/hf_llama.h"
#include "modules/io/llama2c_reader.h"
#include "modules/io/model_format.h"
#include "modules/io/safetensors.h"
#include "tests/test_util.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void put_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

using test::error_of;

// Same names, shapes and values; on a mismatch says which tensor and by how much.
void expect_same_tensors(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name << " missing on the right";
    const torch::Tensor& u = b.at(name);
    ASSERT_EQ(t.sizes(), u.sizes()) << name;
    EXPECT_EQ(u.scalar_type(), torch::kFloat32) << name;
    EXPECT_TRUE(torch::equal(t, u)) << name << ": max |difference| " << (t - u).abs().max().item<float>();
  }
}

void expect_same_config(const LlamaConfig& a, const LlamaConfig& b) { EXPECT_EQ(a.describe(), b.describe()); }

// A copy of the shared HF folder's config.json with `edit` applied, in `dir`.
void write_config(const std::string& dir, const std::string& hf_dir,
                  const std::function<void(nlohmann::json&)>& edit = nullptr) {
  nlohmann::json j = nlohmann::json::parse(file_bytes(hf_dir + "/config.json"));
  if (edit) edit(j);
  std::ofstream(dir + "/config.json") << j.dump(2);
}

// All tensors of an HF safetensors file, as entries to write elsewhere.
std::vector<SafetensorsEntry> hf_entries(const std::string& file) {
  SafetensorsFile f(file);
  std::vector<SafetensorsEntry> out;
  for (const auto& name : f.names()) out.push_back({name, f.load(name), ""});
  return out;
}

// ------------------------------------------------------------------------------------------------------- llama2.c
TEST(Llama2c, LegacyAndVersion1GiveBitIdenticalTensors) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(v1, "models/stories260K/stories260K_v1.bin");
  const LoadedCheckpoint a = read_llama2c(v0), b = read_llama2c(v1);
  expect_same_config(a.config, b.config);
  expect_same_tensors(a.tensors, b.tensors);
  EXPECT_EQ(a.source, v0);
}

TEST(Llama2c, Stories260KConfigAndShapes) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  const LoadedCheckpoint ck = read_llama2c(v0);
  const LlamaConfig& c = ck.config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(ck.tensors.size(), 2u + 9u * 5u);  // embeddings, final norm, 9 per layer; no output.weight when tied
  EXPECT_FALSE(ck.tensors.count("output.weight"));
  EXPECT_EQ(ck.tensors.at("layers.4.attention.wk.weight").sizes(), torch::IntArrayRef({32, 64}));
  EXPECT_EQ(ck.tensors.at("layers.0.feed_forward.w2.weight").sizes(), torch::IntArrayRef({64, 172}));
  // RMSNorm gains of a trained model sit around 1, embeddings do not: a misplaced offset would mix them up.
  const float norm_mean = ck.tensors.at("norm.weight").mean().item<float>();
  EXPECT_GT(norm_mean, 0.3f);
  EXPECT_LT(ck.tensors.at("tok_embeddings.weight").mean().abs().item<float>(), 0.1f);
}

// Rewrites a shared-classifier stories260K file as an unshared one: flips the flag and appends a classifier.
TEST(Llama2c, UnsharedClassifierIsReadAsOutputWeight) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(v1, "models/stories260K/stories260K_v1.bin");
  const std::string dir = test::temp_dir("l2c_unshared");
  const torch::Tensor wcls = torch::randn({512, 64});
  const std::string wcls_bytes(static_cast<const char*>(wcls.data_ptr()), 512 * 64 * 4);

  std::string legacy = file_bytes(v0);
  const int32_t neg_vocab = -512;
  std::memcpy(&legacy[20], &neg_vocab, 4);  // 6th header int
  put_bytes(dir + "/legacy.bin", legacy + wcls_bytes);
  std::string version1 = file_bytes(v1);
  version1[36] = 0;  // shared_classifier byte
  put_bytes(dir + "/v1.bin", version1 + wcls_bytes);

  for (const char* name : {"/legacy.bin", "/v1.bin"}) {
    SCOPED_TRACE(name);
    const LoadedCheckpoint ck = read_llama2c(dir + name);
    EXPECT_FALSE(ck.config.tie_embeddings);
    EXPECT_EQ(ck.config.vocab_size, 512);
    ASSERT_TRUE(ck.tensors.count("output.weight"));
    EXPECT_TRUE(torch::equal(ck.tensors.at("output.weight"), wcls));
  }
}

TEST(Llama2c, BrokenFilesGiveClearErrors) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(v1, "models/stories260K/stories260K_v1.bin");
  const std::string dir = test::temp_dir("l2c_errors");

  const std::string missing = dir + "/no_such_model.bin";
  std::string msg = error_of([&] { read_llama2c(missing); });
  EXPECT_HAS(msg, "'" + missing + "': cannot open: No such file or directory");

  const std::string legacy = file_bytes(v0), version1 = file_bytes(v1);
  put_bytes(dir + "/truncated_v0.bin", legacy.substr(0, 500000));
  msg = error_of([&] { read_llama2c(dir + "/truncated_v0.bin"); });
  EXPECT_HAS(msg, dir + "/truncated_v0.bin");
  EXPECT_HAS(msg, "truncated");
  EXPECT_HAS(msg, "truncated: its legacy header gives dim=64");
  EXPECT_HAS(msg, "needs 1056540 bytes, but the file has 500000");

  put_bytes(dir + "/truncated_v1.bin", version1.substr(0, version1.size() - 4));
  msg = error_of([&] { read_llama2c(dir + "/truncated_v1.bin"); });
  EXPECT_HAS(msg, "truncated: its version-1 ('ak42') header gives dim=64");
  EXPECT_HAS(msg, "needs 1040384 bytes, but the file has 1040380");

  put_bytes(dir + "/header_only.bin", version1.substr(0, 100));
  msg = error_of([&] { read_llama2c(dir + "/header_only.bin"); });
  EXPECT_HAS(msg, "truncated: a version-1 header is 256 bytes, the file has 100");

  std::string bad_magic = version1;
  bad_magic[0] = 'X';
  put_bytes(dir + "/bad_magic.bin", bad_magic);
  msg = error_of([&] { read_llama2c(dir + "/bad_magic.bin"); });
  EXPECT_HAS(msg, dir + "/bad_magic.bin");
  EXPECT_HAS(msg, "legacy header (no 'ak42' magic: the first 4 bytes are 0x616b3458");
  EXPECT_HAS(msg, "Expected a llama2.c .bin export");

  std::string version2 = version1;
  version2[4] = 2;
  put_bytes(dir + "/v2.bin", version2);
  msg = error_of([&] { read_llama2c(dir + "/v2.bin"); });
  EXPECT_HAS(msg, "'ak42' file of version 2; this reader knows version 1");

  put_bytes(dir + "/tiny.bin", "abc");
  EXPECT_HAS(error_of([&] { read_llama2c(dir + "/tiny.bin"); }), "only 3 bytes");

  // A text file that happens to be long enough: its "header" is nonsense, and the message says so.
  put_bytes(dir + "/notes.bin", std::string(4096, 'a'));
  msg = error_of([&] { read_llama2c(dir + "/notes.bin"); });
  EXPECT_HAS(msg, "not a valid llama2.c checkpoint");

  EXPECT_HAS(error_of([&] { read_llama2c(dir); }), "is not a regular file");
}

// --------------------------------------------------------------------------------------------- rotary permutation
TEST(RotaryPermutation, MovesPairsBetweenInterleavedAndHalves) {
  // One head, head_dim 6: interleaved rows (a0 b0 a1 b1 a2 b2) are HF rows (a0 a1 a2 b0 b1 b2).
  const torch::Tensor interleaved = torch::arange(6, torch::kFloat32).reshape({6, 1});  // a_j = 2j, b_j = 2j+1
  const torch::Tensor hf = torch::tensor({0.f, 2.f, 4.f, 1.f, 3.f, 5.f}).reshape({6, 1});
  EXPECT_TRUE(torch::equal(permute_rotary_qk(interleaved, 1, RotaryDirection::kInterleavedToHf), hf));
  EXPECT_TRUE(torch::equal(permute_rotary_qk(hf, 1, RotaryDirection::kHfToInterleaved), interleaved));

  // Several heads: each head is permuted on its own, and the two directions are inverses.
  torch::manual_seed(1);
  const torch::Tensor w = torch::randn({3 * 8, 5});
  const torch::Tensor to_hf = permute_rotary_qk(w, 3, RotaryDirection::kInterleavedToHf);
  EXPECT_FALSE(torch::equal(to_hf, w));
  EXPECT_TRUE(torch::equal(to_hf.slice(0, 8, 16), permute_rotary_qk(w.slice(0, 8, 16), 1,
                                                                    RotaryDirection::kInterleavedToHf)));
  EXPECT_TRUE(torch::equal(permute_rotary_qk(to_hf, 3, RotaryDirection::kHfToInterleaved), w));
  EXPECT_THROW(permute_rotary_qk(torch::zeros({10, 2}), 2, RotaryDirection::kHfToInterleaved), c10::Error);
}

// ------------------------------------------------------------------------------------------------ Hugging Face
TEST(HfLlama, FolderEqualsLlama2cFileAfterRotaryPermutation) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(hf, "models/stories260K-hf");
  const LoadedCheckpoint a = read_llama2c(v0), b = read_hf_llama(hf);
  expect_same_config(a.config, b.config);
  expect_same_tensors(a.tensors, b.tensors);
  // The permutation is what makes them equal: the raw HF rows differ from llama2.c's.
  SafetensorsFile raw(hf + "/model.safetensors");
  EXPECT_FALSE(torch::equal(raw.load("model.layers.0.self_attn.q_proj.weight"),
                            a.tensors.at("layers.0.attention.wq.weight")));
  EXPECT_FALSE(torch::equal(raw.load("model.layers.0.self_attn.k_proj.weight"),
                            a.tensors.at("layers.0.attention.wk.weight")));
}

TEST(HfLlama, WriteThenReadRoundTripsAndMatchesTheReferenceLayout) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(hf, "models/stories260K-hf");
  const std::string dir = test::temp_dir("hf_roundtrip");
  const LoadedCheckpoint ck = read_llama2c(v0);
  write_hf_llama(dir + "/tied", ck);
  const LoadedCheckpoint back = read_hf_llama(dir + "/tied");
  expect_same_config(ck.config, back.config);
  expect_same_tensors(ck.tensors, back.tensors);

  // What we write is what an independent converter wrote: same names, same rows, bit for bit.
  SafetensorsFile ours(dir + "/tied/model.safetensors"), theirs(hf + "/model.safetensors");
  EXPECT_EQ(ours.metadata().at("format"), "pt");
  ASSERT_EQ(ours.names().size(), theirs.names().size());
  for (const auto& name : theirs.names()) EXPECT_TRUE(torch::equal(ours.load(name), theirs.load(name))) << name;

  // Untied head: output.weight survives as lm_head.weight.
  LoadedCheckpoint untied = ck;
  untied.config.tie_embeddings = false;
  untied.tensors["output.weight"] = torch::randn({512, 64});
  write_hf_llama(dir + "/untied", untied);
  const LoadedCheckpoint back2 = read_hf_llama(dir + "/untied");
  EXPECT_FALSE(back2.config.tie_embeddings);
  expect_same_tensors(untied.tensors, back2.tensors);
  EXPECT_TRUE(SafetensorsFile(dir + "/untied/model.safetensors").contains("lm_head.weight"));

  // The writer refuses a state dict that is not plain LLaMA.
  LoadedCheckpoint extra = ck;
  extra.tensors["layers.0.attention.wq.s_in"] = torch::ones({4, 64});
  EXPECT_HAS(error_of([&] { write_hf_llama(dir + "/extra", extra); }),
             "tensor 'layers.0.attention.wq.s_in' has no Hugging Face name");
  LoadedCheckpoint missing = ck;
  missing.tensors.erase("layers.3.ffn_norm.weight");
  EXPECT_HAS(error_of([&] { write_hf_llama(dir + "/missing", missing); }), "'layers.3.ffn_norm.weight' is missing");
}

TEST(HfLlama, ShardedFolderWithBf16ShardReadsLikeTheSingleFile) {
  BMOS_REQUIRE_DATA(hf, "models/stories260K-hf");
  const std::string dir = test::temp_dir("hf_sharded");
  write_config(dir, hf);
  std::vector<SafetensorsEntry> all = hf_entries(hf + "/model.safetensors"), first, second;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string& name = all[i].name;
    const bool in_second = name == "model.norm.weight" || name.rfind("model.layers.3.", 0) == 0 ||
                           name.rfind("model.layers.4.", 0) == 0;
    if (in_second) all[i].tensor = all[i].tensor.to(torch::kBFloat16);
    (in_second ? second : first).push_back(all[i]);
    index["weight_map"][all[i].name] = in_second ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  write_safetensors(dir + "/model-00001-of-00002.safetensors", first);
  write_safetensors(dir + "/model-00002-of-00002.safetensors", second);
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);

  const LoadedCheckpoint single = read_hf_llama(hf), sharded = read_hf_llama(dir);
  ASSERT_EQ(single.tensors.size(), sharded.tensors.size());
  for (const auto& [name, t] : single.tensors) {
    const torch::Tensor& u = sharded.tensors.at(name);
    EXPECT_EQ(u.scalar_type(), torch::kFloat32) << name;
    // BF16 shard: equal to the fp32 value rounded to bf16; the fp32 shard: exactly equal.
    EXPECT_TRUE(torch::equal(u, t) || torch::equal(u, t.to(torch::kBFloat16).to(torch::kFloat32))) << name;
  }
  EXPECT_FALSE(torch::equal(sharded.tensors.at("norm.weight"), single.tensors.at("norm.weight")))
      << "the BF16 shard should have rounded the final norm";

  // Index and shards must agree.
  index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
  EXPECT_HAS(error_of([&] { read_hf_llama(dir); }),
             "shard 'model-00002-of-00002.safetensors' holds tensor 'model.norm.weight', which the index places in "
             "'model-00001-of-00002.safetensors'");
  index["weight_map"]["model.norm.weight"] = "model-00003-of-00002.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
  EXPECT_HAS(error_of([&] { read_hf_llama(dir); }), "shard 'model-00003-of-00002.safetensors' named in");
}

TEST(HfLlama, BadFoldersGiveErrorsNamingTheKey) {
  BMOS_REQUIRE_DATA(hf, "models/stories260K-hf");
  const std::string root = test::temp_dir("hf_errors");
  const std::vector<SafetensorsEntry> good = hf_entries(hf + "/model.safetensors");
  // A folder with the shared config (edited) and `entries` as model.safetensors.
  auto folder = [&](const std::string& name, std::vector<SafetensorsEntry> entries,
                    const std::function<void(nlohmann::json&)>& edit = nullptr) {
    const std::string dir = root + "/" + name;
    fs::create_directories(dir);
    write_config(dir, hf, edit);
    write_safetensors(dir + "/model.safetensors", entries);
    return dir;
  };

  auto with_extra = good;
  with_extra.push_back({"model.layers.0.self_attn.q_proj.bias", torch::zeros({64}), ""});
  EXPECT_HAS(error_of([&] { read_hf_llama(folder("unknown", with_extra)); }),
             "unknown tensor 'model.layers.0.self_attn.q_proj.bias'");

  auto without = good;
  without.erase(std::remove_if(without.begin(), without.end(),
                               [](const SafetensorsEntry& e) { return e.name == "model.layers.2.mlp.up_proj.weight"; }),
                without.end());
  EXPECT_HAS(error_of([&] { read_hf_llama(folder("missing", without)); }),
             "1 tensor(s) missing: model.layers.2.mlp.up_proj.weight");

  auto wrong_shape = good;
  for (auto& e : wrong_shape)
    if (e.name == "model.layers.1.self_attn.k_proj.weight") e.tensor = torch::zeros({64, 64});
  EXPECT_HAS(error_of([&] { read_hf_llama(folder("shape", wrong_shape)); }),
             "tensor 'model.layers.1.self_attn.k_proj.weight' in '" + root + "/shape/model.safetensors' has shape "
             "[64, 64], config.json implies [32, 64]");

  EXPECT_HAS(error_of([&] {
               read_hf_llama(folder("layers", good, [](nlohmann::json& j) { j["num_hidden_layers"] = 4; }));
             }),
             "names layer 4 but config.json has num_hidden_layers=4");

  EXPECT_HAS(error_of([&] { read_hf_llama(folder("nohidden", good, [](nlohmann::json& j) { j.erase("hidden_size"); })); }),
             "key 'hidden_size' is missing");
  EXPECT_HAS(error_of([&] {
               read_hf_llama(folder("rope", good, [](nlohmann::json& j) { j["rope_scaling"] = {{"type", "linear"}}; }));
             }),
             "key 'rope_scaling'");
  EXPECT_HAS(error_of([&] {
               read_hf_llama(folder("heads", good, [](nlohmann::json& j) { j["num_key_value_heads"] = 3; }));
             }),
             "LlamaConfig.n_kv_heads: n_heads=8 is not a multiple of n_kv_heads=3");

  auto untied_conflict = good;
  untied_conflict.push_back({"lm_head.weight", torch::zeros({512, 64}), ""});
  EXPECT_HAS(error_of([&] { read_hf_llama(folder("tiedconflict", untied_conflict)); }),
             "lm_head.weight differs from model.embed_tokens.weight");

  // No tie_word_embeddings and no lm_head: tied, as transformers does.
  const LoadedCheckpoint tied = read_hf_llama(folder("tie_absent", good, [](nlohmann::json& j) {
    j.erase("tie_word_embeddings");
  }));
  EXPECT_TRUE(tied.config.tie_embeddings);

  const std::string empty = root + "/weightless";
  fs::create_directories(empty);
  write_config(empty, hf);
  std::ofstream(empty + "/pytorch_model.bin") << "x";
  EXPECT_HAS(error_of([&] { read_hf_llama(empty); }), "weightless/pytorch_model.bin': not a zip archive");
  fs::remove(empty + "/pytorch_model.bin");
  EXPECT_HAS(error_of([&] { read_hf_llama(empty); }),
             "has none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, "
             "pytorch_model.bin.index.json (found: config.json)");
  EXPECT_HAS(error_of([&] { read_hf_llama(root + "/nowhere"); }), "does not exist");
}

// ---------------------------------------------------------------------------------------------------- detection
TEST(ModelFormat, DetectsEachKindAndReadsOnlyFullPrecision) {
  BMOS_REQUIRE_DATA(v0, "models/stories260K/stories260K.bin");
  BMOS_REQUIRE_DATA(v1, "models/stories260K/stories260K_v1.bin");
  BMOS_REQUIRE_DATA(hf, "models/stories260K-hf");
  const std::string root = test::temp_dir("model_format");
  EXPECT_EQ(detect_model_format(v0), "llama2c");
  EXPECT_EQ(detect_model_format(v1), "llama2c");
  EXPECT_EQ(detect_model_format(hf), "hf");

  const std::string packed = root + "/packed";
  fs::create_directories(packed);
  write_config(packed, hf, [](nlohmann::json& j) { j["quantization"] = {{"method", "binarymos"}, {"experts", 4}}; });
  EXPECT_EQ(detect_model_format(packed), "packed");
  EXPECT_HAS(error_of([&] { read_fp_checkpoint(packed); }), "is an exported packed 1-bit model");

  const std::string ckpt = root + "/step_000500";
  fs::create_directories(ckpt);
  std::ofstream(ckpt + "/" + kCheckpointMarker) << "{}";
  EXPECT_EQ(detect_model_format(ckpt), "checkpoint");
  EXPECT_HAS(error_of([&] { read_fp_checkpoint(ckpt); }), "is a training checkpoint folder");

  std::string msg = error_of([&] { detect_model_format(root + "/typo.bin"); });
  EXPECT_HAS(msg, "model path '" + root + "/typo.bin': does not exist");
  EXPECT_HAS(msg, "expected one of: a llama2.c .bin file");
  EXPECT_HAS(error_of([&] { detect_model_format(root); }), "is a folder without config.json or checkpoint.json");
  EXPECT_HAS(error_of([&] { detect_model_format(hf + "/model.safetensors"); }),
             "is a file inside a model folder: pass the folder '" + hf + "' instead");

  const LoadedCheckpoint a = read_fp_checkpoint(v1), b = read_fp_checkpoint(hf);
  expect_same_tensors(a.tensors, b.tensors);
}

// ------------------------------------------------------------------------------------------------------- config
TEST(LlamaConfig, ValidateNamesTheBadField) {
  LlamaConfig c;
  EXPECT_NO_THROW(c.validate());
  EXPECT_HAS(c.describe(), "dim=64 hidden_dim=172 n_layers=5 n_heads=8 n_kv_heads=4 head_dim=8 vocab=512");
  auto message = [](LlamaConfig bad) { return error_of([&] { bad.validate(); }); };
  LlamaConfig bad = c;
  bad.dim = 60;
  EXPECT_HAS(message(bad), "LlamaConfig.n_heads: dim=60 is not a multiple of n_heads=8");
  bad = c;
  bad.dim = 24;  // head_dim 3
  EXPECT_HAS(message(bad), "head_dim=3 is odd");
  bad = c;
  bad.n_layers = 0;
  EXPECT_HAS(message(bad), "LlamaConfig.n_layers: must be > 0, got 0");
  bad = c;
  bad.eos_id = 512;
  EXPECT_HAS(message(bad), "LlamaConfig.eos_id: 512 is outside the vocabulary [0, 512)");
  bad = c;
  bad.norm_eps = 0;
  EXPECT_HAS(message(bad), "LlamaConfig.norm_eps: must be > 0, got 0 ");
}

}  // namespace
}  // namespace bmos
