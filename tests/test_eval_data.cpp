// Evaluation sets: CPython's random reproduced draw for draw, WikiText-2 joining and windows, the GPTQ C4 sampler,
// the six zero-shot task readers on the real files (and their errors on broken ones), and the harness prompts.
// Expected random values were produced with CPython 3.11 at authoring time (commands in each test).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "data/eval/eval_c4.h"
#include "data/eval/eval_pyrandom.h"
#include "data/eval/eval_windows.h"
#include "data/hash.h"
#include "data/eval/tasks.h"
#include "data/tokenizers/tokenizer_byte.h"
#include "tests/test_util.h"
#include "trainer/eval/eval_prompts.h"
#include "trainer/eval/ppl_sets.h"

namespace bmos {
namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// Runs fn, expects a std::runtime_error whose message contains every piece of `needles`.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << needles.front() << "'";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nmissing: " << n;
  }
}

// ------------------------------------------------------------------------------------------------- CPython random
TEST(PythonRandom, MatchesCPython) {
  // python3 -c 'import random; random.seed(0); print([random.randint(0, 999) for _ in range(10)])'
  PythonRandom r(0);
  std::vector<int64_t> got;
  for (int i = 0; i < 10; ++i) got.push_back(r.randint(0, 999));
  EXPECT_EQ(got, (std::vector<int64_t>{864, 394, 776, 911, 430, 41, 265, 988, 523, 497}));

  // random.seed(0); [random.getrandbits(32) for _ in range(5)]
  r.seed_int(0);
  std::vector<uint64_t> bits;
  for (int i = 0; i < 5; ++i) bits.push_back(r.getrandbits(32));
  EXPECT_EQ(bits, (std::vector<uint64_t>{3626764237u, 1654615998u, 3255389356u, 3823568514u, 1806341205u}));

  // random.seed(0); [randint(0, 356317) x5], [randint(0, 1) x8], getrandbits(64), getrandbits(40), randint(0, 2**40)
  r.seed_int(0);
  got.clear();
  for (int i = 0; i < 5; ++i) got.push_back(r.randint(0, 356317));
  EXPECT_EQ(got, (std::vector<int64_t>{201979, 220500, 21225, 135746, 268055}));
  got.clear();
  for (int i = 0; i < 8; ++i) got.push_back(r.randint(0, 1));
  EXPECT_EQ(got, (std::vector<int64_t>{1, 1, 1, 1, 1, 0, 0, 1}));
  EXPECT_EQ(r.getrandbits(64), 13942126818862981423ull);
  EXPECT_EQ(r.getrandbits(40), 679012127780ull);
  EXPECT_EQ(r.randint(0, int64_t{1} << 40), 553189221793);

  // random.seed(12345); [random.randint(5, 17) for _ in range(8)]
  r.seed_int(12345);
  got.clear();
  for (int i = 0; i < 8; ++i) got.push_back(r.randint(5, 17));
  EXPECT_EQ(got, (std::vector<int64_t>{11, 16, 5, 17, 9, 10, 8, 9}));

  // random.seed(2**40 + 7): a two-word seed key
  r.seed_int((uint64_t{1} << 40) + 7);
  bits.clear();
  for (int i = 0; i < 3; ++i) bits.push_back(r.getrandbits(32));
  EXPECT_EQ(bits, (std::vector<uint64_t>{2635837658u, 3209733218u, 3500038837u}));

  // randint(0, 0) still consumes draws (getrandbits(1) until 0): seed(0); [randint(0,0) x3]; getrandbits(32)
  r.seed_int(0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(r.randint(0, 0), 0);
  EXPECT_EQ(r.getrandbits(32), 1112038970u);

  EXPECT_THROW(r.randint(0, -1), std::invalid_argument);
}

// --------------------------------------------------------------------------------------------------- WikiText-2
TEST(EvalWindows, WikitextJoinFollowsHuggingFaceRows) {
  const std::string dir = test::temp_dir("eval_wikijoin");
  write_file(dir + "/w.raw", " \n = A = \n \n B b\n");
  // rows: "", " = A = \n", "", " B b\n"  ->  "\n\n".join(rows)
  EXPECT_EQ(wikitext_joined_text(dir + "/w.raw"), "\n\n = A = \n\n\n\n\n B b\n");
  write_file(dir + "/crlf.raw", " = A = \r\n");
  expect_error([&] { wikitext_joined_text(dir + "/crlf.raw"); }, {"crlf.raw", "CRLF"});
  expect_error([&] { wikitext_joined_text(dir + "/missing.raw"); }, {"missing.raw", "cannot open"});
}

TEST(EvalWindows, WikitextTestSplitJoinedText) {
  BMOS_REQUIRE_DATA(path, "text/wikitext-2-raw/wiki.test.raw");
  const std::string joined = wikitext_joined_text(path);
  // python: rows = [l if l.strip() else "" for l in open(path, newline="")]; "\n\n".join(rows) -> 1,296,370 bytes
  EXPECT_EQ(joined.size(), 1296370u);
  Sha256 h;
  h.update(joined);
  EXPECT_EQ(h.hex(), "696cca6b65a171b0a358a4be6732cdfdf2dd6164a32e20fd70e3c13fc4dfae83");
}

TEST(EvalWindows, ContiguousWindowCounting) {
  std::vector<int32_t> tokens(1000);
  for (int i = 0; i < 1000; ++i) tokens[i] = i;
  const EvalWindows w = contiguous_windows(tokens, 128, 0, "t");
  EXPECT_EQ(w.count(), 7);  // 1000 // 128, the 104-token tail dropped
  EXPECT_EQ(w.tokens.size(), 7u * 128u);
  EXPECT_EQ(w.tokens[128], 128);
  EXPECT_EQ(w.tokens.back(), 7 * 128 - 1);
  EXPECT_EQ(w.source_tokens, 1000);
  EXPECT_EQ(contiguous_windows(tokens, 128, 3, "t").count(), 3);
  EXPECT_EQ(contiguous_windows(tokens, 1000, 0, "t").count(), 1);
  // 166 windows for the Llama-2 token count of the protocol (341,469 // 2048)
  EXPECT_EQ(contiguous_windows(std::vector<int32_t>(341469, 5), 2048, 0, "t").count(), 166);
  expect_error([&] { contiguous_windows(tokens, 1001, 0, "wikitext2"); }, {"wikitext2", "1000 tokens", "1001"});
}

// `bmos eval --ppl NAME=FILE` and the trainer's eval.ppl build their windows with this one function.
TEST(EvalWindows, TextSetsJsonlDocumentsOrWholeFile) {
  const std::string dir = test::temp_dir("text_sets");
  write_file(dir + "/held.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"cd\"}\n");
  write_file(dir + "/held.txt", "ab\ncd");
  const auto tok = make_byte_tokenizer();
  auto cat = [](std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  PplSet set;
  set.name = "held";
  set.format = "text";
  set.seq_len = 2;
  set.file = dir + "/held.jsonl";  // each document BOS + ids + EOS: 8 tokens, 4 windows
  EvalWindows w = load_eval_windows(set, *tok);
  EXPECT_EQ(w.tokens, cat(encode_with(*tok, "ab", true, true), encode_with(*tok, "cd", true, true)));
  EXPECT_EQ(w.count(), 4);
  EXPECT_NE(w.protocol.find("JSON-lines documents"), std::string::npos);
  set.file = dir + "/held.txt";  // the whole file, BOS + ids: 6 tokens, 3 windows
  w = load_eval_windows(set, *tok);
  EXPECT_EQ(w.tokens, encode_with(*tok, "ab\ncd", true, false));
  EXPECT_EQ(w.count(), 3);
  set.format = "parquet";
  expect_error([&] { load_eval_windows(set, *tok); }, {"held", "unknown perplexity format 'parquet'"});
  std::filesystem::remove_all(dir);
}

// ------------------------------------------------------------------------------------------------------ C4 sampler
// Document i is "i"; its tokens are i*1000 + position, with the lengths below.
std::vector<int32_t> fake_doc_tokens(const std::string& text, const std::vector<int>& lens) {
  const int i = std::stoi(text);
  std::vector<int32_t> ids(static_cast<size_t>(lens[static_cast<size_t>(i)]));
  for (size_t k = 0; k < ids.size(); ++k) ids[k] = i * 1000 + static_cast<int32_t>(k);
  return ids;
}

TEST(C4Sampler, ReproducesTheGptqDraws) {
  std::vector<int> lens;
  std::vector<std::string> docs;
  for (int i = 0; i < 50; ++i) {
    lens.push_back((i * 37) % 101 + 20);
    docs.push_back(std::to_string(i));
  }
  const auto tok = [&](const std::string& t) { return fake_doc_tokens(t, lens); };
  // The GPTQ loop in CPython (random.seed(0); re-draw docs until len >= 64; start = randint(0, len - 65)), 12 windows:
  const std::vector<std::pair<int, int>> expected = {{24, 26}, {2, 8},  {32, 15}, {19, 30}, {37, 3}, {32, 4},
                                                     {18, 4},  {48, 1}, {16, 34}, {45, 4},  {19, 6}, {46, 4}};
  C4SamplerStats stats;
  const EvalWindows w = c4_validation_windows(docs, tok, 64, 12, 0, &stats);
  ASSERT_EQ(w.count(), 12);
  for (size_t k = 0; k < expected.size(); ++k) {
    EXPECT_EQ(w.tokens[k * 64], expected[k].first * 1000 + expected[k].second) << "window " << k;
    EXPECT_EQ(w.tokens[k * 64 + 63], expected[k].first * 1000 + expected[k].second + 63) << "window " << k;
  }
  EXPECT_GE(stats.draws, 12);
  // Reproducible: the same call gives the same windows; another seed gives others.
  EXPECT_EQ(c4_validation_windows(docs, tok, 64, 12, 0).tokens, w.tokens);
  EXPECT_NE(c4_validation_windows(docs, tok, 64, 12, 1).tokens, w.tokens);
}

TEST(C4Sampler, ExactLengthDocumentsAndErrors) {
  // Every document exactly seq_len long: the reference would raise at randint(0, -1); we take each whole, so only the
  // document draws consume randomness: random.seed(0); [random.randint(0, 7) for _ in range(6)] = [6, 6, 0, 4, 7, 6]
  std::vector<int> lens(8, 16);
  std::vector<std::string> docs;
  for (int i = 0; i < 8; ++i) docs.push_back(std::to_string(i));
  const auto tok = [&](const std::string& t) { return fake_doc_tokens(t, lens); };
  const EvalWindows w = c4_validation_windows(docs, tok, 16, 6, 0);
  const std::vector<int> expected_docs = {6, 6, 0, 4, 7, 6};
  for (size_t k = 0; k < expected_docs.size(); ++k) EXPECT_EQ(w.tokens[k * 16], expected_docs[k] * 1000);

  expect_error([&] { c4_validation_windows(docs, tok, 17, 4, 0); }, {"none of the 8 documents", "17 tokens"});

  const std::string dir = test::temp_dir("eval_c4jsonl");
  write_file(dir + "/c4.jsonl", "{\"text\": \"a b\"}\n{\"text\": 3}\n");
  expect_error([&] { read_jsonl_texts(dir + "/c4.jsonl"); }, {"c4.jsonl:2", "\"text\""});
  write_file(dir + "/c4b.jsonl", "{\"text\": \"a b\"}\n{\"text\": \"c\n");
  expect_error([&] { read_jsonl_texts(dir + "/c4b.jsonl"); }, {"c4b.jsonl:2", "not valid JSON"});
  write_file(dir + "/ok.jsonl", "{\"text\": \"a b\", \"url\": \"u\"}\n{\"text\": \"c\"}\n");
  EXPECT_EQ(read_jsonl_texts(dir + "/ok.jsonl"), (std::vector<std::string>{"a b", "c"}));
}

TEST(C4Sampler, ReadsTheRealC4SliceAndGzip) {
  BMOS_REQUIRE_DATA(path, "text/c4/c4-train.00000-of-01024.first1000.jsonl");
  const auto texts = read_jsonl_texts(path);
  ASSERT_EQ(texts.size(), 1000u);
  EXPECT_EQ(texts[0].rfind("Beginners BBQ Class Taking Place in Missoula!", 0), 0u);
  // the same lines gzip-compressed read back identically
  const std::string dir = test::temp_dir("eval_c4gz");
  ASSERT_EQ(std::system(("head -n 20 '" + path + "' | gzip -c > " + dir + "/c4.json.gz").c_str()), 0);
  const auto gz = read_jsonl_texts(dir + "/c4.json.gz");
  ASSERT_EQ(gz.size(), 20u);
  EXPECT_EQ(gz[19], texts[19]);
}

// ---------------------------------------------------------------------------------------------------- task readers
TEST(Tasks, ReadsEveryRealTaskFile) {
  BMOS_REQUIRE_DATA(dir, "tasks");
  const std::vector<std::pair<std::string, size_t>> counts = {{"piqa", 1838},     {"winogrande", 1267},
                                                              {"hellaswag", 10042}, {"arc_easy", 2376},
                                                              {"arc_challenge", 1172}, {"boolq", 3270}};
  for (const auto& [name, n] : counts) {
    const auto records = read_task(name, dir);
    EXPECT_EQ(records.size(), n) << name;
    for (const auto& r : records) {
      ASSERT_GE(r.choices.size(), 2u) << name << " line " << r.line;
      ASSERT_GE(r.label, 0);
      ASSERT_LT(r.label, static_cast<int>(r.choices.size())) << name << " line " << r.line;
    }
    EXPECT_EQ(read_task(name, dir, 5).size(), 5u);
  }
  const auto piqa = read_task("piqa", dir, 2);
  EXPECT_EQ(piqa[0].context, "How do I ready a guinea pig cage for it's new occupants?");
  EXPECT_EQ(piqa[0].label, 0);
  EXPECT_EQ(piqa[1].label, 1);
  const auto hs = read_task("hellaswag", dir, 1);
  EXPECT_EQ(hs[0].context, "Roof shingle removal: A man is sitting on a roof. he");
  EXPECT_EQ(hs[0].label, 3);
  EXPECT_EQ(hs[0].choices[3], "starts pulling up roofing on a roof.");
  const auto wg = read_task("winogrande", dir, 1);
  EXPECT_EQ(wg[0].choices, (std::vector<std::string>{"Sarah", "Maria"}));
  EXPECT_EQ(wg[0].label, 1);
  const auto bq = read_task("boolq", dir, 2);
  EXPECT_EQ(bq[0].label, 0);  // false -> "no"
  EXPECT_EQ(bq[1].label, 1);
  // ARC keeps 3 to 5 choices as in the official test set
  size_t five = 0;
  for (const auto& r : read_task("arc_challenge", dir)) five += r.choices.size() == 5;
  EXPECT_EQ(five, 3u);
}

TEST(Tasks, MalformedRecordsNameFileAndLine) {
  const std::string d = test::temp_dir("eval_tasks_bad");
  std::filesystem::create_directories(d + "/piqa");
  write_file(d + "/piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\": \"a\"}\n");
  write_file(d + "/piqa/valid-labels.lst", "0\n1\n");
  expect_error([&] { read_task("piqa", d); }, {"valid.jsonl:2", "missing field \"sol2\""});
  write_file(d + "/piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n");
  expect_error([&] { read_task("piqa", d); }, {"valid-labels.lst", "2 labels for 1 questions"});
  write_file(d + "/piqa/valid-labels.lst", "2\n");
  expect_error([&] { read_task("piqa", d); }, {"valid-labels.lst:1", "0 or 1"});

  write_file(d + "/wg.jsonl", "{\"sentence\": \"no blank\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"1\"}\n");
  expect_error([&] { read_winogrande(d + "/wg.jsonl"); }, {"wg.jsonl:1", "no '_' blank"});
  write_file(d + "/wg.jsonl", "{\"sentence\": \"a _ b\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"3\"}\n");
  expect_error([&] { read_winogrande(d + "/wg.jsonl"); }, {"wg.jsonl:1", "answer must be"});

  write_file(d + "/hs.txt", "ctx\n3\na\nb\nc\nd\nctx2\nx\na\nb\nc\nd\n");
  expect_error([&] { read_hellaswag(d + "/hs.txt"); }, {"hs.txt:8", "gold index"});
  write_file(d + "/hs.txt", "ctx\n3\na\nb\nc\n");
  expect_error([&] { read_hellaswag(d + "/hs.txt"); }, {"hs.txt", "not a multiple of 6"});
  write_file(d + "/hs.txt.bz2", "BZh9 this is not bzip2 data");
  expect_error([&] { read_hellaswag(d + "/hs.txt.bz2"); }, {"hs.txt.bz2", "bzip2"});

  write_file(d + "/arc.jsonl", "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 2}\n");
  expect_error([&] { read_arc(d + "/arc.jsonl"); }, {"arc.jsonl:1", "out of range"});
  write_file(d + "/arc.jsonl", "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 0}\nnot json\n");
  expect_error([&] { read_arc(d + "/arc.jsonl"); }, {"arc.jsonl:2", "not valid JSON"});

  write_file(d + "/bq.jsonl", "{\"question\": \"q\", \"answer\": \"yes\"}\n");
  expect_error([&] { read_boolq(d + "/bq.jsonl"); }, {"bq.jsonl:1", "true or false"});

  expect_error([&] { read_task("mmlu", d); }, {"unknown zero-shot task 'mmlu'", "piqa"});
  expect_error([&] { read_task("arc_easy", d); }, {"arc_easy/test.jsonl", "cannot open"});
}

TEST(Tasks, HellaswagBz2EqualsPlainText) {
  BMOS_REQUIRE_DATA(bz, "tasks/hellaswag/hellaswag_val_full.txt.bz2");
  const std::string d = test::temp_dir("eval_hs_txt");
  ASSERT_EQ(std::system("command -v bzip2 >/dev/null"), 0) << "needs the bzip2 program (scripts/setup.sh installs it)";
  ASSERT_EQ(std::system(("bzip2 -dc '" + bz + "' | head -n 600 > " + d + "/hs.txt").c_str()), 0);
  const auto plain = read_hellaswag(d + "/hs.txt");
  const auto packed = read_hellaswag(bz);
  ASSERT_EQ(plain.size(), 100u);
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(plain[i].context, packed[i].context);
    EXPECT_EQ(plain[i].choices, packed[i].choices);
    EXPECT_EQ(plain[i].label, packed[i].label);
  }
}

// --------------------------------------------------------------------------------------------------- harness prompts
TEST(HarnessPrompts, EveryTaskFormat) {
  TaskRecord r;
  r.context = "How do I boil water?";
  r.choices = {"Heat it.", "Freeze it."};
  r.label = 0;
  auto p = harness_prompt("piqa", r);
  ASSERT_EQ(p.requests.size(), 2u);
  EXPECT_EQ(p.requests[0].context, "Question: How do I boil water?\nAnswer:");
  EXPECT_EQ(p.requests[1].continuation, " Freeze it.");
  EXPECT_EQ(p.norm_chars[1], 10.0);  // len("Freeze it."), the leading space not counted

  p = harness_prompt("arc_challenge", r);
  EXPECT_EQ(p.requests[0].context, "Question: How do I boil water?\nAnswer:");

  TaskRecord b{"is the sky blue", {"no", "yes"}, 1, 1};
  p = harness_prompt("boolq", b);
  EXPECT_EQ(p.requests[0].context, "Question: is the sky blue?\nAnswer:");
  EXPECT_EQ(p.requests[0].continuation, " no");
  EXPECT_EQ(p.requests[1].continuation, " yes");
  EXPECT_NE(task_protocol("boolq").note.find("question-only"), std::string::npos);

  TaskRecord w{"Sarah was a better surgeon than Maria so _ always got the easier cases. ", {"Sarah", "Maria"}, 1, 1};
  p = harness_prompt("winogrande", w);
  EXPECT_EQ(p.requests[0].context, "Sarah was a better surgeon than Maria so Sarah");
  EXPECT_EQ(p.requests[1].context, "Sarah was a better surgeon than Maria so Maria");
  EXPECT_EQ(p.requests[0].continuation, " always got the easier cases.");  // stripped, one leading space
  EXPECT_EQ(p.requests[1].continuation, p.requests[0].continuation);
  EXPECT_EQ(task_protocol("winogrande").metric, "acc");

  TaskRecord h{"Roof shingle removal: A man is sitting on a roof. he", {"is using wrap.", "starts [x] pulling  up."}, 1, 1};
  p = harness_prompt("hellaswag", h);
  EXPECT_EQ(p.requests[0].context, "Roof shingle removal: A man is sitting on a roof. He");
  EXPECT_EQ(p.requests[1].continuation, " starts pulling up.");
  EXPECT_EQ(task_protocol("hellaswag").metric, "acc_norm");
  EXPECT_THROW(harness_prompt("mmlu", r), std::runtime_error);
}

TEST(HarnessPrompts, HellaswagPreprocessing) {
  // WikiHow items have an empty ctx_b: nothing is capitalised, even after an abbreviation
  EXPECT_EQ(hellaswag_query("Family Life: You must be u.s. citizens or u.s. nationals."),
            "Family Life: You must be u.s. citizens or u.s. nationals.");
  EXPECT_EQ(hellaswag_query("Family Life: How to entertain a toddler. Visit a site like [www.kiddio.org] to find loads."),
            "Family Life: How to entertain a toddler. Visit a site like to find loads.");
  // ActivityNet: ctx_b is the trailing fragment, whatever precedes it
  EXPECT_EQ(hellaswag_query("Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. the lady"),
            "Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. The lady");
  EXPECT_EQ(hellaswag_query("Hand car wash: . a colorful intro"), "Hand car wash: . A colorful intro");
  EXPECT_EQ(hellaswag_query("Playing saxophone: 1 a guy is playing the saxophone. 2 a guy"),
            "Playing saxophone: 1 a guy is playing the saxophone. 2 a guy");
  EXPECT_EQ(hellaswag_query("High jump: A boy is running down a track. the boy"),
            "High jump: A boy is running down a track. The boy");
  // preprocess: strip, " [title]" -> ". ", [..] removed, one pass of "  " -> " "
  EXPECT_EQ(hellaswag_preprocess("  a [title] b [c] d   e "), "a. b d  e");
  EXPECT_EQ(hellaswag_preprocess("keep [ this"), "keep [ this");
}

TEST(HarnessPrompts, PythonStringSemantics) {
  EXPECT_EQ(python_len("h\xc3\xa9llo"), 5);         // "héllo"
  EXPECT_EQ(python_len("\xe2\x80\x94\xf0\x9f\x98\x80"), 2);  // em dash + emoji
  EXPECT_EQ(python_strip("\xc2\xa0 x y \t\n"), "x y");      // NBSP is whitespace to Python
  EXPECT_EQ(python_strip("   "), "");
  EXPECT_EQ(python_strip("\xc3\xa9"), "\xc3\xa9");
}

}  // namespace
}  // namespace bmos
