#include "trainer/data_generate.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <gflags/gflags.h>
#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "modules/model_loader.h"
#include "modules/sampler.h"
#include "modules/threads.h"
#include "trainer/cli_flags.h"

DEFINE_uint64(gen_seed, 0, "bmos data generate: override generate.seed (e.g. for a held-out corpus)");
DEFINE_int64(gen_count, 0, "bmos data generate: override generate.count");
DEFINE_string(gen_out, "", "bmos data generate: override generate.out");

namespace bmos {

namespace fs = std::filesystem;

int run_data_generate(const JobConfig& job) {
  GenerateConfig g = job.generate;
  if (FLAGS_gen_seed) g.seed = FLAGS_gen_seed;
  if (FLAGS_gen_count) g.count = FLAGS_gen_count;
  if (!FLAGS_gen_out.empty()) g.out = FLAGS_gen_out;
  if (g.out.empty()) throw std::runtime_error(job.file + ": generate.out: missing (the corpus file to write)");
  if (g.count <= 0) throw std::runtime_error(job.file + ": generate.count: must be > 0");
  if (g.batch <= 0) throw std::runtime_error(job.file + ": generate.batch: must be > 0");
  const int threads = FLAGS_threads > 0 ? FLAGS_threads : job.run.threads;
  set_compute_threads(threads);
  LoadedModel m = load_model(job.teacher.path);
  const std::string tok_path = job.tokenizer.path.empty() ? m.tokenizer : job.tokenizer.path;
  if (tok_path.empty()) throw std::runtime_error(job.file + ": tokenizer.path: none given and none beside the teacher");
  const auto tok = load_tokenizer(tok_path, job.tokenizer.kind);
  Llama& model = m.model;
  const int64_t V = model->config.vocab_size;
  const int64_t len = std::min<int64_t>(g.max_tokens, model->config.max_seq_len);
  torch::NoGradGuard no_grad;

  if (!g.out.empty() && fs::path(g.out).has_parent_path()) fs::create_directories(fs::path(g.out).parent_path());
  const std::string tmp = g.out + ".tmp";
  std::ofstream out(tmp);
  if (!out) throw std::runtime_error(g.out + ": cannot write (check the folder)");
  const auto t0 = std::chrono::steady_clock::now();
  int64_t done = 0, tokens = 0;
  while (done < g.count) {
    const int64_t B = std::min(g.batch, g.count - done);
    // One sampler per document, seeded by its index: the corpus does not depend on the batch size.
    std::vector<Sampler> samplers;
    for (int64_t b = 0; b < B; ++b) samplers.emplace_back(V, g.temperature, g.top_p, g.seed * 1000003ull + uint64_t(done + b));
    std::vector<std::vector<int32_t>> seqs(B, std::vector<int32_t>{int32_t(model->config.bos_id)});
    std::vector<bool> alive(B, true);
    KVCache cache = model->new_cache(B, len);
    torch::Tensor next = torch::full({B, 1}, model->config.bos_id, torch::kLong);
    for (int64_t pos = 1; pos < len; ++pos) {
      const torch::Tensor logits = model->forward_cached(next, cache).select(1, 0).contiguous();  // (B, V)
      const float* lp = logits.data_ptr<float>();
      bool any = false;
      auto nx = next.accessor<int64_t, 2>();
      for (int64_t b = 0; b < B; ++b) {
        if (!alive[b]) continue;
        const int32_t t = samplers[b].sample(lp + b * V);
        if (t == model->config.bos_id || t == model->config.eos_id) {
          alive[b] = false;
          continue;
        }
        seqs[b].push_back(t);
        nx[b][0] = t;
        any = true;
      }
      if (!any) break;
    }
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int32_t> ids(seqs[b].begin() + 1, seqs[b].end());
      tokens += int64_t(ids.size());
      out << nlohmann::json({{"text", tok->decode(ids)}}).dump() << "\n";
    }
    done += B;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\rgenerate: %lld/%lld documents, %lld tokens, %.0f tok/s", (long long)done, (long long)g.count,
                 (long long)tokens, tokens / s);
  }
  std::fprintf(stderr, "\n");
  out.close();
  fs::rename(tmp, g.out);
  std::printf("wrote %s: %lld documents, %lld tokens\n", g.out.c_str(), (long long)g.count, (long long)tokens);
  return 0;
}

}  // namespace bmos
