// bmos: the one binary. `bmos <subcommand> [args] [--flags]`.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "trainer/commands.h"

namespace {

struct Subcommand {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* usage;
};

const Subcommand kSubcommands[] = {
    {"generate", bmos::cmd_generate, "generate --model PATH [--tokenizer PATH] --prompt TEXT [--steps N] [--temperature T] [--top_p P] [--seed S]"},
    {"data", bmos::cmd_data, "data prepare JOB.yaml | data generate JOB.yaml"},
    {"train", bmos::cmd_train, "train JOB.yaml [--resume]"},
    {"eval", bmos::cmd_eval, "eval JOB.yaml | eval --model PATH [--tokenizer PATH] [--json FILE] [--limit N]"},
    {"export", bmos::cmd_export, "export --checkpoint DIR --out DIR"},
};

std::string usage_text() {
  std::string u = "binarymos: 1-bit LLMs with BinaryMoS.\nusage:\n";
  for (const auto& s : kSubcommands) u += std::string("  bmos ") + s.usage + "\n";
  u += "flags of every subcommand: bmos --helpfull";
  return u;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(usage_text());
  gflags::ParseCommandLineFlags(&argc, &argv, /*remove_flags=*/true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (argc < 2) {
    std::fprintf(stderr, "%s\n", usage_text().c_str());
    return 2;
  }
  const std::string name = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& s : kSubcommands) {
    if (name != s.name) continue;
    try {
      return s.run(args);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bmos %s: error: %s\n", s.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "bmos: unknown subcommand '%s'\n%s\n", name.c_str(), usage_text().c_str());
  return 2;
}
