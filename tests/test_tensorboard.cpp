// The run's metrics (trainer/metrics_log.h): metrics.jsonl holds each step once across resumes, and the TensorBoard
// events file beside it (trainer/tensorboard.h) holds every one of its scalars, read back by an independent reader
// (tests/reference/read_tfevents.py: its own CRC-32C, the protobuf library, the public field numbers).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "trainer/tensorboard.h"
#include "trainer/trainer.h"

namespace bmos {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ------------------------------------------------------------------------------------ the encoding, by hand
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(char(x));
  return s;
}

TEST(TensorBoard, Crc32cAndRecordFramingFollowTheirDefinitions) {
  EXPECT_EQ(crc32c("123456789"), 0xe3069283u);  // the CRC-32C check value (RFC 3720, B.4)
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(masked_crc32c(""), 0xa282ead8u);  // ((0 >> 15) | (0 << 17)) + 0xa282ead8
  const uint32_t c = crc32c("abc");
  EXPECT_EQ(masked_crc32c("abc"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
  const std::string r = tfrecord("abc");
  ASSERT_EQ(r.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(r.substr(0, 8), bytes({3, 0, 0, 0, 0, 0, 0, 0}));  // uint64 length, little-endian
  auto le32 = [](uint32_t v) { return bytes({int(v & 0xff), int(v >> 8 & 0xff), int(v >> 16 & 0xff), int(v >> 24)}); };
  EXPECT_EQ(r.substr(8, 4), le32(masked_crc32c(r.substr(0, 8))));
  EXPECT_EQ(r.substr(12, 3), "abc");
  EXPECT_EQ(r.substr(15, 4), le32(masked_crc32c("abc")));
}

TEST(TensorBoard, EventsAreTheProtobufEncodingOfTheirFields) {
  // wall_time 1.5 = 0x3ff8000000000000: key 0x09 (field 1, fixed64), then 8 bytes little-endian.
  const std::string wall = bytes({0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f});
  // step 300: key 0x10 (field 2, varint), varint 0xac 0x02; summary: key 0x2a (field 5, bytes), length 10;
  // one Value: key 0x0a (field 1), length 8: tag "a" (0x0a 0x01 'a'), simple_value 1.0f (key 0x15, 00 00 80 3f).
  EXPECT_EQ(scalars_event(1.5, 300, {{"a", 1.0f}}),
            wall + bytes({0x10, 0xac, 0x02, 0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 'a', 0x15, 0, 0, 0x80, 0x3f}));
  // file_version (field 3): key 0x1a, length 13; step 0 left out as proto3 does.
  EXPECT_EQ(file_version_event(1.5), wall + bytes({0x1a, 13}) + "brain.Event:2");
  // session_log (field 6): key 0x32, length 2: status (field 1, varint) START = 1.
  EXPECT_EQ(session_start_event(1.5, 7), wall + bytes({0x10, 7, 0x32, 2, 0x08, 1}));
}

// ------------------------------------------------------------------------------------------ a tiny training run
std::string read_text(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<json> metrics(const std::string& run_dir) {
  std::vector<json> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

std::vector<std::string> event_files(const std::string& run_dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(run_dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

using ScalarMap = std::map<std::pair<std::string, int64_t>, float>;  // (tag, step) -> value

// Every number of every metrics.jsonl line but the step, as float32 (what an events file stores).
ScalarMap scalars_of_metrics(const std::vector<json>& lines) {
  ScalarMap m;
  for (const auto& l : lines)
    for (const auto& [key, value] : l.items())
      if (key != "step" && value.is_number()) m[{key, l.at("step").get<int64_t>()}] = value.get<float>();
  return m;
}

// tests/reference/read_tfevents.py on the run folder: its stdout, one JSON object per line.
std::vector<json> read_events(const std::string& run_dir, const std::string& args = "") {
  const std::string out = run_dir + ".read_tfevents";  // beside the folder: the reader takes any *tfevents* inside
  const std::string cmd = std::string("/usr/bin/python3 ") + BMOS_SOURCE_DIR + "/tests/reference/read_tfevents.py " +
                          run_dir + " " + args + " >" + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd << " (its message is above)";
  std::vector<json> lines;
  std::istringstream in(read_text(out));
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  fs::remove(out);
  return lines;
}

// What TensorBoard finds in the run folder's events files, by the independent reader.
ScalarMap scalars_of_events(const std::string& run_dir) {
  ScalarMap m;
  for (const json& j : read_events(run_dir))
    m[{j.at("tag").get<std::string>(), j.at("step").get<int64_t>()}] = float(j.at("value").get<double>());
  return m;
}

// The records of one events file as stored: "file_version", "session_start@7", "summary@7", ...
std::vector<std::string> records_of(const std::string& run_dir, const std::string& file) {
  std::vector<std::string> out;
  for (const json& j : read_events(run_dir, "--records"))
    if (j.at("file") == fs::path(file).filename().string()) {
      const std::string what = j.at("what");
      out.push_back(what == "file_version" ? what : what + "@" + std::to_string(j.at("step").get<int64_t>()));
    }
  return out;
}

// The scalars of one map missing from, or different in, the other ("" when they agree).
std::string difference(const ScalarMap& jsonl, const ScalarMap& events) {
  std::ostringstream d;
  int shown = 0;
  for (const auto& [k, v] : jsonl) {
    const auto it = events.find(k);
    if ((it == events.end() || it->second != v) && shown++ < 10)
      d << "  " << k.first << " at step " << k.second << ": metrics.jsonl " << v << ", events "
        << (it == events.end() ? std::string("missing") : std::to_string(it->second)) << "\n";
  }
  for (const auto& [k, v] : events)
    if (!jsonl.count(k) && shown++ < 10)
      d << "  " << k.first << " at step " << k.second << ": only in the events files (" << v << ")\n";
  return d.str();
}

std::string why_no_reader() {
  if (!fs::exists("/usr/bin/python3")) return "/usr/bin/python3 is missing";
  if (std::system("/usr/bin/python3 -c 'import google.protobuf' >/dev/null 2>&1") != 0)
    return "/usr/bin/python3 has no google.protobuf (apt-get install python3-protobuf)";
  if (std::system("protoc --version >/dev/null 2>&1") != 0)
    return "protoc is missing (apt-get install protobuf-compiler)";
  return "";
}

class RunMetrics : public ::testing::Test {
 protected:
  // A corpus and a tiny random teacher (one pretraining step: only its shape matters here).
  static void SetUpTestSuite() {
    dir_ = test::temp_dir("tensorboard");
    std::ofstream corpus(dir_ + "/corpus.txt");
    std::mt19937 rng(7);
    const char* words[] = {"the cat", "a dog", "saw", "liked", "the moon", "a red box", "and", "then"};
    for (int d = 0; d < 200; ++d) {
      for (int w = 0; w < 12; ++w) corpus << words[rng() % 8] << " ";
      corpus << "\n";
    }
    corpus.close();
    Trainer(load_job(save("teacher", job("teacher", "{format: random, init: {dim: 32, hidden_dim: 64, n_layers: 2, "
                                                    "n_heads: 4, n_kv_heads: 2, max_seq_len: 32}}",
                                         "{method: none}", 1, "", ""))),
            false)
        .train();
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string job(const std::string& name, const std::string& teacher, const std::string& quant, int steps,
                         const std::string& run_extra, const std::string& eval) {
    std::ostringstream j;
    j << "run: {name: " << name << ", out_dir: " << dir_ << "/" << name << ", seed: 3, threads: 1" << run_extra << "}\n"
      << "teacher: " << teacher << "\n"
      << "tokenizer: {kind: byte}\n"
      << "quant: " << quant << "\n"
      << "data: {seq_len: 32, cache_dir: " << dir_ << "/cache, sources: [{name: toy, format: text, files: [" << dir_
      << "/corpus.txt]}]}\n"
      << "train: {steps: " << steps << ", batch_size: 4, lr: 3.0e-3, warmup_ratio: 0.1, log_every: 1}\n"
      << "checkpoint: {every: 3, keep: 3}\n";
    if (!eval.empty()) j << "eval: " << eval << "\n";
    return j.str();
  }
  static std::string save(const std::string& name, const std::string& text) {
    const std::string p = dir_ + "/" + name + ".yaml";
    std::ofstream(p) << text;
    return p;
  }
  static std::string dir_;
};
std::string RunMetrics::dir_;

// A KD run of 8 steps (checkpoints at 3, 6, 8; perplexity every 2 steps) is cut after step 8 was logged but before its
// checkpoint was complete (the folder a kill at that moment leaves: the step-8 checkpoint removed), resumed from step
// 6, and finished; then cut before its first checkpoint (every checkpoint removed) and resumed from nothing. Each time
// metrics.jsonl holds steps 1..8 once, and the events files, read as TensorBoard reads them, hold exactly its scalars:
// the retrained steps' values, not the earlier process's (seconds and tokens_per_second differ between the two).
TEST_F(RunMetrics, EachStepOnceAcrossResumesAndEveryScalarInTensorBoard) {
  const std::string name = "kd";
  const std::string path =
      save(name, job(name, "{path: " + dir_ + "/teacher, dtype: fp32}", "{method: binarymos, experts: 2}", 8, "",
                     "{every: 2, ppl: [{name: toy, file: " + dir_ + "/corpus.txt, format: text, seq_len: 32, "
                     "windows: 4}]}"));
  const std::string run = dir_ + "/" + name;
  const std::string no_reader = why_no_reader();
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    const auto m = metrics(run);
    std::vector<int64_t> steps;
    for (const auto& l : m) steps.push_back(l.at("step").get<int64_t>());
    EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
    if (no_reader.empty()) {
      const ScalarMap want = scalars_of_metrics(m), got = scalars_of_events(run);
      EXPECT_GE(want.size(), 8u * 9) << "every line has at least nine scalars";
      EXPECT_EQ(want.size(), got.size());
      EXPECT_EQ(difference(want, got), "") << "metrics.jsonl and the events files disagree";
    }
    return m;
  };

  Trainer(load_job(path), false).train();
  const auto first = check("after the first run");
  for (const char* key :
       {"loss", "kl", "hidden_mse", "ce", "lr", "grad_norm", "tokens", "seconds", "tokens_per_second"})
    EXPECT_TRUE(first.back().contains(key)) << key;
  EXPECT_TRUE(first[1].contains("ppl/toy")) << first[1].dump();   // step 2 evaluated
  EXPECT_FALSE(first[2].contains("ppl/toy")) << first[2].dump();  // step 3 did not
  EXPECT_GT(first.back().at("kl").get<double>(), 0.0);
  EXPECT_GT(first.back().at("hidden_mse").get<double>(), 0.0);

  fs::remove_all(run + "/checkpoints/step_00000008");
  Trainer(load_job(path), true).train();
  const auto resumed = check("after a resume from step 6");
  EXPECT_EQ(resumed[5], first[5]) << "the lines up to the checkpoint are kept as they were";
  EXPECT_NE(resumed[7].at("seconds"), first[7].at("seconds")) << "step 8's line is the retrained one";
  auto files = event_files(run);
  ASSERT_EQ(files.size(), 2u) << "one events file per process";
  if (no_reader.empty()) {
    const std::vector<std::string> old_file = records_of(run, files[0]);
    EXPECT_EQ(old_file.size(), 2u + 8) << "the first file is not rewritten: it still holds steps 7 and 8";
    EXPECT_EQ(records_of(run, files[1]),
              (std::vector<std::string>{"file_version", "session_start@7", "summary@7", "summary@8"}));
  }

  for (const auto& e : fs::directory_iterator(run + "/checkpoints")) fs::remove_all(e.path());
  Trainer(load_job(path), true).train();
  check("after a resume with no checkpoint (from step 0)");
  files = event_files(run);
  ASSERT_EQ(files.size(), 3u);
  if (no_reader.empty()) {
    EXPECT_EQ(records_of(run, files[2]).at(1), "session_start@1");
  }

  if (!no_reader.empty())
    GTEST_SKIP() << "SKIPPED the TensorBoard half (metrics.jsonl was checked): " << no_reader
                 << " (scripts/setup.sh installs both)";
}

TEST_F(RunMetrics, TensorboardFalseWritesNoEventsFile) {
  const std::string path =
      save("off", job("off", "{path: " + dir_ + "/teacher, dtype: fp32}", "{method: binarymos, experts: 1}", 1,
                      ", tensorboard: false", ""));
  Trainer(load_job(path), false).train();
  EXPECT_EQ(metrics(dir_ + "/off").size(), 1u);
  EXPECT_TRUE(event_files(dir_ + "/off").empty());
}

}  // namespace
}  // namespace bmos
