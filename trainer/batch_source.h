// What the trainer needs from the data pipeline: blocks of seq_len + 1 tokens (inputs and shifted targets) and a
// cursor that a checkpoint saves, so a resumed run sees exactly the batches it would have seen.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/tokenizers/tokenizer.h"
#include "trainer/job/job_config.h"

namespace bmos {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual torch::Tensor next(int64_t batch) = 0;  // (batch, seq_len + 1) int64
  virtual nlohmann::json cursor() const = 0;
  virtual void restore(const nlohmann::json& cursor) = 0;
  virtual int64_t blocks_per_epoch() const = 0;  // every source's blocks once (train.epochs counts these)
};

// The job's weighted mixture over its prepared token shards (preparing them first when needed).
std::unique_ptr<BatchSource> make_batch_source(const JobConfig& job, const Tokenizer& tok);

}  // namespace bmos
