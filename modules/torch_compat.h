// The few LibTorch APIs that differ between the generations we build against: Debian 12's libtorch 1.13 (CI) and
// libtorch 2.x (Debian trixie's 2.6, the CUDA builds of pip's torch; scripts/check_torch2.sh builds against 2.6).
// Everything version-dependent goes here, behind one name, so the rest of the code has no version #ifs.
#pragma once

#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include <ATen/autocast_mode.h>
#include <torch/optim/optimizer.h>
#include <torch/version.h>

#define BMOS_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace bmos::compat {

template <typename T, typename = void>
struct detail_has_use_libuv : std::false_type {};
template <typename T>
struct detail_has_use_libuv<T, std::void_t<decltype(std::declval<T&>().useLibUV)>> : std::true_type {};

// CUDA autocast on (in `dtype`) or off for this thread. 2.4 replaced set_enabled / set_autocast_gpu_dtype by
// per-device-type calls (the old ones warn as deprecated).
inline void set_cuda_autocast(bool on, at::ScalarType dtype) {
#if BMOS_TORCH_AT_LEAST(2, 4)
  if (on) at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, on);
#else
  if (on) at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(on);
#endif
  if (!on) at::autocast::clear_cache();
}

// The key of a parameter in torch::optim::Optimizer::state(): its TensorImpl's address, printed into a std::string up
// to 1.13, the void* itself in 2.x.
using OptimizerStateKey =
    typename std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

template <typename Key = OptimizerStateKey>
Key optimizer_state_key(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;  // what 1.13's c10::guts::to_string(p.unsafeGetTensorImpl()) writes
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

// c10d's TCPStore: 2.4 made the libuv server the default (the useLibUV option, absent before 2.3), but libtorch may be
// built without libuv (Debian trixie's is: "use_libuv was requested but PyTorch was build without libuv support"), so
// we ask for the classic server, which every build has; it serves the rendezvous of thousands of ranks.
template <typename StoreOptions>
void use_classic_tcpstore(StoreOptions& options) {
  if constexpr (detail_has_use_libuv<StoreOptions>::value) options.useLibUV = false;
}

inline bool cuda_autocast_enabled() {
#if BMOS_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

}  // namespace bmos::compat
