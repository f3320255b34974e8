// What the CUDA test and benchmark programs share: error checks, a scoped device buffer, and the no-GPU exit.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace bmos::cuda_test {

// ctest's SKIP_RETURN_CODE for these programs (kernels/cuda/CMakeLists.txt): a run without a GPU shows as skipped.
constexpr int kSkipExitCode = 77;

inline void cuda_ok(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Device buffer freed on scope exit.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(std::size_t bytes) {
    if (bytes) cuda_ok(cudaMalloc(&ptr, bytes), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// "" when a CUDA device is there, else why not (for the SKIPPED line).
inline std::string no_device_reason() {
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  return devices == 0 ? "0 devices" : "";
}

}  // namespace bmos::cuda_test
