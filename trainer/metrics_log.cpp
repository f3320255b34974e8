#include "trainer/metrics_log.h"

#include <filesystem>
#include <stdexcept>
#include <vector>

namespace bmos {

namespace fs = std::filesystem;
using nlohmann::json;

MetricsLog::MetricsLog(const std::string& dir, int64_t step, bool tensorboard)
    : path_((fs::path(dir) / "metrics.jsonl").string()) {
  std::vector<std::string> keep;
  {
    std::ifstream in(path_);
    for (std::string line; std::getline(in, line);) {
      try {
        if (json::parse(line).value("step", int64_t{0}) <= step) keep.push_back(line);
      } catch (const json::exception&) {  // a line cut short by a kill: dropped
      }
    }
  }
  {
    std::ofstream out(path_ + ".tmp", std::ios::trunc);
    for (const auto& l : keep) out << l << "\n";
    if (!out) throw std::runtime_error(path_ + ".tmp: cannot write (is " + dir + " writable?)");
  }
  fs::rename(path_ + ".tmp", path_);
  jsonl_.open(path_, std::ios::app);
  if (tensorboard) tensorboard_ = std::make_unique<TensorBoardWriter>(dir, step + 1);
}

void MetricsLog::write(const json& line) {
  jsonl_ << line.dump() << "\n";
  jsonl_.flush();
  if (!jsonl_) throw std::runtime_error(path_ + ": writing the metrics failed (disk full?)");
  if (!tensorboard_) return;
  Scalars scalars;
  for (const auto& [key, value] : line.items())
    if (key != "step" && value.is_number()) scalars.emplace_back(key, value.get<float>());
  tensorboard_->add_scalars(line.at("step").get<int64_t>(), scalars);
}

}  // namespace bmos
