#include "trainer/job/job_data.h"

#include <stdexcept>

namespace bmos {

DataSpec data_spec(const JobConfig& job) {
  DataSpec spec;
  spec.sources = job.data.sources;
  spec.cache_dir = job.data.cache_dir;
  spec.origin = job.file;
  return spec;
}

StreamOptions stream_options(const JobConfig& job, const Tokenizer& tok) {
  StreamOptions o;
  o.seq_len = job.data.seq_len;
  o.add_bos = job.tokenizer.add_bos;
  o.add_eos = job.tokenizer.add_eos;
  o.bos_id = tok.bos_id();
  o.eos_id = tok.eos_id();
  if (o.add_bos && o.bos_id < 0)
    throw std::runtime_error(job.file + ": tokenizer.add_bos is true but " + tok.path() + " has no BOS token");
  if (o.add_eos && o.eos_id < 0)
    throw std::runtime_error(job.file + ": tokenizer.add_eos is true but " + tok.path() + " has no EOS token");
  return o;
}

}  // namespace bmos
