#!/usr/bin/env bash
# Configures and builds binarymos (Release) into build/ (or $BUILD_DIR). Extra args go to cmake configure.
# TARGETS="bmos" builds only those targets (the quickstart needs only the bmos binary, not the test suite).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# shellcheck disable=SC2086  # TARGETS is a space-separated list
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" ${TARGETS:+--target $TARGETS}
