#include "trainer/batch_source.h"

#include "data/mixture.h"
#include "data/prepare.h"
#include "trainer/job/job_data.h"

namespace bmos {
namespace {

// The data pipeline's weighted mixture (data/mixture.h) behind the trainer's interface.
class MixtureBatchSource : public BatchSource {
 public:
  MixtureBatchSource(const JobConfig& job, const Tokenizer& tok)
      : stream_(prepare_data(data_spec(job), tok, PrepareOptions{}), stream_options(job, tok), job.run.seed) {}
  torch::Tensor next(int64_t batch) override { return stream_.next_batch(batch).tokens; }
  nlohmann::json cursor() const override { return nlohmann::json::parse(stream_.cursor().to_json()); }
  void restore(const nlohmann::json& c) override { stream_.restore(DataCursor::from_json(c.dump())); }
  int64_t blocks_per_epoch() const override {
    int64_t n = 0;
    for (int64_t s = 0; s < stream_.num_sources(); ++s) n += stream_.source(s).num_blocks();
    return n;
  }

 private:
  MixtureStream stream_;
};

}  // namespace

std::unique_ptr<BatchSource> make_batch_source(const JobConfig& job, const Tokenizer& tok) {
  return std::make_unique<MixtureBatchSource>(job, tok);
}

}  // namespace bmos
