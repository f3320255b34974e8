// bmos plan JOB.yaml [--world N] [--device_memory GB] [--teacher_config CONFIG.json]
//   the job's memory per rank from the teacher's config alone (trainer/plan.h); exit 0 when it fits, 3 when not
#include <cstdio>
#include <stdexcept>

#include <gflags/gflags.h>

#include "trainer/cli/cli_flags.h"
#include "trainer/cli/commands.h"
#include "trainer/job/job_config.h"
#include "trainer/plan.h"

DEFINE_int32(world, 1, "data-parallel ranks the job will run on (each takes batch_size / world of every batch)");
DEFINE_double(device_memory, 0, "GiB of memory per rank (0 = this machine's RAM for run.device cpu, 80 for cuda)");
DEFINE_string(teacher_config, "", "plan with this config.json's shape instead of the job's teacher (no weights needed)");

namespace bmos {

int cmd_plan(const std::vector<std::string>& args) {
  if (args.size() != 1) throw std::invalid_argument("usage: bmos plan JOB.yaml [--world N] [--device_memory GB]");
  const JobConfig job = load_job(args[0], split_overrides(FLAGS_set));
  if (FLAGS_teacher_config.empty() && job.teacher.format == "random")
    throw std::invalid_argument(job.file + ": teacher.format random: pass --teacher_config CONFIG.json to plan it");
  const LlamaConfig teacher = read_model_config(FLAGS_teacher_config.empty() ? job.teacher.path : FLAGS_teacher_config);
  PlanOptions o;
  o.world = FLAGS_world;
  o.device_memory_gb = FLAGS_device_memory;
  const MemoryPlan plan = plan_memory(job, teacher, o);
  std::printf("%s", format_plan(plan, job, o).c_str());
  return plan.fits ? 0 : 3;
}

}  // namespace bmos
