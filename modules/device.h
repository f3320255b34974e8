// The devices a job (run.device) or a command (--device) may name, and whether this process can use one. One rule for
// both, so a name the CLI accepts is one a job accepts and their errors say the same thing.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace bmos {

// "cpu", "cuda" or "cuda:N" (N decimal digits).
bool is_device_name(const std::string& name);

// Why this process cannot use `device`, "" when it can: a libtorch without CUDA or no visible GPU, or an index past
// the visible devices.
std::string device_unavailable(const c10::Device& device);

}  // namespace bmos
