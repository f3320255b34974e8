#include "trainer/data_generate.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "data/tokenizers/tokenizer.h"
#include "modules/generate.h"
#include "modules/io/model_loader.h"
#include "modules/threads.h"
#include "trainer/checkpoint/checkpoint.h"

namespace bmos {

namespace fs = std::filesystem;

int run_data_generate(const JobConfig& job) {
  const GenerateConfig& g = job.generate;
  if (g.out.empty()) throw std::runtime_error(job.file + ": generate.out: missing (the corpus file to write)");
  if (g.count <= 0) throw std::runtime_error(job.file + ": generate.count: must be > 0");
  if (g.batch <= 0) throw std::runtime_error(job.file + ": generate.batch: must be > 0");
  set_compute_threads(job.run.threads);
  LoadedModel m = load_model(resolve_model_path(job.teacher.path));
  const std::string tok_path = job.tokenizer.path.empty() ? m.tokenizer : job.tokenizer.path;
  if (tok_path.empty()) throw std::runtime_error(job.file + ": tokenizer.path: none given and none beside the teacher");
  const auto tok = load_tokenizer(tok_path, job.tokenizer.kind);
  Llama& model = m.model;
  const int64_t V = model->config.vocab_size;
  const int64_t len = std::min<int64_t>(g.max_tokens, model->config.max_seq_len);
  if (len < 2) throw std::runtime_error(job.file + ": generate.max_tokens: must be >= 2 (BOS and one sampled token)");

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
    const std::vector<std::vector<int32_t>> seqs =
        generate_batch(model, std::vector<std::vector<int32_t>>(B, {int32_t(model->config.bos_id)}), samplers, len - 1);
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
