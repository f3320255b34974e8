#include "modules/device.h"

#include <torch/cuda.h>
#include <torch/version.h>

namespace bmos {

bool is_device_name(const std::string& name) {
  const bool cuda_n = name.rfind("cuda:", 0) == 0 && name.size() > 5 &&
                      name.find_first_not_of("0123456789", 5) == std::string::npos;
  return name == "cpu" || name == "cuda" || cuda_n;
}

std::string device_unavailable(const c10::Device& device) {
  if (!device.is_cuda()) return "";
  if (!torch::cuda::is_available())
    return std::string("this build's libtorch (") + TORCH_VERSION + ") has no CUDA, or no CUDA device is visible";
  if (device.has_index() && device.index() >= static_cast<int64_t>(torch::cuda::device_count()))
    return "only " + std::to_string(torch::cuda::device_count()) + " CUDA device(s) are visible";
  return "";
}

}  // namespace bmos
