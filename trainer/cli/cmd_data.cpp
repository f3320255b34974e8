// bmos data prepare JOB.yaml   tokenize the job's sources into HDF5 token shards (data/prepare.h)
// bmos data generate JOB.yaml  sample a corpus from the teacher (trainer/data_generate.h)
#include <cstdio>
#include <stdexcept>

#include <gflags/gflags.h>

#include "data/prepare.h"
#include "data/tokenizers/tokenizer.h"
#include "trainer/cli/cli_flags.h"
#include "trainer/cli/commands.h"
#include "trainer/data_generate.h"
#include "trainer/job/job_config.h"
#include "trainer/job/job_data.h"

DEFINE_bool(rebuild, false, "data prepare: re-tokenize shards even when they are up to date");
DEFINE_uint64(gen_seed, 0, "data generate: override generate.seed (e.g. for a held-out corpus)");
DEFINE_int64(gen_count, 0, "data generate: override generate.count");
DEFINE_string(gen_out, "", "data generate: override generate.out");

namespace bmos {

namespace {

int run_prepare(const JobConfig& job) {
  const auto tok = load_tokenizer(job.tokenizer.path, job.tokenizer.kind);
  PrepareOptions opt;
  opt.threads = FLAGS_threads > 0 ? FLAGS_threads : job.run.threads;
  opt.force = FLAGS_rebuild;
  PrepareStats stats;
  const auto sources = prepare_data(data_spec(job), *tok, opt, &stats);
  std::printf("%-16s %7s %10s %13s %10s\n", "source", "shards", "docs", "tokens", "text MB");
  for (const auto& s : sources)
    std::printf("%-16s %7zu %10lld %13lld %10.2f\n", s.name.c_str(), s.shards.size(), static_cast<long long>(s.docs),
                static_cast<long long>(s.tokens), s.text_bytes / 1e6);
  std::printf("cache %s: %lld shards written, %lld up to date; %.2f MB of text -> %lld tokens in %.1f s (%.2f MB/s)\n",
              job.data.cache_dir.c_str(), static_cast<long long>(stats.shards_written),
              static_cast<long long>(stats.shards_skipped), stats.text_bytes / 1e6,
              static_cast<long long>(stats.tokens), stats.seconds,
              stats.seconds > 0 ? stats.text_bytes / 1e6 / stats.seconds : 0.0);
  return 0;
}

}  // namespace

int cmd_data(const std::vector<std::string>& args) {
  if (args.size() != 2 || (args[0] != "prepare" && args[0] != "generate")) {
    std::fprintf(stderr, "usage: bmos data prepare JOB.yaml [--threads N] [--rebuild]\n"
                         "       bmos data generate JOB.yaml [--gen_seed S] [--gen_count N] [--gen_out FILE]\n");
    return 2;
  }
  JobConfig job = load_job(args[1]);
  if (args[0] == "prepare") return run_prepare(job);
  if (FLAGS_gen_seed) job.generate.seed = FLAGS_gen_seed;
  if (FLAGS_gen_count) job.generate.count = FLAGS_gen_count;
  if (!FLAGS_gen_out.empty()) job.generate.out = FLAGS_gen_out;
  if (FLAGS_threads > 0) job.run.threads = FLAGS_threads;
  return run_data_generate(job);
}

}  // namespace bmos
