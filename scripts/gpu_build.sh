#!/usr/bin/env bash
# On a GPU machine (needs only the CUDA toolkit, CMake and a C++ compiler): builds kernels/ alone
# (-DBMOS_KERNELS_ONLY=ON: no torch, no GoogleTest) into build-gpu/, runs the CUDA tests, then the CUDA benchmark.
#   scripts/gpu_build.sh            everything (benchmark: all shapes, batch 1..256)
#   scripts/gpu_build.sh --quick    benchmark at batch 1 and 16 only
# Env: BUILD_DIR (default build-gpu), CUDA_ARCHS (default: the top-level CMakeLists' "80;90a"), JOBS (default nproc).
# The benchmark table is also written to $BUILD_DIR/bench_binarymos_cuda.txt (and copied to $OUT when that is set).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}

if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
command -v nvcc >/dev/null 2>&1 || { echo "gpu_build: nvcc not found (install the CUDA toolkit or put it on PATH)"; exit 1; }
command -v cmake >/dev/null 2>&1 || { echo "gpu_build: cmake not found"; exit 1; }
nvcc --version | tail -n 2
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv; fi

GENERATOR=()
if command -v ninja >/dev/null 2>&1; then GENERATOR=(-G Ninja); else echo "gpu_build: ninja not found, using make"; fi
ARCH_ARGS=()
if [ -n "${CUDA_ARCHS:-}" ]; then ARCH_ARGS=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS"); fi

start=$(date +%s)
cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DBMOS_KERNELS_ONLY=ON "${ARCH_ARGS[@]}"
cmake --build "$BUILD_DIR" -j "$JOBS" --target test_cuda_tile_layout test_binarymos_cuda bench_binarymos_cuda
echo "gpu_build: built in $(( $(date +%s) - start )) s"

export OMP_WAIT_POLICY=PASSIVE
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -R '^cuda_' -LE benchmark) || status=1
"$BUILD_DIR/kernels/cuda/bench_binarymos_cuda" "$@" | tee "$BUILD_DIR/bench_binarymos_cuda.txt" || status=1
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then cp "$BUILD_DIR/bench_binarymos_cuda.txt" "$OUT/"; fi
exit $status
