#!/usr/bin/env bash
# Prepares what scripts/gpu_check.sh needs on a lent GPU machine (no apt, nothing reachable) in .gpu-deps/ (git-
# ignored; pass it as the device run's carry, at most 64 MiB):
#   debs/       Debian 12 .deb files of our build dependencies and of cmake/ninja/pkgconf (extracted there by
#               gpu_check.sh: python3's torch stands in for libtorch-dev)
#   kernels/    the kernels-only CUDA programs built here with nvcc (sm_80, sm_90a), for a machine without nvcc
#   data/       the stories260K teacher, its tokenizer and the WikiText-2 test text from ../shared/data (the device
#               copy of the tree has no ../shared)
# Run here (Debian 12, Debian's registry reachable); prints the size it carries.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=.gpu-deps
SHARED=${SHARED:-../shared/data}
rm -rf "$OUT_DIR" && mkdir -p "$OUT_DIR/debs" "$OUT_DIR/kernels" "$OUT_DIR/data"

# scripts/setup.sh's packages less libtorch (python3's torch on the device), plus the build tools and the libraries
# they pull that a non-Debian machine may lack.
PKGS=(cmake cmake-data libjsoncpp25 librhash0 ninja-build pkgconf pkgconf-bin libpkgconf3
      libyaml-cpp-dev libyaml-cpp0.7 libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libsz2 libaec0
      libgflags-dev libgflags2.2 libgoogle-glog-dev libgoogle-glog0v6 libunwind8 libgtest-dev libgmock-dev
      libbenchmark-dev libbenchmark1debian libsentencepiece-dev libsentencepiece0 libprotobuf-lite32
      nlohmann-json3-dev libbz2-dev zlib1g-dev libtcmalloc-minimal4 libgloo-dev)
(cd "$OUT_DIR/debs" && apt-get download "${PKGS[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
[ "$(ls "$OUT_DIR/debs" | wc -l)" -eq ${#PKGS[@]} ] || { echo "gpu_deps: expected ${#PKGS[@]} .deb files"; exit 1; }

# Kernels-only build (no torch): the CUDA test, benchmark and host test, linked against the shared cudart/cuBLAS the
# device's pip wheels provide.
BUILD=build-gpu-deps
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBMOS_KERNELS_ONLY=ON >/dev/null
cmake --build "$BUILD" -j "${JOBS:-2}" --target test_binarymos_cuda bench_binarymos_cuda test_cuda_tile_layout
cp "$BUILD"/kernels/cuda/{test_binarymos_cuda,bench_binarymos_cuda,test_cuda_tile_layout} "$OUT_DIR/kernels/"
strip "$OUT_DIR"/kernels/* 2>/dev/null || true

m=$SHARED/models/stories260K
for f in "$m/stories260K.bin" "$m/tok512.model" "$SHARED/text/wikitext-2-raw/wiki.test.raw" "$m/greedy_256steps_expected.txt"; do
  [ -f "$f" ] || { echo "gpu_deps: $f not found (set SHARED=.../shared/data)"; exit 1; }
  cp "$f" "$OUT_DIR/data/"
done
du -sh "$OUT_DIR" "$OUT_DIR"/*
bytes=$(du -sb "$OUT_DIR" | cut -f1)
[ "$bytes" -le $((64 * 1024 * 1024)) ] || { echo "gpu_deps: $bytes bytes exceed the 64 MiB a device run carries"; exit 1; }
echo "gpu_deps: ready ($bytes bytes); carry .gpu-deps with scripts/gpu_check.sh"
