// Training checkpoints: <out_dir>/checkpoints/step_<8 digits>/ holding
//   checkpoint.json    {"format": "bmos-checkpoint", "version": 3, "step", "tokens", "job_hash", "data_cursor",
//                       "metrics": {...last step's loss terms...}}
//   model.json + model.safetensors   the student (modules/io/model_files.h)
//   optimizer.rank<r>.safetensors  AdamW state by parameter name (optimizer_state.h): one file, or with a sharded
//                      optimiser one per rank holding its shard (version 1 had optimizer.pt, still read)
//   rng.pt             torch's default CPU generator state
//   rng_cuda.pt        the CUDA generator's state of the model's device (CUDA runs only)
//   job.yaml           the job file as run (a resume compares its resolved keys with the job's: trainer/job/job_diff.h)
//   tokenizer.*        files the trainer hands in (`extra`), so the checkpoint serves on its own
//   manifest.json      {"format": "bmos-checkpoint-manifest", "files": [{"name", "bytes", "crc32"}, ...]}: every
//                      other file with its size and CRC-32 (zlib's), checked before a resume
// Versions: 1 had no manifest (resumed unverified, with a warning); 2's manifest left out checkpoint.json and the
// tokenizer; 3 lists every file and must list the model, the job, the RNG state and checkpoint.json.
//
// Writing: every file is written whole or the save fails (each write checked, each file fsynced); the folder is built
// as .tmp-step_<n> and renamed into place, then its parent fsynced, so a kill or a full disk never leaves a half
// checkpoint under a step_ name. Only after that are checkpoints beyond the newest `keep` deleted: the previous one
// stays on disk until the new one is whole. A save that fails removes its temporary folder and throws an error that
// names the file, says when the disk is full, and names the previous checkpoint, which is intact.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "modules/llama.h"
#include "trainer/checkpoint/optimizer_state.h"
#include "trainer/dist/process_group.h"

namespace bmos {

constexpr int kCheckpointVersion = 3;

struct TrainState {
  int64_t step = 0;              // optimiser steps done
  int64_t tokens = 0;            // training tokens consumed
  std::string job_hash;          // of the job text (informational: a resume compares the resolved jobs)
  nlohmann::json data_cursor;    // the training stream's position
  nlohmann::json metrics;        // last logged metrics (informational)
};

// A file copied into the checkpoint under `name` from `source` ("" = an empty file, e.g. the byte tokenizer's mark).
struct ExtraFile {
  std::string name;
  std::string source;
};

// Writes step_<step>/ under root, then deletes all but the newest `keep`. Returns the folder written. Every rank of a
// run calls it: rank 0 writes the model, job, RNG, extra files and optimiser state; with `sharded` every rank writes
// its own optimiser shard too; rank 0 writes the manifest and renames the folder into place only after all of them
// (barriers), so a checkpoint is visible whole or not at all. (Ranks on several hosts need the run folder on a shared
// filesystem.)
std::string save_checkpoint(const std::string& root, const TrainState& state, Llama& model,
                            torch::optim::AdamW& optimizer, const NamedParams& trainable, bool sharded,
                            const std::string& job_text, const std::vector<ExtraFile>& extra, int keep,
                            ProcessGroup& group);

// The newest checkpoint folder under root that has checkpoint.json (not verified), or "" when there is none.
std::string newest_checkpoint(const std::string& root);

// A checkpoint folder checked against its manifest.
struct CheckpointCheck {
  bool whole = true;     // every listed file is there with its size and CRC-32
  bool verified = true;  // false for version 1 (no manifest): taken as whole, unverified
  std::string problem;   // when not whole: the file, and what was expected and found
};
CheckpointCheck check_checkpoint(const std::string& dir);

// What a resume starts from: the newest whole checkpoint under root ("" when there is none), and every newer one that
// is damaged, each with its problem (newest first).
struct ResumePoint {
  std::string dir;
  bool verified = true;
  std::vector<std::pair<std::string, std::string>> damaged;  // (folder, problem)
};
ResumePoint newest_whole_checkpoint(const std::string& root);
// Renames a damaged checkpoint folder to damaged-step_<n> beside it (kept for a look, no longer a checkpoint);
// returns the new path.
std::string set_aside_damaged(const std::string& dir);

// manifest.json's entries; a malformed manifest is an error naming `path` and what is wrong.
struct ManifestEntry {
  std::string name;
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};
std::vector<ManifestEntry> parse_checkpoint_manifest(const std::string& text, const std::string& path);

// A model path as a user gives it -> the folder or file to load: a run folder (runs/<name>, holding checkpoints/)
// stands for its newest complete checkpoint (an error naming the folder when it has none yet); any other path is
// returned as it is.
std::string resolve_model_path(const std::string& path);
// Restores model parameters, the state of the parameters `optimizer` holds (from whichever file of the checkpoint has
// them: any world size, sharded or not) and RNG in place; returns the saved state. It does not verify the files: a
// resume picks `dir` with newest_whole_checkpoint, which does.
TrainState load_checkpoint(const std::string& dir, Llama& model, torch::optim::AdamW& optimizer,
                           const NamedParams& trainable);
// The state alone (checkpoint.json).
TrainState read_train_state(const std::string& dir);

}  // namespace bmos
