// Every libFuzzer harness of tests/fuzz/ replayed on its committed corpus (tests/fuzz/corpus/<harness>/) and on every
// past crash input (tests/fuzz/crashes/<harness>/), compiled with the normal build: no clang needed. A harness returns
// normally when the parser accepts or refuses (std::exception) an input; a crash ends this binary, and any other
// exception fails the test naming the input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#define BMOS_FUZZ_DECLARE(name) extern "C" int bmos_fuzz_##name(const uint8_t* data, size_t size);
BMOS_FUZZ_DECLARE(safetensors)
BMOS_FUZZ_DECLARE(torch_bin)
BMOS_FUZZ_DECLARE(llama2c_model)
BMOS_FUZZ_DECLARE(hf_config)
BMOS_FUZZ_DECLARE(hf_index)
BMOS_FUZZ_DECLARE(job_yaml)
BMOS_FUZZ_DECLARE(llama2c_tokenizer)
BMOS_FUZZ_DECLARE(bpe_tokenizer_json)
BMOS_FUZZ_DECLARE(bpe_vocab_merges)
BMOS_FUZZ_DECLARE(sentencepiece_model)
BMOS_FUZZ_DECLARE(corpus)
BMOS_FUZZ_DECLARE(tasks)
BMOS_FUZZ_DECLARE(token_shard)
BMOS_FUZZ_DECLARE(checkpoint_manifest)
BMOS_FUZZ_DECLARE(packed_config)
BMOS_FUZZ_DECLARE(serve_request)

namespace {

namespace fs = std::filesystem;
using Harness = int (*)(const uint8_t*, size_t);

const std::map<std::string, Harness>& harnesses() {
  static const std::map<std::string, Harness> table = {
      {"safetensors", bmos_fuzz_safetensors},
      {"torch_bin", bmos_fuzz_torch_bin},
      {"llama2c_model", bmos_fuzz_llama2c_model},
      {"hf_config", bmos_fuzz_hf_config},
      {"hf_index", bmos_fuzz_hf_index},
      {"job_yaml", bmos_fuzz_job_yaml},
      {"llama2c_tokenizer", bmos_fuzz_llama2c_tokenizer},
      {"bpe_tokenizer_json", bmos_fuzz_bpe_tokenizer_json},
      {"bpe_vocab_merges", bmos_fuzz_bpe_vocab_merges},
      {"sentencepiece_model", bmos_fuzz_sentencepiece_model},
      {"corpus", bmos_fuzz_corpus},
      {"tasks", bmos_fuzz_tasks},
      {"token_shard", bmos_fuzz_token_shard},
      {"checkpoint_manifest", bmos_fuzz_checkpoint_manifest},
      {"packed_config", bmos_fuzz_packed_config},
      {"serve_request", bmos_fuzz_serve_request},
  };
  return table;
}

const fs::path kFuzzDir = fs::path(BMOS_SOURCE_DIR) / "tests" / "fuzz";

std::vector<fs::path> inputs_under(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs one input; an exception escaping the harness is not a std::exception (those the harness catches).
void replay(const std::string& harness, const fs::path& input) {
  const std::string bytes = read_bytes(input);
  try {
    harnesses().at(harness)(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  } catch (...) {
    ADD_FAILURE() << harness << ": " << input << " threw a non-std exception out of the parser";
  }
}

}  // namespace

// The table above names every harness file, so a new harness cannot go unreplayed.
TEST(FuzzReplay, EveryHarnessIsReplayed) {
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(kFuzzDir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("fuzz_", 0) == 0 && e.path().extension() == ".cpp" && name != "fuzz_main.cpp")
      files.insert(name.substr(5, name.size() - 5 - 4));
  }
  std::set<std::string> table;
  for (const auto& [name, fn] : harnesses()) table.insert(name);
  EXPECT_EQ(files, table);
}

class FuzzReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzReplay, CorpusAndCrashes) {
  const std::string harness = GetParam();
  const std::vector<fs::path> corpus = inputs_under(kFuzzDir / "corpus" / harness);
  ASSERT_FALSE(corpus.empty()) << "no seed corpus in " << kFuzzDir / "corpus" / harness;
  const std::vector<fs::path> crashes = inputs_under(kFuzzDir / "crashes" / harness);
  for (const fs::path& p : corpus) replay(harness, p);
  for (const fs::path& p : crashes) replay(harness, p);
  std::cout << harness << ": " << corpus.size() << " corpus inputs, " << crashes.size() << " crash inputs replayed\n";
}

INSTANTIATE_TEST_SUITE_P(Harnesses, FuzzReplay, ::testing::ValuesIn([] {
                           std::vector<std::string> names;
                           for (const auto& [name, fn] : harnesses()) names.push_back(name);
                           return names;
                         }()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });
