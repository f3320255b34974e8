#include "trainer/dist/process_group.h"

#include <cstdlib>
#include <stdexcept>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "modules/torch_compat.h"
#ifdef BMOS_C10D_NCCL  // CMake found a CUDA libtorch with c10d's NCCL backend and nccl.h
#ifndef USE_C10D_NCCL  // the header's own guard: some libtorch CMake configs define it, pip's does not
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace bmos {

namespace {

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi)
    throw std::invalid_argument(std::string("environment variable ") + name + "='" + v + "': expected an integer in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(x);
}

}  // namespace

DistEnv DistEnv::from_environment() {
  DistEnv e;
  e.world = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  e.rank = env_int("RANK", 0, 0, e.world - 1);
  e.local_world = env_int("LOCAL_WORLD_SIZE", e.world, 1, e.world);
  e.local_rank = env_int("LOCAL_RANK", e.rank % e.local_world, 0, e.local_world - 1);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  if (e.world > 1 && (!std::getenv("RANK") || !std::getenv("MASTER_ADDR") || !std::getenv("MASTER_PORT")))
    throw std::invalid_argument("WORLD_SIZE=" + std::to_string(e.world) +
                                " needs RANK, MASTER_ADDR and MASTER_PORT too (set by torchrun, or use bmos train --nproc N)");
  return e;
}

bool ProcessGroup::nccl_built() {
#ifdef BMOS_C10D_NCCL
  return true;
#else
  return false;
#endif
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef BMOS_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  torch::Device device = torch::kCPU;  // where the scalar collectives' tensors live

  // f(backend) with the group's one backend (both classes have the same collective methods).
  template <typename F>
  auto call(F&& f) {
#ifdef BMOS_C10D_NCCL
    if (nccl) return f(*nccl);
#endif
    return f(*gloo);
  }
};

ProcessGroup::ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout, torch::Device device)
    : env_(env) {
  if (env.world == 1) return;
  const std::string where = "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world) + " (store " +
                            env.master_addr + ":" + std::to_string(env.master_port) + ")";
  impl_ = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<std::size_t>(env.world);
    so.waitWorkers = true;
    so.timeout = timeout;
    compat::use_classic_tcpstore(so);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
#ifdef BMOS_C10D_NCCL
    if (device.is_cuda()) {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world, options);
      impl_->device = device;
      backend_ = "nccl";
      return;
    }
#endif
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // The address the other ranks reach this one at: the interface GLOO_SOCKET_IFNAME names (as in PyTorch), else
    // loopback when the whole job is on this host, else this host's name.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname)
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost")
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world, options);
    backend_ = "gloo";
  } catch (const std::exception& e) {
    throw std::runtime_error(where + ": could not join the process group within " +
                             std::to_string(timeout.count() / 1000) + " s: " + e.what());
  }
}

ProcessGroup::~ProcessGroup() = default;

namespace {
void wait(const c10::intrusive_ptr<c10d::Work>& work, const DistEnv& env, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(env.rank) + ": " + what + ": a collective failed (another rank " +
                             "died, hung or was stopped?): " + e.what());
  }
}
}  // namespace

void ProcessGroup::all_reduce_sum(std::vector<torch::Tensor>& tensors, const char* what) {
  if (!active() || tensors.empty()) return;
  wait(impl_->call([&](auto& pg) { return pg.allreduce(tensors); }), env_, what);
}

std::vector<double> ProcessGroup::all_reduce_sum(const std::vector<double>& values, const char* what) {
  if (!active() || values.empty()) return values;
  std::vector<torch::Tensor> t{torch::tensor(values, torch::kFloat64).to(impl_->device)};  // NCCL: on the GPU
  all_reduce_sum(t, what);
  const torch::Tensor sum = t[0].cpu();
  return std::vector<double>(sum.data_ptr<double>(), sum.data_ptr<double>() + sum.numel());
}

double ProcessGroup::all_reduce_sum(double value, const char* what) {
  return all_reduce_sum(std::vector<double>{value}, what)[0];
}

double ProcessGroup::all_reduce_max(double value, const char* what) {
  if (!active()) return value;
  std::vector<torch::Tensor> t{torch::tensor({value}, torch::kFloat64).to(impl_->device)};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  wait(impl_->call([&](auto& pg) { return pg.allreduce(t, o); }), env_, what);
  return t[0].item<double>();
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int root, const char* what) {
  if (!active() || tensors.empty()) return;
  c10d::BroadcastOptions o;
  o.rootRank = root;
  wait(impl_->call([&](auto& pg) { return pg.broadcast(tensors, o); }), env_, what);
}

void ProcessGroup::reduce_sum(std::vector<torch::Tensor>& tensors, int root, const char* what) {
  if (!active() || tensors.empty()) return;
  c10d::ReduceOptions o;
  o.rootRank = root;
  o.reduceOp = c10d::ReduceOp::SUM;
  wait(impl_->call([&](auto& pg) { return pg.reduce(tensors, o); }), env_, what);
}

void ProcessGroup::barrier(const char* what) {
  if (!active()) return;
  wait(impl_->call([&](auto& pg) { return pg.barrier(); }), env_, what);
}

}  // namespace bmos
