#!/usr/bin/env bash
# Fuzzes every parser of outside input (tests/fuzz/README.md): builds the gcc core (build/) and the clang libFuzzer
# harnesses (build-fuzz/), runs each harness for SECONDS (default 600) or RUNS executions (default 1,000,000),
# whichever ends first, under ASan+UBSan, and prints a table. New crash
# inputs land in tests/fuzz/crashes/<harness>/ (commit them with the fix: ctest's test_fuzz_replay replays them); the
# corpus each run grows stays in build-fuzz/corpus/<harness>/ (the committed seeds are tests/fuzz/corpus/<harness>/).
#   scripts/fuzz.sh [SECONDS] [HARNESS...]        e.g. scripts/fuzz.sh 60 safetensors torch_bin
# Environment: KEEP_GOING=1 (libFuzzer's fork mode: go on after a crash, for a harness whose library crashes on
# malformed input, e.g. libhdf5 under token_shard; every crash input is still saved and counted), RUNS (0 = no cap), JOBS (build), RSS_MB (default 2048), TIMEOUT_S (one input, default 20), NO_BUILD=1 (use what is built).
# Needs clang and libFuzzer (Debian's clang-14 ships it: scripts/setup.sh --fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
RSS_MB=${RSS_MB:-2048}
RUNS=${RUNS:-1000000}
TIMEOUT_S=${TIMEOUT_S:-20}

if [ "${NO_BUILD:-0}" != 1 ]; then
  # The harnesses link the gcc build's libbmos_core.a for everything but the parsers (CMakeLists.txt, fuzzing).
  TARGETS="bmos_core bmos_sentencepiece" scripts/build.sh
  harness_targets=$(for f in tests/fuzz/fuzz_*.cpp; do n=$(basename "$f" .cpp); [ "$n" = fuzz_main ] || echo "$n"; done)
  BUILD_DIR=build-fuzz TARGETS="$(echo $harness_targets)" scripts/build.sh -DCMAKE_C_COMPILER=clang \
    -DCMAKE_CXX_COMPILER=clang++ -DBMOS_FUZZ=ON -DBMOS_CUDA=OFF -DBMOS_FUZZ_CORE_DIR="$PWD/build"
fi

if [ $# -gt 0 ]; then harnesses=("$@"); else
  harnesses=(); for b in build-fuzz/fuzz/fuzz_*; do harnesses+=("$(basename "$b" | sed 's/^fuzz_//')"); done
fi
# allocator_may_return_null: a huge request returns NULL as it does outside ASan (libhdf5 asks for 400 GB on a crafted
# shard header and handles the failure); our own code then dereferencing NULL is still caught.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1:allocator_may_return_null=1}
# libtorch's zip reader (PyTorchStreamReader) leaks ~0.5 kB when it refuses a malformed archive: not ours to fix, and
# not instrumented; every other leak still stops the run.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
mkdir -p build-fuzz/logs
rows=()
for h in "${harnesses[@]}"; do
  bin=build-fuzz/fuzz/fuzz_$h
  [ -x "$bin" ] || { echo "fuzz.sh: no $bin (unknown harness or not built)" >&2; exit 1; }
  crashes=tests/fuzz/crashes/$h; work=build-fuzz/corpus/$h
  mkdir -p "$crashes" "$work"
  # Findings only: libFuzzer also drops slow-unit-* files (an input over 10 s, e.g. while the machine was busy or the
  # process stopped), which are moved to build-fuzz/slow/<harness>/ and reported, not counted as crashes.
  findings() { find "$crashes" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l; }
  before=$(findings)
  dict=(); [ -f "tests/fuzz/dict/$h.dict" ] && dict=(-dict="tests/fuzz/dict/$h.dict")
  echo "fuzz.sh: $h for ${SECONDS_EACH}s (log build-fuzz/logs/$h.log)"
  rc=0
  t0=$(date +%s)
  runs=(); [ "$RUNS" != 0 ] && runs=(-runs="$RUNS")
  [ "${KEEP_GOING:-0}" = 1 ] && runs+=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  "$bin" -max_total_time="$SECONDS_EACH" "${runs[@]}" -rss_limit_mb="$RSS_MB" -timeout="$TIMEOUT_S" -print_final_stats=1 \
    -artifact_prefix="$crashes/" "${dict[@]}" "$work" "tests/fuzz/corpus/$h" >"build-fuzz/logs/$h.log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "build-fuzz/logs/$h.log" | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "build-fuzz/logs/$h.log" | grep -o '[0-9]*$' || true)
  if [ -z "$execs" ]; then  # a crash ends libFuzzer before its final stats: the last status line has the count
    execs=$(grep -o '^#[0-9]*' "build-fuzz/logs/$h.log" | tail -1 | tr -d '#' || true)
  fi
  after=$(findings)
  status=ok; [ "$rc" -ne 0 ] && status="exit $rc: see build-fuzz/logs/$h.log"
  slow=$(find "$crashes" -type f -name 'slow-unit-*' | wc -l)
  if [ "$slow" -gt 0 ]; then
    mkdir -p "build-fuzz/slow/$h" && mv "$crashes"/slow-unit-* "build-fuzz/slow/$h/"
    status="$status ($slow slow units in build-fuzz/slow/$h/)"
  fi
  rows+=("$(printf '%-22s %12s %9s %7s %12s  %s' "$h" "${execs:-?}" "${rate:-?}" "$(($(date +%s) - t0))" \
    "$((after - before))" "$status")")
done
printf '\n%-22s %12s %9s %7s %12s  %s\n' harness executions exec/s seconds new_crashes status
printf '%s\n' "${rows[@]}"
