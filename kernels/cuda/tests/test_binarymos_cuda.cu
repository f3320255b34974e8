// GPU correctness of the CUDA BinaryMoS kernels against the scalar references (kernels/cpu/reference.h), on random
// odd shapes (padding in N and K, tokens not a multiple of 8, split-K, both GEMM tile shapes) and on the paper's layer
// shapes, in f16 and bf16; every case also runs with stale split-K counters and without programmatic dependent launch,
// which must give the same bits. Prints the largest error of every case, then "N passed, N failed". Without a GPU it
// runs only the argument checks (host logic), prints a SKIPPED line for the rest and exits 77 (ctest: skipped) unless
// a check failed (1).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/reference.h"
#include "kernels/cuda/binarymos_cuda.h"
#include "kernels/cuda/launch_plan.h"
#include "kernels/cuda/tests/cuda_test_util.cuh"

namespace {

using namespace bmos::kernels;
using bmos::cuda_test::cuda_ok;
using bmos::cuda_test::DeviceBuffer;

int g_passed = 0, g_failed = 0;

void report(bool ok, const std::string& line) {
  (ok ? g_passed : g_failed)++;
  std::printf("  %s %s\n", ok ? "ok  " : "FAIL", line.c_str());
}

// Host values rounded to the 16-bit type: the raw bits to upload and the float the reference sees.
struct Rounded {
  std::vector<std::uint16_t> bits;
  std::vector<float> values;
};

Rounded round_to(const std::vector<float>& v, CudaDType dt) {
  Rounded r;
  r.bits.resize(v.size());
  r.values.resize(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (dt == CudaDType::kF16) {
      const __half h = __float2half_rn(v[i]);
      r.bits[i] = static_cast<__half_raw>(h).x;
      r.values[i] = __half2float(h);
    } else {
      const __nv_bfloat16 h = __float2bfloat16_rn(v[i]);
      r.bits[i] = static_cast<__nv_bfloat16_raw>(h).x;
      r.values[i] = __bfloat162float(h);
    }
  }
  return r;
}

float to_float(std::uint16_t bits, CudaDType dt) {
  if (dt == CudaDType::kF16) {
    __half_raw raw;
    raw.x = bits;
    return __half2float(__half(raw));
  }
  __nv_bfloat16_raw raw;
  raw.x = bits;
  return __bfloat162float(__nv_bfloat16(raw));
}

const void* upload(DeviceBuffer& buf, const void* host, std::size_t bytes) {
  cuda_ok(cudaMemcpy(buf.ptr, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  return buf.ptr;
}

struct Shape {
  std::int64_t M, N, K, E;
  bool bias;
  const char* what;
};

const char* dtype_name(CudaDType dt) { return dt == CudaDType::kF16 ? "f16" : "bf16"; }

// One layer call against binarymos_forward_ref (or binary_matmul_ref when E == 0). Runs the call twice more, each of
// which must give the same bits: after filling the split-K counters with what an aborted call could leave there (each
// call must zero its own), and with allow_pdl = false. `integer_inputs`: x in {-1, 0, 1}, E = 0, so that the f16
// result is exact and any index error shows as a nonzero difference.
void run_case(const Shape& s, CudaDType dt, std::uint32_t seed, bool integer_inputs = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ud(0.5f, 1.5f);
  const std::int64_t M = s.M, N = s.N, K = s.K, E = s.E;

  std::vector<float> w(N * K);
  for (auto& v : w) v = nd(rng);
  std::vector<bmos::packed::Word> bits(bmos::packed::packed_words(N, K));
  bmos::packed::pack(w.data(), N, K, bits.data());

  std::vector<float> x(M * K), router(E * K), s_in(E * K), s_out(E * N), bias(s.bias ? N : 0);
  std::uniform_int_distribution<int> id(-1, 1);
  for (auto& v : x) v = integer_inputs ? static_cast<float>(id(rng)) : nd(rng);
  for (auto& v : router) v = nd(rng) * (2.0f / std::sqrt(static_cast<float>(K)));  // logits O(1): a real softmax
  for (auto& v : s_in) v = ud(rng);
  for (auto& v : s_out) v = 0.05f * ud(rng);
  for (auto& v : bias) v = 0.1f * nd(rng);
  const Rounded rx = round_to(x, dt), rr = round_to(router, dt), rsi = round_to(s_in, dt), rso = round_to(s_out, dt),
                rb = round_to(bias, dt);

  std::vector<float> want(M * N);
  if (E == 0) {
    binary_matmul_ref(bits.data(), N, K, rx.values.data(), M, want.data());
    for (std::int64_t m = 0; m < M && s.bias; ++m)
      for (std::int64_t n = 0; n < N; ++n) want[m * N + n] += rb.values[n];
  } else {
    binarymos_forward_ref(bits.data(), N, K, E, rr.values.data(), rsi.values.data(), rso.values.data(),
                          s.bias ? rb.values.data() : nullptr, rx.values.data(), M, want.data());
  }

  // Device: canonical bits repacked on the device, checked against the host repack.
  const std::int64_t tw = tiles::tiled_words(N, K);
  std::vector<std::uint32_t> tiled_host(tw);
  repack_tiles_host(bits.data(), N, K, tiled_host.data());
  DeviceBuffer d_bits(bits.size() * 4), d_tiles(tw * 4), d_x(M * K * 2), d_y(M * N * 2), d_router(E * K * 2),
      d_sin(E * K * 2), d_sout(E * N * 2), d_bias(rb.bits.size() * 2);
  upload(d_bits, bits.data(), bits.size() * 4);
  repack_tiles_cuda(static_cast<const bmos::packed::Word*>(d_bits.ptr), N, K, static_cast<std::uint32_t*>(d_tiles.ptr),
                    nullptr);
  std::vector<std::uint32_t> tiled_dev(tw);
  cuda_ok(cudaMemcpy(tiled_dev.data(), d_tiles.ptr, tw * 4, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  const bool repack_same = tiled_dev == tiled_host;

  BinaryMoSCudaArgs a;
  a.dtype = dt;
  a.M = M;
  a.N = N;
  a.K = K;
  a.E = E;
  a.tiles = static_cast<const std::uint32_t*>(d_tiles.ptr);
  a.x = upload(d_x, rx.bits.data(), M * K * 2);
  a.y = d_y.ptr;
  if (E > 1) a.router = upload(d_router, rr.bits.data(), E * K * 2);
  if (E >= 1) {
    a.s_in = upload(d_sin, rsi.bits.data(), E * K * 2);
    a.s_out = upload(d_sout, rso.bits.data(), E * N * 2);
  }
  if (s.bias) a.bias = upload(d_bias, rb.bits.data(), N * 2);
  a.workspace_bytes = binarymos_cuda_workspace_bytes(M, N, K, E);
  DeviceBuffer d_ws(a.workspace_bytes);
  a.workspace = d_ws.ptr;
  binarymos_cuda_workspace_init(a.workspace, a.workspace_bytes, nullptr);

  std::vector<std::uint16_t> y1(M * N), y2(M * N), y3(M * N);
  binarymos_forward_cuda(a);
  cuda_ok(cudaMemcpy(y1.data(), d_y.ptr, M * N * 2, cudaMemcpyDeviceToHost), "cudaMemcpy D2H (first call)");
  // The counters region starts the workspace (launch_plan.h); 0x01010101 matches no split count.
  cuda_ok(cudaMemset(a.workspace, 0x01, tiles::kMaxCounters * sizeof(std::uint32_t)), "cudaMemset counters");
  cuda_ok(cudaMemset(d_y.ptr, 0xFF, M * N * 2), "cudaMemset y");
  binarymos_forward_cuda(a);
  cuda_ok(cudaMemcpy(y2.data(), d_y.ptr, M * N * 2, cudaMemcpyDeviceToHost), "cudaMemcpy D2H (stale counters)");
  cuda_ok(cudaMemset(d_y.ptr, 0xFF, M * N * 2), "cudaMemset y");
  a.allow_pdl = false;
  binarymos_forward_cuda(a);
  cuda_ok(cudaMemcpy(y3.data(), d_y.ptr, M * N * 2, cudaMemcpyDeviceToHost), "cudaMemcpy D2H (no PDL)");
  cuda_ok(cudaDeviceSynchronize(), "kernels");

  double max_err = 0.0, sum_sq = 0.0;
  bool finite = true;
  for (std::int64_t i = 0; i < M * N; ++i) {
    const float got = to_float(y1[i], dt);
    finite = finite && std::isfinite(got);
    max_err = std::max(max_err, static_cast<double>(std::fabs(got - want[i])));
    sum_sq += static_cast<double>(want[i]) * want[i];
  }
  const double rms = std::sqrt(sum_sq / static_cast<double>(M * N));
  // Activations x * s_in and outputs are rounded to 16 bits (2^-11 f16, 2^-8 bf16 relative), so errors scale with
  // the output's magnitude; integer cases are exact in f16.
  const double tol = integer_inputs ? 0.0 : (dt == CudaDType::kF16 ? 1e-2 : 5e-2) * std::max(rms, 1e-3);
  const bool same_stale = y1 == y2, same_no_pdl = y1 == y3;
  const tiles::LaunchPlan plan = tiles::plan_launch(M, N, K, E, 1);  // kind only (splits depend on the device)
  char line[512];
  std::snprintf(line, sizeof line,
                "%-5s %-28s M=%-4lld N=%-5lld K=%-5lld E=%lld%s  %-7s max|err|=%.3g (tol %.3g, rms %.3g)%s%s%s%s",
                dtype_name(dt), s.what, static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K),
                static_cast<long long>(E), s.bias ? " bias" : "", tiles::kernel_kind_name(plan.kind), max_err, tol, rms,
                finite ? "" : " NON-FINITE", same_stale ? "" : " DIFFERS AFTER STALE COUNTERS",
                same_no_pdl ? "" : " DIFFERS WITHOUT PDL", repack_same ? "" : " DEVICE REPACK DIFFERS");
  report(finite && max_err <= tol && same_stale && same_no_pdl && repack_same, line);
}

// Argument checks run before any CUDA call, so they are tested with or without a GPU.
void test_argument_checks() {
  auto expect_throw = [](const char* what, const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      report(true, std::string("refuses ") + what + ": " + e.what());
      return;
    } catch (const std::exception& e) {
      report(false, std::string("refuses ") + what + " with the wrong exception: " + e.what());
      return;
    }
    report(false, std::string("does not refuse ") + what);
  };
  alignas(256) static unsigned char fake[4096];  // never dereferenced: the checks throw first
  auto base = [] {
    BinaryMoSCudaArgs a;
    a.M = 2;
    a.N = 16;
    a.K = 32;
    a.E = 4;
    a.tiles = reinterpret_cast<const std::uint32_t*>(fake);
    a.router = a.s_in = a.s_out = fake + 256;
    a.x = fake + 512;
    a.y = fake + 1024;
    a.workspace = fake + 2048;
    a.workspace_bytes = 2048;
    return a;
  };
  expect_throw("M = 0", [&] {
    auto a = base();
    a.M = 0;
    binarymos_forward_cuda(a);
  });
  expect_throw("E > 16", [&] {
    auto a = base();
    a.E = 17;
    binarymos_forward_cuda(a);
  });
  expect_throw("E > 1 without router", [&] {
    auto a = base();
    a.router = nullptr;
    binarymos_forward_cuda(a);
  });
  expect_throw("E >= 1 without s_out", [&] {
    auto a = base();
    a.s_out = nullptr;
    binarymos_forward_cuda(a);
  });
  expect_throw("E = 0 with scales", [&] {
    auto a = base();
    a.E = 0;
    binarymos_forward_cuda(a);
  });
  expect_throw("y overlapping x", [&] {
    auto a = base();
    a.y = fake + 520;
    binarymos_forward_cuda(a);
  });
  expect_throw("unaligned tiles", [&] {
    auto a = base();
    a.tiles = reinterpret_cast<const std::uint32_t*>(fake + 4);
    binarymos_forward_cuda(a);
  });
  expect_throw("missing workspace", [&] {
    auto a = base();
    a.workspace = nullptr;
    binarymos_forward_cuda(a);
  });
}

}  // namespace

// --quick: the odd shapes only, f16 and bf16 (every kernel, split-K and padding path, none of the large paper shapes):
// what scripts/gpu_check.sh runs under compute-sanitizer, which slows kernels by 10-100x.
int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  if (argc > 2 || (argc == 2 && !quick)) {
    std::fprintf(stderr, "usage: test_binarymos_cuda [--quick]\n");
    return 2;
  }
  std::printf("test_binarymos_cuda: CUDA BinaryMoS kernels vs kernels/cpu/reference.h%s\n",
              quick ? " (--quick: odd shapes only)" : "");
  test_argument_checks();

  const std::string no_device = bmos::cuda_test::no_device_reason();
  if (!no_device.empty()) {
    std::printf("SKIPPED: GPU correctness cases (no CUDA device: %s)\n", no_device.c_str());
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? bmos::cuda_test::kSkipExitCode : 1;  // the argument checks passed; the GPU part did not run
  }
  cudaDeviceProp prop{};
  cuda_ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("device 0: %s, sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);

  const std::vector<Shape> shapes = {
      // Random odd shapes: padding in N (not % 16) and K (not % 256), tokens not % 8.
      {1, 17, 33, 4, true, "odd, gemv"},
      {3, 100, 513, 2, false, "odd, gemv"},
      {8, 64, 256, 1, true, "OneBit (E=1), gemv"},
      {13, 31, 257, 0, false, "no scales, gemv 2 tiles"},
      {24, 48, 300, 4, true, "gemv 4 token tiles (24)"},
      {32, 77, 1000, 3, false, "gemv 4 token tiles"},
      {5, 17, 4096, 4, true, "small N: gemv split-K"},
      {33, 130, 700, 4, true, "gemm64, token padding"},
      {64, 256, 1000, 2, false, "gemm64 full tile"},
      {100, 130, 2000, 4, true, "gemm128 split-K"},
      {257, 129, 520, 4, false, "gemm128, 3 token groups"},
      {40, 1, 64, 4, true, "N=1"},
      // The paper's layer shapes (LLaMA-7B q/k/v/o, gate/up, down; LLaMA-13B gate/up).
      {1, 4096, 4096, 4, false, "LLaMA-7B attn proj"},
      {1, 11008, 4096, 4, false, "LLaMA-7B up proj"},
      {4, 4096, 11008, 4, false, "LLaMA-7B down proj"},
      {16, 4096, 4096, 4, false, "LLaMA-7B attn proj"},
      {2, 13824, 5120, 4, false, "LLaMA-13B up proj"},
      {64, 4096, 4096, 4, false, "LLaMA-7B attn proj"},
      {128, 1024, 4096, 4, false, "prefill, narrow"},
  };
  std::uint32_t seed = 10;
  try {
    // bf16 repeats the random shapes and the smaller real ones (the scalar reference is the slow part).
    for (CudaDType dt : {CudaDType::kF16, CudaDType::kBF16})
      for (const Shape& s : shapes)
        if ((dt == CudaDType::kF16 || s.M * s.N * s.K <= 200'000'000) && (!quick || s.N * s.K < 4'000'000))
          run_case(s, dt, seed++);
    // Exact integer cases (f16): any misplaced bit or activation changes the result.
    for (const Shape& s : std::vector<Shape>{{1, 37, 999, 0, false, "exact, gemv"},
                                             {20, 50, 2000, 0, false, "exact, gemv split-K"},
                                             {70, 200, 1200, 0, false, "exact, gemm128"},
                                             {40, 16, 2000, 0, false, "exact, gemm64 split-K"}})
      run_case(s, CudaDType::kF16, seed++, true);
  } catch (const std::exception& e) {
    report(false, std::string("exception: ") + e.what());
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
