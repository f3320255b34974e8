// The job file -> the data step's own option structs (data/ never sees a JobConfig).
#pragma once

#include "data/data_spec.h"
#include "data/token_stream.h"
#include "data/tokenizers/tokenizer.h"
#include "trainer/job/job_config.h"

namespace bmos {

// data.sources and data.cache_dir (load_job has already filled in the default cache folder).
DataSpec data_spec(const JobConfig& job);

// data.seq_len, tokenizer.add_bos/add_eos and the tokenizer's BOS/EOS ids. Throws naming the key when the job asks
// for a BOS or EOS the tokenizer does not have.
StreamOptions stream_options(const JobConfig& job, const Tokenizer& tok);

}  // namespace bmos
