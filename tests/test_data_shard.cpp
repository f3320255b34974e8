// Token shards and `data prepare`: text -> shard -> the same ids as encoding directly; up-to-date shards are skipped,
// stale ones rebuilt, another tokenizer's refused; bad inputs give clear errors.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "data/corpus_reader.h"
#include "data/data_spec.h"
#include "data/prepare.h"
#include "data/token_shard.h"
#include "data/tokenizers/tokenizer.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace {

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

bmos::DataSpec job_with(const std::string& dir, const std::vector<bmos::DataSource>& sources) {
  bmos::DataSpec spec;
  spec.origin = dir + "/job.yaml";
  spec.cache_dir = dir + "/cache";
  spec.sources = sources;
  return spec;
}

bmos::DataSource source(const std::string& name, const std::string& format, const std::vector<std::string>& files) {
  bmos::DataSource s;
  s.name = name;
  s.format = format;
  s.files = files;
  return s;
}

std::string prepare_error(const bmos::DataSpec& job, const bmos::Tokenizer& tok) {
  return bmos::test::error_of([&] { bmos::prepare_data(job, tok, {0, false, false}); });
}

}  // namespace

TEST(TokenShard, WriteReadRoundTrip) {
  const std::string dir = bmos::test::temp_dir("shard_roundtrip");
  bmos::ShardInfo info;
  info.tokenizer_hash = "abc123";
  info.tokenizer_kind = "llama2c";
  info.vocab_size = 50000;
  info.source_file = "/some/file.txt";
  info.source_size = 42;
  info.reader = "text doc_split=line";
  std::mt19937 rng(1);
  std::vector<std::vector<int32_t>> docs;
  for (int d = 0; d < 3000; ++d) {  // ~300k tokens: several chunks and flushes, an empty document too
    std::vector<int32_t> ids(d == 5 ? 0 : rng() % 200);
    for (auto& id : ids) id = rng() % 50000;
    docs.push_back(ids);
  }
  const std::string path = dir + "/s.h5";
  {
    bmos::ShardWriter w(path, info);
    for (const auto& d : docs) w.add_document(d.data(), d.size(), 7);
    EXPECT_FALSE(fs::exists(path));  // only the temporary exists until finish()
    w.finish();
  }
  ASSERT_TRUE(fs::exists(path));
  bmos::ShardReader r(path);
  EXPECT_EQ(r.info().n_docs, 3000);
  EXPECT_EQ(r.info().text_bytes, 3000 * 7);
  EXPECT_EQ(r.info().tokenizer_hash, "abc123");
  EXPECT_EQ(r.info().source_file, "/some/file.txt");
  for (int d = 0; d < 3000; d += 1) ASSERT_EQ(r.document(d), docs[d]) << "document " << d;
  // An unfinished writer leaves nothing behind.
  {
    bmos::ShardWriter w(dir + "/never.h5", info);
    w.add_document(docs[0].data(), docs[0].size(), 1);
  }
  EXPECT_FALSE(fs::exists(dir + "/never.h5"));
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find("never"), std::string::npos) << e.path();
  // Out-of-vocabulary ids are refused.
  bmos::ShardWriter w(dir + "/bad.h5", info);
  const int32_t bad = 50000;
  EXPECT_THROW(w.add_document(&bad, 1, 1), std::runtime_error);
}

TEST(TokenShard, PrepareGivesTheIdsOfDirectEncoding) {
  BMOS_REQUIRE_DATA(tokpath, "models/llama2-tokenizer/tokenizer.model");
  BMOS_REQUIRE_DATA(c4, "text/c4/c4-train.00000-of-01024.first1000.jsonl");
  const std::string dir = bmos::test::temp_dir("shard_prepare");
  // The first 60 C4 documents, as JSON lines and gzipped-free plain text (one per line, newlines flattened).
  std::ifstream in(c4);
  std::string line, jsonl;
  for (int i = 0; i < 60 && std::getline(in, line); ++i) jsonl += line + "\n";
  write_file(dir + "/c4.jsonl", jsonl);
  write_file(dir + "/w.txt", " = Title = \n\n First line of text .\n Second @-@ line , 1 @,@ 000 .\n");
  const auto tok = bmos::load_tokenizer(tokpath);
  auto job = job_with(dir, {source("c4", "jsonl", {dir + "/c4.jsonl"}), source("wiki", "text", {dir + "/w.txt"})});
  bmos::PrepareStats stats;
  const auto prepared = bmos::prepare_data(job, *tok, {2, false, false}, &stats);
  ASSERT_EQ(prepared.size(), 2u);
  EXPECT_EQ(stats.shards_written, 2);
  for (size_t s = 0; s < 2; ++s) {
    const auto& src = job.sources[s];
    bmos::ShardReader r(prepared[s].shards.at(0));
    EXPECT_EQ(r.info().tokenizer_hash, tok->hash());
    EXPECT_EQ(r.info().source_size, static_cast<int64_t>(fs::file_size(src.files[0])));
    bmos::CorpusReader reader(src.files[0], bmos::corpus_options(src));
    std::string doc;
    int64_t d = 0;
    while (reader.next(doc)) {
      ASSERT_LT(d, r.info().n_docs);
      ASSERT_EQ(r.document(d), tok->encode(doc)) << src.name << " document " << d;
      ++d;
    }
    EXPECT_EQ(d, r.info().n_docs);
  }
  EXPECT_EQ(prepared[0].docs, 60);
  EXPECT_EQ(prepared[1].docs, 3);

  // Up to date: skipped. Source touched: rebuilt. --rebuild: rebuilt.
  bmos::prepare_data(job, *tok, {2, false, false}, &stats);
  EXPECT_EQ(stats.shards_written, 0);
  EXPECT_EQ(stats.shards_skipped, 2);
  write_file(dir + "/w.txt", " = Title = \n\n Changed text .\n");
  bmos::prepare_data(job, *tok, {2, false, false}, &stats);
  EXPECT_EQ(stats.shards_written, 1);
  EXPECT_EQ(bmos::ShardReader(prepared[1].shards[0]).info().n_docs, 2);
  bmos::prepare_data(job, *tok, {2, false, true}, &stats);
  EXPECT_EQ(stats.shards_written, 2);
}

TEST(TokenShard, RefusesAShardOfAnotherTokenizer) {
  BMOS_REQUIRE_DATA(small, "models/stories260K/tok512.bin");
  BMOS_REQUIRE_DATA(big, "models/llama2-tokenizer/tokenizer.bin");
  const std::string dir = bmos::test::temp_dir("shard_mismatch");
  write_file(dir + "/a.txt", "Once upon a time.\nThe end.\n");
  const auto job = job_with(dir, {source("stories", "text", {dir + "/a.txt"})});
  const auto a = bmos::load_tokenizer(small);
  const auto b = bmos::load_tokenizer(big);
  bmos::prepare_data(job, *a, {1, false, false});
  const std::string e = prepare_error(job, *b);
  const std::string shard = bmos::shard_path(job.cache_dir, "stories", dir + "/a.txt");
  EXPECT_NE(e.find(shard + ": this shard was made with another tokenizer (llama2c " + small), std::string::npos) << e;
  EXPECT_NE(e.find("than this job's (llama2c " + big), std::string::npos) << e;
  EXPECT_NE(e.find("Delete the shard (or its folder) to re-tokenize, or give this job its own data.cache_dir"),
            std::string::npos)
      << e;
  EXPECT_EQ(bmos::ShardReader(shard).info().tokenizer_hash, a->hash());  // untouched
}

TEST(TokenShard, BadInputsGiveClearErrors) {
  BMOS_REQUIRE_DATA(small, "models/stories260K/tok512.bin");
  const std::string dir = bmos::test::temp_dir("shard_errors");
  const auto tok = bmos::load_tokenizer(small);

  auto job = job_with(dir, {source("c4", "jsonl", {dir + "/missing.jsonl"})});
  std::string e = prepare_error(job, *tok);
  EXPECT_NE(e.find(dir + "/missing.jsonl: corpus file not found (data.sources[0] 'c4' in " + dir + "/job.yaml"),
            std::string::npos)
      << e;

  write_file(dir + "/bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"fine\"}\n{\"txt\": \"wrong key\"}\n");
  job = job_with(dir, {source("c4", "jsonl", {dir + "/bad.jsonl"})});
  e = prepare_error(job, *tok);
  EXPECT_NE(e.find("data.sources[0] 'c4': " + dir + "/bad.jsonl:3: no \"text\" field"), std::string::npos) << e;
  job.sources[0].skip_bad_lines = true;
  const auto ok = bmos::prepare_data(job, *tok, {1, false, false});
  EXPECT_EQ(ok[0].docs, 2);
  EXPECT_EQ(ok[0].bad_lines, 1);

  write_file(dir + "/empty.txt", "\n   \n\n");
  job = job_with(dir, {source("wiki", "text", {dir + "/empty.txt"})});
  e = prepare_error(job, *tok);
  EXPECT_NE(e.find(dir + "/job.yaml: data.sources[0] 'wiki' has no documents (its files are empty or blank)"),
            std::string::npos)
      << e;

  job = job_with(dir, {});
  EXPECT_NE(prepare_error(job, *tok).find("data.sources is empty"), std::string::npos);
}
