// Training checkpoints: <out_dir>/checkpoints/step_<8 digits>/ holding
//   checkpoint.json    {"format": "bmos-checkpoint", "version": 1, "step", "tokens", "job_hash", "data_cursor",
//                       "metrics": {...last step's loss terms...}}
//   model.json + model.safetensors   the student (modules/io/model_files.h)
//   optimizer.rank<r>.safetensors  AdamW state by parameter name (optimizer_state.h): one file, or with a sharded
//                      optimiser one per rank holding its shard (version 1 had optimizer.pt, still read)
//   rng.pt             torch's default CPU generator state
//   rng_cuda.pt        the CUDA generator's state of the model's device (CUDA runs only)
//   job.yaml           the job file as run
//   manifest.json      every other file with its size and CRC-32, checked on resume
// A checkpoint is written under a temporary name and renamed, so a crash never leaves half of one behind; only
// folders that carry checkpoint.json count. The newest `keep` are kept.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "modules/llama.h"
#include "trainer/checkpoint/optimizer_state.h"
#include "trainer/dist/process_group.h"

namespace bmos {

constexpr int kCheckpointVersion = 2;

struct TrainState {
  int64_t step = 0;              // optimiser steps done
  int64_t tokens = 0;            // training tokens consumed
  std::string job_hash;          // of the job text, to refuse resuming a different job
  nlohmann::json data_cursor;    // the training stream's position
  nlohmann::json metrics;        // last logged metrics (informational)
};

// Writes step_<step>/ under root, then deletes all but the newest `keep`. Returns the folder written. Every rank of a
// run calls it: rank 0 writes the model, job, RNG and optimiser state; with `sharded` every rank writes its own
// optimiser shard too; rank 0 writes the marker and renames the folder into place only after all of them (barriers),
// so a checkpoint is visible whole or not at all. (Ranks on several hosts need the run folder on a shared filesystem.)
std::string save_checkpoint(const std::string& root, const TrainState& state, Llama& model,
                            torch::optim::AdamW& optimizer, const NamedParams& trainable, bool sharded,
                            const std::string& job_text, int keep, ProcessGroup& group);
// The newest complete checkpoint folder under root, or "" when there is none.
std::string newest_checkpoint(const std::string& root);
// A model path as a user gives it -> the folder or file to load: a run folder (runs/<name>, holding checkpoints/)
// stands for its newest complete checkpoint (an error naming the folder when it has none yet); any other path is
// returned as it is.
std::string resolve_model_path(const std::string& path);
// Restores model parameters, the state of the parameters `optimizer` holds (from whichever file of the checkpoint has
// them: any world size, sharded or not) and RNG in place; returns the saved state.
TrainState load_checkpoint(const std::string& dir, Llama& model, torch::optim::AdamW& optimizer,
                           const NamedParams& trainable);
// The state alone (checkpoint.json).
TrainState read_train_state(const std::string& dir);

}  // namespace bmos
