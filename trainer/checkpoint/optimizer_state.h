// AdamW's state by parameter name, so a checkpoint resumes with another world size or sharding: each file holds, per
// parameter, "<name>/exp_avg" and "<name>/exp_avg_sq" (fp32, the parameter's shape) and "<name>/step" (I64, [1]).
// A data-parallel run with a sharded optimiser writes one file per rank (its shard); any run reads every file of the
// checkpoint and takes the parameters its own optimiser holds.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace bmos {

using NamedParams = std::vector<std::pair<std::string, torch::Tensor>>;

// The state of every parameter of `params` that `optimizer` holds state for.
void save_adamw_state(const std::string& path, torch::optim::AdamW& optimizer, const NamedParams& params);
// Restores the state of every parameter of `params` that `optimizer` holds from `files`; a parameter found in none of
// them is an error naming it and the files.
void load_adamw_state(const std::vector<std::string>& files, torch::optim::AdamW& optimizer, const NamedParams& params);

}  // namespace bmos
