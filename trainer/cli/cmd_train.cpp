// bmos train JOB.yaml [--resume]
#include <cstdio>
#include <stdexcept>

#include "trainer/cli/cli_flags.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/launch.h"
#include "trainer/trainer.h"

DEFINE_bool(resume, false, "continue from the newest checkpoint of the run");
DEFINE_int32(nproc, 1, "data-parallel ranks to start on this host (each reads the torchrun environment it is given; "
                       "on many hosts start the ranks with torchrun or Slurm instead)");

namespace bmos {

int cmd_train(const std::vector<std::string>& args) {
  if (args.size() != 1) throw std::invalid_argument("usage: bmos train JOB.yaml [--resume] [--set 'k.p=v; ...']");
  if (FLAGS_nproc != 1) {  // each rank runs this same command without --nproc
    std::vector<std::string> rank_args{"train", args[0]};
    if (FLAGS_resume) rank_args.push_back("--resume");
    if (!FLAGS_set.empty()) rank_args.push_back("--set=" + FLAGS_set);
    if (FLAGS_threads > 0) rank_args.push_back("--threads=" + std::to_string(FLAGS_threads));
    return launch_local_ranks(FLAGS_nproc, rank_args);
  }
  JobConfig job = load_job(args[0], split_overrides(FLAGS_set));
  if (FLAGS_threads > 0) job.run.threads = FLAGS_threads;  // the command line wins over run.threads
  Trainer trainer(std::move(job), FLAGS_resume);
  const TrainSummary s = trainer.train();
  if (s.rank != 0) return s.interrupted ? 130 : 0;  // rank 0 reports for all
  std::printf("trained %lld steps, %lld tokens in %.1f s (%.0f tokens/s)%s\n", (long long)s.steps, (long long)s.tokens,
              s.seconds, s.tokens_per_second, s.interrupted ? " [interrupted]" : "");
  for (const auto& [name, ppl] : s.student_ppl) {
    auto t = s.teacher_ppl.find(name);
    if (t != s.teacher_ppl.end())
      std::printf("%-12s teacher ppl %10.4f   student ppl %10.4f   ratio %.3f\n", name.c_str(), t->second, ppl,
                  ppl / t->second);
    else
      std::printf("%-12s ppl %10.4f\n", name.c_str(), ppl);
  }
  std::printf("checkpoint: %s\n", s.checkpoint.c_str());
  return s.interrupted ? 130 : 0;
}

}  // namespace bmos
