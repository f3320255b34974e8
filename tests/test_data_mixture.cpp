// The training stream: blocks equal a plain in-memory concatenation (the reference), sources mix by weight, the seed
// decides the order, a restored cursor continues exactly, and bad setups give clear errors.
#include <random>

#include "data/mixture.h"
#include "data/token_shard.h"
#include "data/token_stream.h"
#include "tests/test_util.h"

namespace {

using Docs = std::vector<std::vector<int32_t>>;

// Random documents whose ids encode their source (ids in [first_id, first_id + 1000)): rows are traceable.
Docs random_docs(int n, int max_len, int32_t first_id, uint32_t seed) {
  std::mt19937 rng(seed);
  Docs docs(n);
  for (auto& d : docs) {
    d.resize(1 + rng() % max_len);
    for (auto& id : d) id = first_id + static_cast<int32_t>(rng() % 1000);
  }
  return docs;
}

std::string write_shard(const std::string& path, const Docs& docs) {
  bmos::ShardInfo info;
  info.tokenizer_hash = "test-tokenizer";
  info.vocab_size = 100000;
  bmos::ShardWriter w(path, info);
  for (const auto& d : docs) w.add_document(d.data(), d.size(), 1);
  w.finish();
  return path;
}

// The reference: the whole stream in memory.
std::vector<int64_t> concatenated(const std::vector<Docs>& shards, const bmos::StreamOptions& o) {
  std::vector<int64_t> s;
  for (const auto& docs : shards)
    for (const auto& d : docs) {
      if (o.add_bos) s.push_back(o.bos_id);
      s.insert(s.end(), d.begin(), d.end());
      if (o.add_eos) s.push_back(o.eos_id);
    }
  return s;
}

bmos::StreamOptions options(int64_t seq_len, bool bos = true, bool eos = true) {
  bmos::StreamOptions o;
  o.seq_len = seq_len;
  o.add_bos = bos;
  o.add_eos = eos;
  return o;
}

bmos::PreparedSource prepared(const std::string& name, double weight, const std::vector<std::string>& shards) {
  bmos::PreparedSource p;
  p.name = name;
  p.weight = weight;
  p.shards = shards;
  return p;
}

struct TwoSources {
  std::string dir;
  std::vector<bmos::PreparedSource> sources;
};

// Source "a": ids 10000+, two shards of short documents; source "b": ids 20000+, long documents.
TwoSources two_sources(const std::string& name, double wa, double wb) {
  TwoSources t;
  t.dir = bmos::test::temp_dir(name);
  const auto a1 = write_shard(t.dir + "/a1.h5", random_docs(300, 40, 10000, 1));
  const auto a2 = write_shard(t.dir + "/a2.h5", random_docs(200, 40, 10000, 2));
  const auto b1 = write_shard(t.dir + "/b1.h5", random_docs(60, 900, 20000, 3));
  t.sources = {prepared("a", wa, {a1, a2}), prepared("b", wb, {b1})};
  return t;
}

bool same(const bmos::Batch& x, const bmos::Batch& y) { return torch::equal(x.tokens, y.tokens) && x.source == y.source; }

}  // namespace

TEST(SourceStream, BlocksEqualTheConcatenatedReference) {
  const std::string dir = bmos::test::temp_dir("stream_reference");
  const Docs d1 = random_docs(50, 30, 10, 11), d2 = random_docs(30, 70, 10, 12);
  const auto s1 = write_shard(dir + "/1.h5", d1), s2 = write_shard(dir + "/2.h5", d2);
  for (const auto& [bos, eos] : std::vector<std::pair<bool, bool>>{{true, true}, {false, true}, {true, false},
                                                                   {false, false}}) {
    for (int64_t T : {1, 7, 64, 257}) {
      const auto o = options(T, bos, eos);
      const bmos::SourceStream stream("s", {s1, s2}, o);
      const auto ref = concatenated({d1, d2}, o);
      ASSERT_EQ(stream.stream_tokens(), static_cast<int64_t>(ref.size()));
      ASSERT_EQ(stream.num_blocks(), (static_cast<int64_t>(ref.size()) - 1) / T);
      std::vector<int64_t> block(T + 1);
      for (int64_t i = 0; i < stream.num_blocks(); ++i) {
        stream.read_block(i, block.data());
        for (int64_t k = 0; k <= T; ++k)
          ASSERT_EQ(block[k], ref[i * T + k]) << "T=" << T << " bos=" << bos << " eos=" << eos << " block " << i
                                              << " position " << k;
      }
    }
  }
}

// weight "size": each source's share is its share of all blocks, as if the corpora were concatenated.
TEST(MixtureStream, SizeWeightsMixAsConcatenatedCorpora) {
  const auto t = two_sources("mixture_size", bmos::DataSource::kWeightBySize, bmos::DataSource::kWeightBySize);
  bmos::MixtureStream stream(t.sources, options(32), 42);
  const int64_t na = stream.source(0).num_blocks(), nb = stream.source(1).num_blocks();
  int64_t from_a = 0;
  for (int64_t k = 0; k < (na + nb) / 8; ++k)
    for (int32_t s : stream.next_batch(8).source) from_a += s == 0;
  const double want = double(na) / double(na + nb) * double((na + nb) / 8 * 8);
  EXPECT_NEAR(double(from_a), want, 1.0) << na << " + " << nb << " blocks";
  EXPECT_NE(stream.cursor().stream.find("blocks=" + std::to_string(na)), std::string::npos) << stream.cursor().stream;
}

TEST(MixtureStream, HitsItsWeightsOver1000Blocks) {
  const auto t = two_sources("mixture_weights", 0.7, 0.3);
  bmos::MixtureStream stream(t.sources, options(32), 42);
  int from_a = 0;
  for (int step = 0; step < 125; ++step) {  // 125 x 8 = 1000 blocks
    const auto b = stream.next_batch(8);
    ASSERT_EQ(b.tokens.sizes(), (std::vector<int64_t>{8, 33}));
    for (int r = 0; r < 8; ++r) {
      from_a += b.source[r] == 0;
      const auto row = b.tokens[r];  // BOS/EOS aside, a row's ids tell its source
      const int64_t lo = b.source[r] == 0 ? 10000 : 20000;
      for (int k = 0; k < 33; ++k) {
        const int64_t id = row[k].item<int64_t>();
        ASSERT_TRUE(id == 1 || id == 2 || (id >= lo && id < lo + 1000)) << "row of source " << b.source[r];
      }
    }
  }
  const double share = from_a / 1000.0;
  std::printf("source a: %d of 1000 blocks (weight 0.7), |share - weight| = %.4f (tolerance 0.005)\n", from_a,
              std::abs(share - 0.7));
  EXPECT_NEAR(share, 0.7, 0.005);  // the deficit rule is exact to within one block
  EXPECT_EQ(stream.cursor().blocks, 1000u);
}

TEST(MixtureStream, SameSeedSameBatchesOtherSeedOther) {
  const auto t = two_sources("mixture_seed", 0.5, 0.5);
  bmos::MixtureStream x(t.sources, options(32), 42), y(t.sources, options(32), 42), z(t.sources, options(32), 43);
  int differ = 0;
  for (int step = 0; step < 20; ++step) {
    const auto bx = x.next_batch(4), by = y.next_batch(4), bz = z.next_batch(4);
    ASSERT_TRUE(same(bx, by)) << "step " << step;
    differ += !torch::equal(bx.tokens, bz.tokens);
  }
  EXPECT_GE(differ, 18);
}

TEST(MixtureStream, EpochsVisitEveryBlockOnceInANewOrder) {
  const std::string dir = bmos::test::temp_dir("mixture_epochs");
  const auto s = write_shard(dir + "/s.h5", random_docs(100, 50, 100, 5));
  bmos::MixtureStream stream({prepared("only", 1.0, {s})}, options(16), 7);
  const int64_t n = stream.source(0).num_blocks();
  ASSERT_GT(n, 20);
  // Identify blocks by their contents: each epoch must be a permutation of all blocks, the two orders differ.
  std::vector<std::vector<int64_t>> blocks(n, std::vector<int64_t>(17));
  for (int64_t i = 0; i < n; ++i) stream.source(0).read_block(i, blocks[i].data());
  std::vector<std::vector<int64_t>> orders(2);
  for (int epoch = 0; epoch < 2; ++epoch) {
    for (int64_t k = 0; k < n; ++k) {
      const auto b = stream.next_batch(1);
      const std::vector<int64_t> row(b.tokens.data_ptr<int64_t>(), b.tokens.data_ptr<int64_t>() + 17);
      orders[epoch].push_back(std::find(blocks.begin(), blocks.end(), row) - blocks.begin());
    }
    std::vector<int64_t> sorted = orders[epoch];
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i) << "epoch " << epoch;
  }
  EXPECT_NE(orders[0], orders[1]);
}

TEST(MixtureStream, ResumeFromASavedCursorContinuesIdentically) {
  const auto t = two_sources("mixture_resume", 0.6, 0.4);
  bmos::MixtureStream full(t.sources, options(64), 9);
  for (int step = 0; step < 7; ++step) full.next_batch(5);
  const std::string saved = full.cursor().to_json();
  std::vector<bmos::Batch> rest;
  for (int step = 0; step < 40; ++step) rest.push_back(full.next_batch(5));  // runs past source b's first epoch

  bmos::MixtureStream resumed(t.sources, options(64), 9);
  resumed.restore(bmos::DataCursor::from_json(saved));
  for (int step = 0; step < 40; ++step) ASSERT_TRUE(same(resumed.next_batch(5), rest[step])) << "step " << step;
  EXPECT_EQ(resumed.cursor().to_json(), full.cursor().to_json());
}

TEST(MixtureStream, BadSetupsGiveClearErrors) {
  const auto t = two_sources("mixture_errors", 0.5, 0.5);
  // seq_len larger than the whole source (and so than any document).
  const std::string dir = t.dir;
  const auto tiny = write_shard(dir + "/tiny.h5", {{5, 6, 7}, {8, 9}});
  try {
    bmos::MixtureStream s({prepared("tiny", 1.0, {tiny})}, options(2048), 1);
    FAIL() << "a source shorter than one block was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "source 'tiny' has 9 tokens in 2 documents (longest document: 3 tokens), fewer than one block of "
              "seq_len + 1 = 2049 tokens; lower data.seq_len or give the source more text");
  }
  // A cursor from another stream (other seq_len) is refused, showing both.
  bmos::MixtureStream a(t.sources, options(32), 1), b(t.sources, options(64), 1);
  a.next_batch(2);
  try {
    b.restore(a.cursor());
    FAIL() << "a cursor of another stream was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the data cursor was saved for another data stream:\n  saved: seq_len=32"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(bmos::DataCursor::from_json("{\"blocks\": 3}"), std::runtime_error);
  // Missing shard, all-zero weights.
  try {
    bmos::MixtureStream s({prepared("gone", 1.0, {dir + "/gone.h5"})}, options(8), 1);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/gone.h5: token shard not found (run bmos data prepare)");
  }
  EXPECT_THROW(bmos::MixtureStream({prepared("a", 0.0, t.sources[0].shards)}, options(8), 1), std::runtime_error);
}

TEST(MixtureStream, AZeroWeightFirstSourceIsNeverOpenedNorDrawn) {
  const auto t = two_sources("mixture_zero_first", 0.0, 1.0);
  // The zero-weight source may even be missing: it is never opened.
  const std::vector<bmos::PreparedSource> sources = {prepared("off", 0.0, {t.dir + "/gone.h5"}), t.sources[1]};
  bmos::MixtureStream s(sources, options(32), 1);
  const bmos::Batch b = s.next_batch(8);
  for (int32_t src : b.source) EXPECT_EQ(src, 1);
  EXPECT_EQ(s.cursor().served, (std::vector<uint64_t>{0, 8}));
}
