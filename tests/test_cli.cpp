// The bmos command line as a user meets it: each subcommand's --help lists its own flags only, a flag of another
// subcommand is refused by name, and paths the source tree used to supply are now flags with errors naming them.
#include <array>
#include <cstdio>
#include <string>

#include "kernels/cpu/cpu_isa.h"
#include "modules/blas_kernels.h"
#include "tests/test_util.h"

namespace bmos {
namespace {

struct CliRun {
  int status = -1;
  std::string output;  // stdout and stderr
};

CliRun bmos(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " OMP_WAIT_POLICY=PASSIVE " + test::build_dir() + "/bmos " + args + " 2>&1";
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::printf("$ bmos %s -> %d\n%s", args.c_str(), r.status, r.output.c_str());
  return r;
}

// OpenBLAS falls back to its SSE3 kernels on a CPU newer than it: bmos then restarts itself with OPENBLAS_CORETYPE set
// to the kernels the CPU can run, never over a value the user set (modules/blas_kernels.h).
TEST(Cli, BlasFixOnlyReplacesAFallbackOnACpuThatCanDoBetter) {
  EXPECT_EQ(blas_core_fix("Prescott", true, true), "SkylakeX");
  EXPECT_EQ(blas_core_fix("PRESCOTT", true, false), "Haswell");
  EXPECT_EQ(blas_core_fix("Sandybridge", true, false), "Haswell");  // AVX without AVX2 kernels
  EXPECT_EQ(blas_core_fix("Nehalem", true, true), "SkylakeX");
  for (const char* known : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"})
    EXPECT_EQ(blas_core_fix(known, true, true), "") << known << " is OpenBLAS's own choice for a CPU it knows";
  EXPECT_EQ(blas_core_fix("Prescott", false, false), "") << "a CPU without AVX2 keeps the SSE3 kernels";
  EXPECT_EQ(blas_core_fix("", true, true), "") << "no OpenBLAS in the process";
}

TEST(Cli, RestartsWithTheBlasFixOnlyWhenOpenBlasFellBackAndNothingWasSet) {
  const bool avx512 = kernels::cpu_supports(kernels::CpuIsa::kAvx512);
  const CliRun natural = bmos("--help", "env -u OPENBLAS_CORETYPE");
  EXPECT_EQ(natural.status, 0);
  EXPECT_EQ(natural.output.find("usage:"), natural.output.rfind("usage:")) << "the help printed once";
  const size_t at = natural.output.find("restarting with OPENBLAS_CORETYPE=");
  if (at != std::string::npos) {  // OpenBLAS did not know this CPU
    EXPECT_HAS(natural.output, std::string("OPENBLAS_CORETYPE=") + (avx512 ? "SkylakeX" : "Haswell") + " (");
    EXPECT_EQ(natural.output.find("could not restart"), std::string::npos);
  } else {
    std::printf("(OpenBLAS knows this CPU: no restart to check)\n");
  }
  const CliRun chosen = bmos("--help", "OPENBLAS_CORETYPE=Prescott");
  EXPECT_EQ(chosen.status, 0);
  EXPECT_EQ(chosen.output.find("restarting"), std::string::npos) << "the user's OPENBLAS_CORETYPE is kept";
}

TEST(Cli, HelpOfASubcommandListsItsOwnFlagsOnly) {
  const CliRun eval = bmos("eval --help");
  EXPECT_EQ(eval.status, 0);
  for (const char* own : {"-ppl", "-tasks_dir", "-json", "-model", "-device", "-threads"}) EXPECT_HAS(eval.output, own);
  for (const char* other : {"-prompt", "-resume", "-checkpoint", "-rebuild", "-gen_seed", "-top_p"})
    EXPECT_EQ(eval.output.find(other), std::string::npos) << other << " is not a flag of eval";
  const CliRun gen = bmos("generate --help");
  EXPECT_HAS(gen.output, "-prompt");
  EXPECT_EQ(gen.output.find("-tasks_dir"), std::string::npos);
  const CliRun top = bmos("--help");
  EXPECT_EQ(top.status, 0);
  for (const char* sub : {"generate", "data", "train", "eval", "export"}) EXPECT_HAS(top.output, std::string("bmos ") + sub);
}

TEST(Cli, AFlagOfAnotherSubcommandIsRefusedByName) {
  const CliRun r = bmos("generate --model x --json out.json");
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "--json is not a flag of 'generate'");
  const CliRun t = bmos("train job.yaml --device cuda");  // the job's run.device says where a job trains
  EXPECT_EQ(t.status, 2);
  EXPECT_HAS(t.output, "--device is not a flag of 'train'");
}

TEST(Cli, EvalNamesTheFlagForEveryPathItNeeds) {
  const std::string dir = test::temp_dir("cli_eval");
  EXPECT_HAS(bmos("eval --model " + dir).output, "nothing to evaluate: pass --ppl NAME=FILE");
  EXPECT_HAS(bmos("eval --model " + dir + " --ppl wikitext2").output, "--ppl wikitext2 needs a file: wikitext2=");
  EXPECT_HAS(bmos("eval --model " + dir + " --tasks piqa").output, "pass --tasks_dir DIR");
  EXPECT_HAS(bmos("eval --model " + dir + " --tasks piqa --tasks_dir " + dir + "/none").output,
             "--tasks_dir: folder '" + dir + "/none' not found");
}

TEST(Cli, ExportRefusesFlagsItsPathWouldIgnore) {
  const std::string dir = test::temp_dir("cli_export");
  EXPECT_HAS(bmos("export --checkpoint " + dir + " --out " + dir + "/o --method sign").output,
             "--method applies to --from-teacher");
  EXPECT_HAS(bmos("export --checkpoint " + dir + " --out " + dir + "/o --experts 2").output,
             "--experts applies to --from-teacher");
  EXPECT_HAS(bmos("export --from-teacher " + dir + " --out " + dir + "/o --sample_len 8").output,
             "--sample_len sets the sampled-text report of a loaded checkpoint; --from-teacher streams");
  EXPECT_HAS(bmos("export --checkpoint " + dir + " --out " + dir + "/o --stream on --sample_sequences 2").output,
             "--sample_sequences sets the sampled-text report of a loaded checkpoint, and this export streams");
  EXPECT_HAS(bmos("export --checkpoint " + dir + " --out " + dir + "/o --stream off --check_tokens 4").output,
             "--check_tokens sets the check of a streamed export, and this one loads the model");
  EXPECT_HAS(bmos("export --from-teacher " + dir + " --out " + dir + "/o --stream off").output,
             "--from-teacher always streams");
}

TEST(Cli, PrefillTablesAndKvCacheFlagsAreCheckedByName) {
  EXPECT_HAS(bmos("generate --model x --prefill_tables int4").output, "--prefill_tables 'int4': must be fp32 or int8");
  EXPECT_HAS(bmos("serve --model x --port 0 --prefill_tables int4").output,
             "--prefill_tables 'int4': must be fp32 or int8");
  EXPECT_HAS(bmos("generate --model x --kv_cache bf16").output, "--kv_cache 'bf16': must be model or fp16");
  EXPECT_HAS(bmos("serve --model x --port 0 --kv_cache int8").output, "--kv_cache 'int8': must be model or fp16");
  EXPECT_HAS(bmos("eval --model x --kv_cache fp16").output, "--kv_cache is not a flag of 'eval'");
}

TEST(Cli, ARunFolderWithoutACheckpointIsNamed) {
  const std::string dir = test::temp_dir("cli_run_folder");
  std::filesystem::create_directories(dir + "/run/checkpoints");
  const CliRun r = bmos("generate --model " + dir + "/run --prompt hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, dir + "/run: a run folder without a complete checkpoint yet");
}

TEST(Cli, DeviceIsCheckedBeforeAnythingRunsAndNeverFallsBackToTheCpu) {
  const std::string model = "/nonexistent/model.bin";  // the device is checked before the model is read
  for (const char* sub : {"generate --prompt hi", "eval --ppl w=/dev/null"}) {
    const CliRun bad = bmos(std::string(sub) + " --model " + model + " --device tpu");
    EXPECT_EQ(bad.status, 1);
    EXPECT_HAS(bad.output, "--device 'tpu': must be cpu, cuda or cuda:N");
  }
  if (torch::cuda::is_available()) GTEST_SKIP() << "this libtorch has CUDA: --device cuda is valid here";
  for (const char* sub : {"generate --prompt hi", "eval --ppl w=/dev/null"}) {
    const CliRun r = bmos(std::string(sub) + " --model " + model + " --device cuda:1");
    EXPECT_EQ(r.status, 1);
    EXPECT_HAS(r.output, "--device cuda:1: this build's libtorch (");
    EXPECT_HAS(r.output, ") has no CUDA, or no CUDA device is visible; use --device cpu");
    EXPECT_EQ(r.output.find("achieved tok/s"), std::string::npos) << "it ran on the CPU instead";
  }
}

}  // namespace
}  // namespace bmos
