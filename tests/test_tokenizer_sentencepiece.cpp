// SentencePiece through the plugin: ids equal the library's command-line encoder (golden file), decoding follows
// llama2.c, and the WikiText-2 test set gives the token count PAPER.md states for the Llama-2 tokenizer.
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/tokenizers/sentencepiece_model.h"
#include "data/hash.h"
#include "data/tokenizers/tokenizer.h"
#include "data/tokenizers/tokenizer_kinds.h"
#include "data/tokenizers/tokenizer_sentencepiece.h"
#include "tests/test_util.h"

namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

}  // namespace

TEST(Sha256, KnownVectors) {
  bmos::Sha256 a;
  a.update("abc");
  EXPECT_EQ(a.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  bmos::Sha256 b;
  EXPECT_EQ(b.hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  bmos::Sha256 c;  // 448-bit message: padding spills into a second block
  c.update("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(c.hex(), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(SentencePiece, MatchesCommandLineEncoderGolden) {
  BMOS_REQUIRE_DATA(tok512, "models/stories260K/tok512.model");
  BMOS_REQUIRE_DATA(llama2, "models/llama2-tokenizer/tokenizer.model");
  const auto small = bmos::load_tokenizer(tok512);
  const auto big = bmos::load_tokenizer(llama2);
  EXPECT_EQ(small->kind(), "sentencepiece");
  const auto golden = read_jsonl(std::string(BMOS_SOURCE_DIR) + "/tests/golden/sentencepiece_ids.jsonl");
  ASSERT_GE(golden.size(), 100u);
  int mismatches = 0;
  for (const auto& g : golden) {
    const std::string text = g["text"];
    const auto a = small->encode(text), b = big->encode(text);
    if (a != g["tok512"].get<std::vector<int32_t>>()) {
      ++mismatches;
      ADD_FAILURE() << "tok512 '" << text << "': got " << ids_text(a);
    }
    if (b != g["llama2"].get<std::vector<int32_t>>()) {
      ++mismatches;
      ADD_FAILURE() << "llama2 '" << text << "': got " << ids_text(b);
    }
  }
  std::printf("sentencepiece golden: %zu strings x 2 tokenizers, %d mismatches\n", golden.size(), mismatches);
}

TEST(SentencePiece, MetadataAndHash) {
  BMOS_REQUIRE_DATA(llama2, "models/llama2-tokenizer/tokenizer.model");
  const auto tok = bmos::load_tokenizer(llama2);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  // The file's sha256 as SOURCES.md records it.
  EXPECT_EQ(tok->hash(), "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347");
  EXPECT_EQ(bmos::encode_with(*tok, "Hello world", true, true), (std::vector<int32_t>{1, 15043, 3186, 2}));
}

TEST(SentencePiece, DecodeRoundTripAndPieces) {
  BMOS_REQUIRE_DATA(llama2, "models/llama2-tokenizer/tokenizer.model");
  const auto tok = bmos::load_tokenizer(llama2);
  for (const std::string text : {"Hello world", "  two\n\nlines\twith tabs ", "Straße 東京 😀 e\u0301", "x"}) {
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
    // Streaming decode from BOS gives the same text.
    std::string streamed;
    int32_t prev = tok->bos_id();
    for (int32_t id : tok->encode(text)) {
      streamed += tok->decode_piece(prev, id);
      prev = id;
    }
    EXPECT_EQ(streamed, text);
  }
  const int32_t hello = tok->encode("Hello")[0];  // "▁Hello"
  EXPECT_EQ(tok->decode_piece(tok->bos_id(), hello), "Hello");
  EXPECT_EQ(tok->decode_piece(hello, hello), " Hello");
  EXPECT_EQ(tok->decode_piece(hello, 13), "\n");  // <0x0A>
  EXPECT_EQ(tok->decode_piece(hello, tok->eos_id()), "");
  EXPECT_THROW(tok->decode_piece(hello, 32000), std::runtime_error);
}

// The fast path (merge-by-score BPE, data/tokenizers/score_bpe.h) against the library on the Llama-2 model: C4 documents,
// WikiText-2 lines, the golden strings, and random byte soup (invalid UTF-8 goes to the library by design).
TEST(SentencePiece, FastPathEqualsLibrary) {
  BMOS_REQUIRE_DATA(llama2, "models/llama2-tokenizer/tokenizer.model");
  BMOS_REQUIRE_DATA(tok512, "models/stories260K/tok512.model");
  const bmos::SentencePieceTokenizer tok(llama2);
  ASSERT_TRUE(tok.uses_score_bpe());
  EXPECT_FALSE(bmos::SentencePieceTokenizer(tok512).uses_score_bpe());  // removes extra whitespace: library only
  std::vector<std::string> texts;
  std::string line;
  std::ifstream c4(bmos::test::data_dir() + "/text/c4/c4-train.00000-of-01024.first1000.jsonl");
  for (int i = 0; i < 300 && std::getline(c4, line); ++i) texts.push_back(nlohmann::json::parse(line)["text"]);
  std::ifstream wiki(bmos::test::data_dir() + "/text/wikitext-2-raw/wiki.valid.raw");
  for (int i = 0; i < 800 && std::getline(wiki, line); ++i) texts.push_back(line);
  for (const auto& g : read_jsonl(std::string(BMOS_SOURCE_DIR) + "/tests/golden/gpt2_ids.jsonl")) texts.push_back(g["text"]);
  std::mt19937 rng(3);
  const std::string soup = "  \n\tab.,'0123\xc3\xa9\xe2\x96\x81\xf0\x9f\x98\x80\xe6\x9d\xb1";
  for (int t = 0; t < 300; ++t) {
    std::string s;
    for (int k = rng() % 60; k > 0; --k) s += soup[rng() % soup.size()];
    texts.push_back(s);
  }
  size_t bytes = 0, fast = 0;
  for (const auto& t : texts) {
    bytes += t.size();
    fast += bmos::valid_utf8(t);
    ASSERT_EQ(tok.encode(t), tok.encode_library(t)) << "text '" << t << "'";
  }
  std::printf("llama-2 fast path == library on %zu texts (%zu bytes, %zu valid UTF-8)\n", texts.size(), bytes, fast);
}

TEST(SentencePiece, ModelFileReader) {
  BMOS_REQUIRE_DATA(llama2, "models/llama2-tokenizer/tokenizer.model");
  BMOS_REQUIRE_DATA(tok512, "models/stories260K/tok512.model");
  const auto m = bmos::read_sentencepiece_model(llama2);
  const auto tok = bmos::load_tokenizer(llama2);
  ASSERT_EQ(static_cast<int32_t>(m.pieces.size()), tok->vocab_size());
  EXPECT_EQ(m.model_type, bmos::SentencePieceModel::kBpe);
  EXPECT_TRUE(m.byte_fallback);
  EXPECT_EQ(m.normalizer, "identity");
  EXPECT_FALSE(m.remove_extra_whitespaces);
  EXPECT_EQ(m.byte_piece0(), 3);
  EXPECT_TRUE(m.score_bpe_exact());
  EXPECT_EQ(m.pieces[15043], "\xE2\x96\x81Hello");  // as the library's id_to_piece gives it
  EXPECT_EQ(m.types[1], bmos::SentencePieceModel::kControl);
  const auto small = bmos::read_sentencepiece_model(tok512);
  EXPECT_TRUE(small.remove_extra_whitespaces);
  EXPECT_FALSE(small.score_bpe_exact());
  EXPECT_THROW(bmos::read_sentencepiece_model(bmos::test::data_dir() + "/models/gpt2-tokenizer/vocab.json"),
               std::runtime_error);
}

// PAPER.md: WikiText-2 raw test, rows joined with "\n\n", tokenized once with BOS: 341,469 Llama-2 tokens. The Hugging
// Face rows are the lines of wiki.test.raw as Python reads them: a blank line (" " in the file) is "", every other
// line keeps its trailing "\n". (Joining the bare lines instead gives 340,044 tokens: one "\n" less per text line.)
TEST(SentencePiece, WikiText2TestTokenCount) {
  BMOS_REQUIRE_DATA(llama2, "models/llama2-tokenizer/tokenizer.model");
  BMOS_REQUIRE_DATA(wiki, "text/wikitext-2-raw/wiki.test.raw");
  std::ifstream in(wiki);
  std::string line, joined;
  bool first = true;
  while (std::getline(in, line)) {
    if (!first) joined += "\n\n";
    first = false;
    if (line.find_first_not_of(" \t") != std::string::npos) joined += line + "\n";
  }
  const auto tok = bmos::load_tokenizer(llama2);
  const auto ids = bmos::encode_with(*tok, joined, true, false);
  std::printf("wikitext-2 test: %zu bytes joined, %zu tokens with BOS\n", joined.size(), ids.size());
  EXPECT_EQ(ids.size(), 341469u);
}

TEST(SentencePiece, ClearErrors) {
  BMOS_REQUIRE_DATA(bin, "models/stories260K/tok512.bin");
  try {
    bmos::load_tokenizer(bin, "sentencepiece");
    FAIL() << "a tokenizer.bin loaded as a SentencePiece model";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a SentencePiece model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(bin), std::string::npos) << e.what();
  }
  try {
    bmos::load_tokenizer("/nonexistent/tokenizer.model");
    FAIL() << "a missing tokenizer loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.model: tokenizer not found"), std::string::npos)
        << e.what();
  }
}

TEST(SentencePiece, PluginPathOverride) {
  EXPECT_EQ(bmos::sentencepiece_plugin_path(), std::string(BMOS_SENTENCEPIECE_PLUGIN));
  setenv("BMOS_SENTENCEPIECE_PLUGIN", "/opt/bmos/libbmos_sentencepiece.so", 1);
  EXPECT_EQ(bmos::sentencepiece_plugin_path(), "/opt/bmos/libbmos_sentencepiece.so");
  unsetenv("BMOS_SENTENCEPIECE_PLUGIN");
}
