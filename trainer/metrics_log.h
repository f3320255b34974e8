// The run's numbers as it trains: metrics.jsonl (one JSON object per logged step) and, unless run.tensorboard is
// false, a TensorBoard events file with the same numbers (trainer/tensorboard.h): every number of a line is a scalar
// tagged by its key, at the line's step. Only the lead rank writes.
// Each step appears once across a resume: the run starts again from its checkpoint's step, so the metrics.jsonl lines
// of later steps are dropped (they are trained again) and the events of this process go to a new file whose
// SessionLog START makes TensorBoard drop the older files' events at those steps; old event files are not rewritten.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "trainer/tensorboard.h"

namespace bmos {

class MetricsLog {
 public:
  // dir/metrics.jsonl keeps its lines of steps <= `step` (a fresh run, step 0, starts it empty); `step` is where this
  // process starts training.
  MetricsLog(const std::string& dir, int64_t step, bool tensorboard);
  // One line {"step": N, ...}, flushed to both files.
  void write(const nlohmann::json& line);
  // The events file this process writes ("" without TensorBoard).
  std::string tensorboard_path() const { return tensorboard_ ? tensorboard_->path() : std::string(); }

 private:
  std::string path_;
  std::ofstream jsonl_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

}  // namespace bmos
