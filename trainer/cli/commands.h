// The subcommands of `bmos`. Each lives in its own trainer/cli/cmd_*.cpp and returns a process exit code.
// `args` are the positional arguments after the subcommand (gflags has already removed the flags).
#pragma once

#include <string>
#include <vector>

namespace bmos {

int cmd_generate(const std::vector<std::string>& args);  // bmos generate --model PATH --prompt TEXT ...
int cmd_data(const std::vector<std::string>& args);      // bmos data prepare JOB.yaml | bmos data generate JOB.yaml
int cmd_train(const std::vector<std::string>& args);     // bmos train JOB.yaml [--resume]
int cmd_eval(const std::vector<std::string>& args);      // bmos eval JOB.yaml | bmos eval --model PATH ...
int cmd_export(const std::vector<std::string>& args);    // bmos export --checkpoint DIR --out DIR
int cmd_plan(const std::vector<std::string>& args);      // bmos plan JOB.yaml [--world N]
int cmd_init_model(const std::vector<std::string>& args);  // bmos init-model --like CONFIG.json --out DIR
int cmd_serve(const std::vector<std::string>& args);       // bmos serve --model PATH [--port N]

}  // namespace bmos
