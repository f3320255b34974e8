// GPT-2 byte-level BPE against golden ids from an independent encoder (npm gpt-tokenizer, r50k_base; made by
// scripts/make_gpt2_golden.mjs), from both vocab.json + merges.txt and tokenizer.json; decoding gives the text back.
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/tokenizers/gpt2_pretokenizer.h"
#include "data/tokenizers/tokenizer.h"
#include "tests/test_util.h"

namespace {

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

std::vector<std::string> pieces(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& [start, len] : bmos::gpt2_pretokenize(text)) out.push_back(text.substr(start, len));
  return out;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST(Gpt2Tokenizer, MatchesGoldenIds) {
  BMOS_REQUIRE_DATA(dir, "models/gpt2-tokenizer/vocab.json");
  dir = bmos::test::data_dir() + "/models/gpt2-tokenizer";
  std::ifstream in(std::string(BMOS_SOURCE_DIR) + "/tests/golden/gpt2_ids.jsonl");
  std::vector<nlohmann::json> golden;
  std::string line;
  while (std::getline(in, line)) golden.push_back(nlohmann::json::parse(line));
  ASSERT_GE(golden.size(), 300u);
  for (const std::string& path : std::vector<std::string>{dir, dir + "/tokenizer.json"}) {
    const auto tok = bmos::load_tokenizer(path);
    EXPECT_EQ(tok->kind(), "gpt2");
    EXPECT_EQ(tok->vocab_size(), 50257);
    EXPECT_EQ(tok->bos_id(), 50256);
    EXPECT_EQ(tok->eos_id(), 50256);
    int bad = 0;
    for (const auto& g : golden) {
      const std::string text = g["text"];
      const auto ids = tok->encode(text);
      if (ids != g["ids"].get<std::vector<int32_t>>()) {
        ++bad;
        ADD_FAILURE() << path << " text " << g["text"].dump() << "\n got  " << ids_text(ids) << "\n want "
                      << g["ids"].dump();
      }
      EXPECT_EQ(tok->decode(ids), text);
    }
    std::printf("%s: %zu golden strings, %d mismatches\n", path.c_str(), golden.size(), bad);
  }
}

TEST(Gpt2Tokenizer, PreTokenizerFollowsTheRegex) {
  EXPECT_EQ(pieces("Hello world"), (Strings{"Hello", " world"}));
  EXPECT_EQ(pieces("I'm   here\n\nnow "), (Strings{"I", "'m", "  ", " here", "\n", "\n", "now", " "}));
  EXPECT_EQ(pieces("x  \n"), (Strings{"x", "  \n"}));                       // \s+(?!\S) takes a final run whole
  EXPECT_EQ(pieces("abc123 45!?"), (Strings{"abc", "123", " 45", "!?"}));
  EXPECT_EQ(pieces("'tis O'Neill's"), (Strings{"'t", "is", " O", "'", "Neill", "'s"}));
  EXPECT_EQ(pieces("\xc3\xa9t\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac"), (Strings{"\xc3\xa9t\xc3\xa9", " \xe6\x9d\xb1\xe4\xba\xac"}));
  EXPECT_EQ(pieces("a\xff\xfe b"), (Strings{"a", "\xff\xfe", " b"}));  // invalid UTF-8 bytes are "other" characters
  EXPECT_TRUE(pieces("").empty());
}

TEST(Gpt2Tokenizer, DecodePiecesAndErrors) {
  BMOS_REQUIRE_DATA(dir, "models/gpt2-tokenizer/vocab.json");
  dir = bmos::test::data_dir() + "/models/gpt2-tokenizer";
  const auto tok = bmos::load_tokenizer(dir);
  const auto ids = tok->encode("Hello world");
  ASSERT_EQ(ids, (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(tok->decode_piece(50256, ids[0]), "Hello");
  EXPECT_EQ(tok->decode_piece(ids[0], ids[1]), " world");
  EXPECT_EQ(tok->decode_piece(ids[1], 50256), "");  // <|endoftext|> prints nothing
  EXPECT_THROW(tok->decode_piece(0, 50257), std::runtime_error);
  const std::string tmp = bmos::test::temp_dir("gpt2_errors");
  std::ofstream(tmp + "/tokenizer.json") << "{\"model\": {\"type\": \"Unigram\"}}";
  try {
    bmos::load_tokenizer(tmp + "/tokenizer.json");
    FAIL() << "a Unigram tokenizer.json loaded as GPT-2";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(tmp + "/tokenizer.json: not a byte-level BPE tokenizer.json"),
              std::string::npos)
        << e.what();
  }
}
