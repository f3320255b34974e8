// Layer replacement as data (torchtune style): the job names decoder linears by glob pattern
// ("layers.*.attention.*", "layers.3.feed_forward.w2"); each match is rebuilt from its FP weights as a
// BinaryMoS or Sign layer. A pattern that matches nothing is an error.
#pragma once

#include <string>
#include <vector>

#include "modules/llama.h"

namespace bmos {

struct QuantSpec {
  std::string method = "binarymos";  // binarymos | sign | none
  int64_t experts = 4;
  std::vector<std::string> patterns = {"layers.*.attention.*", "layers.*.feed_forward.*"};
  std::string init = "auto";  // auto | svd | power (ScaleInit in modules/binarymos_linear.h)
};

struct ReplaceReport {
  std::vector<std::string> replaced;  // full names, in model order
  int64_t params_before = 0;          // all model parameters before
  int64_t params_after = 0;           // after (latent weights + scales + routers)
  std::string summary() const;        // a few lines for the log
};

// '*' matches one dotted component or part of it (no dots), e.g. "layers.*.attention.w?" is not supported: only '*'.
bool pattern_matches(const std::string& pattern, const std::string& name);

// All parameters of a module (latent weights, scales and routers included).
int64_t count_params(const torch::nn::Module& m);

// Rebuilds the matched FP linears of `model` in place. With `init_from_fp` false the new layers keep their default
// initialisation (used when a checkpoint will be loaded into them right after).
ReplaceReport replace_linears(Llama& model, const QuantSpec& spec, bool init_from_fp = true);

}  // namespace bmos
