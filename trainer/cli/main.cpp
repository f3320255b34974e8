// bmos: the one binary. `bmos <subcommand> [args] [--flags]`.
// Flags stop here: each subcommand (trainer/cli/cmd_*.cpp) defines its own flags in its own file, reads the few
// shared ones it names below (cli_flags.h), and turns them into option structs for the library. A flag of another
// subcommand is an error, and `bmos SUBCOMMAND --help` lists only that subcommand's flags.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "modules/blas_kernels.h"
#include "trainer/cli/commands.h"

DECLARE_bool(help);
DECLARE_bool(helpshort);

namespace {

struct Subcommand {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* usage;
  const char* file;                 // the file that defines its own flags
  std::vector<std::string> shared;  // the shared flags (cli_flags.cpp) it reads
};

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> all = {
      {"generate", bmos::cmd_generate,
       "generate --model PATH [--tokenizer PATH] --prompt TEXT [--steps N] [--temperature T] [--top_p P] [--seed S] "
       "[--dtype fp32|bf16] [--device cpu|cuda|cuda:N] [--prefill_tables fp32|int8] [--nommap] [--kv_cache model|fp16]",
       "cmd_generate.cpp", {"model", "tokenizer", "threads", "device", "seed", "prefill_tables", "mmap", "kv_cache"}},
      {"data", bmos::cmd_data, "data prepare JOB.yaml [--rebuild] | data generate JOB.yaml [--gen_seed S ...]",
       "cmd_data.cpp", {"threads"}},
      {"train", bmos::cmd_train, "train JOB.yaml [--resume] [--set 'key.path=value; ...'] [--nproc N]", "cmd_train.cpp",
       {"threads", "set"}},
      {"eval", bmos::cmd_eval,
       "eval JOB.yaml | eval --model PATH [--tokenizer PATH] [--ppl NAME=FILE,...] [--tasks all --tasks_dir DIR] "
       "[--json FILE] [--prefill_tables fp32|int8] [--nommap]",
       "cmd_eval.cpp", {"model", "tokenizer", "threads", "device", "prefill_tables", "mmap"}},
      {"export", bmos::cmd_export, "export --checkpoint DIR --out DIR | export --size_report llama2-7b,...",
       "cmd_export.cpp", {"tokenizer", "threads", "seed", "out"}},
      {"plan", bmos::cmd_plan,
       "plan JOB.yaml [--world N] [--device_memory GB] [--teacher_config CONFIG.json] [--set 'k.p=v; ...']",
       "cmd_plan.cpp", {"set"}},
      {"init-model", bmos::cmd_init_model, "init-model --like CONFIG.json --out DIR [--seed S] [--shard_gb G]",
       "cmd_init_model.cpp", {"seed", "out"}},
      {"serve", bmos::cmd_serve,
       "serve --model PATH [--tokenizer PATH] [--host 127.0.0.1] [--port N] [--threads N] [--max_queue N] "
       "[--device cpu|cuda|cuda:N] [--prefill_tables fp32|int8] [--nommap] [--kv_cache model|fp16]",
       "cmd_serve.cpp", {"model", "tokenizer", "threads", "device", "prefill_tables", "mmap", "kv_cache"}},
  };
  return all;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_cli_flag(const gflags::CommandLineFlagInfo& f) { return f.filename.find("trainer/cli/") != std::string::npos; }

bool belongs_to(const gflags::CommandLineFlagInfo& f, const Subcommand& s) {
  return ends_with(f.filename, std::string("/") + s.file) ||
         std::find(s.shared.begin(), s.shared.end(), f.name) != s.shared.end();
}

std::string usage_text() {
  std::string u = "binarymos: 1-bit LLMs with BinaryMoS.\nusage:\n";
  for (const auto& s : subcommands()) u += std::string("  bmos ") + s.usage + "\n";
  u += "the flags of one subcommand: bmos SUBCOMMAND --help";
  return u;
}

void print_help(const Subcommand& s) {
  std::printf("usage: bmos %s\n\nflags:\n", s.usage);
  std::vector<gflags::CommandLineFlagInfo> flags;
  gflags::GetAllFlags(&flags);
  for (const auto& f : flags)
    if (is_cli_flag(f) && belongs_to(f, s)) std::printf("%s", gflags::DescribeOneFlag(f).c_str());
}

// A flag set on the command line that the subcommand does not read is an error, never silently ignored.
bool check_flags(const Subcommand& s) {
  std::vector<gflags::CommandLineFlagInfo> flags;
  gflags::GetAllFlags(&flags);
  bool ok = true;
  for (const auto& f : flags) {
    if (f.is_default || !is_cli_flag(f) || belongs_to(f, s)) continue;
    std::fprintf(stderr, "bmos %s: --%s is not a flag of '%s' (bmos %s --help lists its flags)\n", s.name,
                 f.name.c_str(), s.name, s.name);
    ok = false;
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  bmos::restart_with_blas_fix(argv);  // first: OpenBLAS reads OPENBLAS_CORETYPE only when it loads
  // Flags may be spelled with dashes (--from-teacher): gflags knows them with underscores (--from_teacher).
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--", 2) != 0) continue;
    for (char* c = argv[i] + 2; *c != '\0' && *c != '='; ++c)
      if (*c == '-') *c = '_';
  }
  gflags::SetUsageMessage(usage_text());
  gflags::ParseCommandLineNonHelpFlags(&argc, &argv, /*remove_flags=*/true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  const Subcommand* sub = nullptr;
  if (argc >= 2)
    for (const auto& s : subcommands())
      if (argv[1] == std::string(s.name)) sub = &s;
  if (FLAGS_help || FLAGS_helpshort) {
    if (sub) print_help(*sub);
    else std::printf("%s\n", usage_text().c_str());
    return 0;
  }
  gflags::HandleCommandLineHelpFlags();  // --helpfull, --version, ...
  if (argc < 2) {
    std::fprintf(stderr, "%s\n", usage_text().c_str());
    return 2;
  }
  if (!sub) {
    std::fprintf(stderr, "bmos: unknown subcommand '%s'\n%s\n", argv[1], usage_text().c_str());
    return 2;
  }
  if (!check_flags(*sub)) return 2;
  try {
    return sub->run(std::vector<std::string>(argv + 2, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bmos %s: error: %s\n", sub->name, e.what());
    return 1;
  }
}
