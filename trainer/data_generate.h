// bmos data generate: a corpus sampled from the teacher (the job's `generate:` section), written as JSON lines
// {"text": ...} that the data pipeline reads like any other source (format: jsonl).
#pragma once

#include "trainer/job/job_config.h"

namespace bmos {

int run_data_generate(const JobConfig& job);

}  // namespace bmos
