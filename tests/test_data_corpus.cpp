// Corpus readers: text splits, JSON lines (plain and gzip), and the errors a bad input gives.
#include <zlib.h>

#include <fstream>

#include "data/corpus_reader.h"
#include "tests/test_util.h"

namespace {

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

void write_gz(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  gzclose(f);
}

std::vector<std::string> read_all(const std::string& path, const bmos::CorpusOptions& opt) {
  bmos::CorpusReader r(path, opt);
  std::vector<std::string> docs;
  std::string d;
  while (r.next(d)) docs.push_back(d);
  return docs;
}

std::string error_of(const std::string& path, const bmos::CorpusOptions& opt) {
  return bmos::test::error_of([&] { read_all(path, opt); });
}

using Docs = std::vector<std::string>;

}  // namespace

TEST(CorpusReader, TextSplits) {
  const std::string dir = bmos::test::temp_dir("corpus_text");
  write_file(dir + "/a.txt", "first line\r\n\n  \nsecond para l1\nsecond para l2\n\n\nthird");
  bmos::CorpusOptions o;
  o.doc_split = "line";
  EXPECT_EQ(read_all(dir + "/a.txt", o), (Docs{"first line", "second para l1", "second para l2", "third"}));
  o.doc_split = "blank_line";
  EXPECT_EQ(read_all(dir + "/a.txt", o), (Docs{"first line", "second para l1\nsecond para l2", "third"}));
  o.doc_split = "file";
  EXPECT_EQ(read_all(dir + "/a.txt", o), (Docs{"first line\n\n  \nsecond para l1\nsecond para l2\n\n\nthird"}));
  write_file(dir + "/empty.txt", "\n \n");
  EXPECT_TRUE(read_all(dir + "/empty.txt", o).empty());
}

TEST(CorpusReader, LongLinesCrossTheReadBuffer) {
  const std::string dir = bmos::test::temp_dir("corpus_long");
  const std::string big(3 << 20, 'x');  // 3 MB: spans several 1 MB reads
  write_file(dir + "/big.txt", "a\n" + big + "\nb");
  EXPECT_EQ(read_all(dir + "/big.txt", {}), (Docs{"a", big, "b"}));
}

TEST(CorpusReader, JsonLinesPlainAndGzip) {
  const std::string dir = bmos::test::temp_dir("corpus_json");
  const std::string text =
      "{\"text\": \"Beginners BBQ\", \"url\": \"u\"}\n\n{\"text\": \"caf\\u00e9 \\n two lines\", \"body\": \"b\"}\n";
  write_file(dir + "/c4.jsonl", text);
  write_gz(dir + "/c4.json.gz", text);
  bmos::CorpusOptions o;
  o.format = "jsonl";
  const Docs want{"Beginners BBQ", "caf\xc3\xa9 \n two lines"};
  EXPECT_EQ(read_all(dir + "/c4.jsonl", o), want);
  EXPECT_EQ(read_all(dir + "/c4.json.gz", o), want);
  o.format = "jsonl.gz";
  EXPECT_EQ(read_all(dir + "/c4.json.gz", o), want);
  o.text_key = "body";
  EXPECT_EQ(error_of(dir + "/c4.jsonl", o),
            dir + "/c4.jsonl:1: no \"body\" field (set data.sources[].text_key) (fix the line, or set skip_bad_lines: "
                  "true on the source to skip and count such lines)");
}

TEST(CorpusReader, BadLinesNameFileAndLineOrAreCounted) {
  const std::string dir = bmos::test::temp_dir("corpus_bad");
  write_file(dir + "/bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"cut off\n[1, 2]\n{\"text\": 5}\n{\"text\": \"fine\"}\n");
  bmos::CorpusOptions o;
  o.format = "jsonl";
  const std::string e = error_of(dir + "/bad.jsonl", o);
  EXPECT_NE(e.find(dir + "/bad.jsonl:2: bad JSON"), std::string::npos) << e;
  EXPECT_NE(e.find("skip_bad_lines"), std::string::npos) << e;
  o.skip_bad_lines = true;
  bmos::CorpusReader r(dir + "/bad.jsonl", o);
  Docs docs;
  std::string d;
  while (r.next(d)) docs.push_back(d);
  EXPECT_EQ(docs, (Docs{"ok", "fine"}));
  EXPECT_EQ(r.bad_lines(), 3);  // bad JSON, not an object, not a string
}

TEST(CorpusReader, MissingFileAndBadOptions) {
  const std::string e = error_of("/nonexistent/c4.jsonl", {});
  EXPECT_NE(e.find("/nonexistent/c4.jsonl: cannot open corpus file"), std::string::npos) << e;
  EXPECT_NE(e.find("check data.sources[].files"), std::string::npos) << e;
  bmos::CorpusOptions o;
  o.doc_split = "sentence";
  EXPECT_NE(error_of("/nonexistent/x.txt", o).find("unknown doc_split 'sentence'"), std::string::npos);
}
