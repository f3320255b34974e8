// A job file plus `--set` overrides (trainer/job/job_config.h): the YAML text, then the overrides (one per line of the
// second part), applied and parsed as load_job does.
#include <sstream>

#include "tests/fuzz/fuzz_target.h"
#include "trainer/job/job_config.h"

BMOS_FUZZ_TARGET(job_yaml) {
  const std::vector<std::string> parts = bmos_fuzz::split_parts(data, size, 2);
  std::vector<std::string> overrides;
  std::istringstream lines(parts[1]);
  for (std::string line; std::getline(lines, line);) overrides.push_back(line);
  try {
    const std::string text = bmos::apply_overrides(parts[0], overrides, "job.yaml");
    bmos::parse_job(text, "job.yaml", "");
  } catch (const std::exception& e) {
    bmos_fuzz::refused(e);
  }
  return 0;
}
