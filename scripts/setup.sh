#!/usr/bin/env bash
# Installs binarymos's Debian dependencies. Idempotent: returns in about a second when all are present.
set -euo pipefail
PKGS=(cmake ninja-build g++ libtorch-dev libyaml-cpp-dev libhdf5-dev libgflags-dev libgoogle-glog-dev libgtest-dev
      libbenchmark-dev libsentencepiece-dev nlohmann-json3-dev libopenblas0-pthread libcpp-httplib-dev curl
      libbz2-dev bzip2 zlib1g-dev libtcmalloc-minimal4 libgloo-dev bible-kjv python3-torch
      python3-protobuf protobuf-compiler)  # bible-kjv: the quickstart's English text; tcmalloc:
      # see CMakeLists.txt; python3-torch: tests/reference/hf_reference.py (test_families); python3-protobuf and
      # protobuf-compiler: tests/reference/read_tfevents.py, the independent TensorBoard reader (test_tensorboard)
      # libcpp-httplib-dev: bmos serve's HTTP server; curl: the client of test_serve and experiments/serve_load.sh
# --experiments: also what experiments/ needs (jq for the run summaries, gnuplot for the plots).
[ "${1:-}" = "--experiments" ] && PKGS+=(jq gnuplot-nox)
# --fuzz: clang and libFuzzer (libclang-rt-14-dev) for scripts/fuzz.sh (tests/fuzz/README.md).
[ "${1:-}" = "--fuzz" ] && PKGS+=(clang libclang-rt-14-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
