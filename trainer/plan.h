// `bmos plan JOB`: the memory a job needs per rank, from the teacher's config alone (no weights), before it runs:
// teacher, latent weights, scales and router, gradients, optimiser state, activations at the job's micro-batch and
// sequence length (with and without activation checkpointing), the KD logits and the largest transient; whether it
// fits the device, which switch would make it fit, and what one checkpoint costs on disk.
//
// The activation model counts the tensors autograd keeps per token and layer for our BinaryMoS block (see plan.cpp);
// tests/test_plan.cpp holds it to measured peak RSS on small models.
#pragma once

#include <string>
#include <vector>

#include "modules/llama_config.h"
#include "trainer/job/job_config.h"

namespace bmos {

struct PlanOptions {
  int world = 1;                // data-parallel ranks: each takes batch_size / world sequences of every batch
  double device_memory_gb = 0;  // GiB per rank; 0 = this machine's RAM on cpu, 80 on cuda
};

struct PlanRow {
  std::string what;
  double bytes = 0;
  std::string note;
};

struct MemoryPlan {
  LlamaConfig teacher;
  int64_t teacher_params = 0, student_params = 0, trainable_params = 0, micro_batch = 0;
  std::vector<PlanRow> rows;          // what is resident at the step's peak, summed in `total`
  double total = 0;                   // bytes per rank
  double activations_checkpointed = 0, activations_full = 0;  // both, whichever the job uses
  double capacity = 0;                // bytes per rank available
  bool fits = false;
  std::vector<std::string> advice;    // switches that would make it fit (or save most), in order
  double checkpoint_bytes = 0;        // one checkpoint on disk
  int keep = 0;
};

// The teacher's shape from a model path (an HF folder, a llama2.c file, our checkpoint or run folder) or from a
// Hugging Face config .json file alone.
LlamaConfig read_model_config(const std::string& path);

MemoryPlan plan_memory(const JobConfig& job, const LlamaConfig& teacher, const PlanOptions& options);
std::string format_plan(const MemoryPlan& plan, const JobConfig& job, const PlanOptions& options);

}  // namespace bmos
