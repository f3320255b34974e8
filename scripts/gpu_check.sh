#!/usr/bin/env bash
# The one command for a lent GPU machine (issue 15): builds, checks and measures the CUDA half in one call, and writes
# everything it prints to $OUT (gpu_check.log, summary.txt, bench.txt, losses.tsv). Needs .gpu-deps/ from
# scripts/gpu_deps.sh carried beside the tree. On a machine without a GPU it runs every CPU part for real and reports
# each GPU step as SKIPPED (the rehearsal), so the lent minutes go to measuring, not to debugging this script.
#
# Steps (each PASS, FAIL or SKIPPED with its reason, in summary.txt):
#   probe      the machine: GPU, python3's torch and its CUDA, nvcc, compute-sanitizer, compilers
#   deps       .gpu-deps/debs extracted (cmake, ninja, our -dev packages); python3's torch stands in for libtorch-dev
#   kernels    kernels-only build with nvcc (else the programs prebuilt by gpu_deps.sh); host test; CUDA test with
#              every case's max error; compute-sanitizer memcheck and racecheck; the benchmark against cuBLAS fp16
#   bmos       the full bmos against python3's torch (CUDA libtorch); in a rehearsal, build/bmos
#   train      a 50-step stories260K KD job (E=4) on the CPU and on CUDA, loss curves side by side
#   serve      the student exported; bmos generate (greedy) and bmos eval (WikiText-2 perplexity) on CPU and CUDA
#
#   scripts/gpu_check.sh            everything (about 8 minutes on an H200 with 16 cores)
# Env: OUT (default /tmp/gpu_check), TIME_BUDGET_S (default 540: later steps are SKIPPED when too little is left),
#      JOBS (default nproc), CUDA_ARCHS (default 90a on Hopper, 80 otherwise).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
START=$(date +%s)
BUDGET=${TIME_BUDGET_S:-540}
JOBS=${JOBS:-$(nproc)}
DEPS=$ROOT/.gpu-deps
WORK=${WORK:-/tmp/gpu_check_work}
rm -rf "$WORK" && mkdir -p "$WORK"
export OMP_WAIT_POLICY=PASSIVE
SUMMARY=()

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) )); }
record() {  # record STEP RESULT DETAIL
  SUMMARY+=("$(printf '%-26s %-8s %s' "$1" "$2" "$3")")
  echo "[gpu_check] $1: $2 $3 (t=$(elapsed) s)"
}
section() { echo; echo "=============== $1 (t=$(elapsed) s, $(left) s left)"; }
# run_for SECONDS CMD...: the command under a time limit that also respects the whole budget.
run_for() {
  local limit=$1; shift
  local cap; cap=$(left); [ "$cap" -lt "$limit" ] && limit=$cap
  [ "$limit" -le 5 ] && { echo "(no time left for: $*)"; return 124; }
  timeout --kill-after=5 "$limit" "$@"
}

# ------------------------------------------------------------------------------------------------------------ probe
section "probe"
HAVE_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,driver_version --format=csv
  HAVE_GPU=1
fi
PY_TORCH=$(python3 -c 'import torch, os; print(torch.__version__, torch.version.cuda or "none", torch.cuda.is_available(), os.path.dirname(torch.__file__))' 2>/dev/null || echo "none")
echo "python3 torch (version, cuda, available, dir): $PY_TORCH"
read -r TORCH_VER TORCH_CUDA TORCH_AVAIL TORCH_PKG <<<"$PY_TORCH"
[ "${TORCH_AVAIL:-False}" = True ] || HAVE_GPU=0
NVCC=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -n 1 || true)
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1 || true)
echo "nvcc: ${NVCC:-none}  compute-sanitizer: ${SANITIZER:-none}  g++: $(g++ -dumpversion 2>/dev/null || echo none)" \
     " cmake: $(command -v cmake || echo none)  cores: $(nproc)  memory: $(free -g 2>/dev/null | awk '/Mem:/{print $2}') GiB"
[ -n "$NVCC" ] && "$NVCC" --version | tail -n 1
# pip's CUDA libraries (cudart, cuBLAS, NCCL) for our programs and for the build.
NV_LIBS=""
if [ "$TORCH_PKG" != "" ] && [ -d "$TORCH_PKG/../nvidia" ]; then
  NV_LIBS=$(find "$TORCH_PKG/../nvidia" -maxdepth 3 -type d -name lib | tr '\n' ':')
fi
if [ "$HAVE_GPU" -eq 1 ]; then record probe PASS "GPU and python3 torch $TORCH_VER (CUDA $TORCH_CUDA)";
else record probe PASS "no usable GPU: a rehearsal (GPU steps are SKIPPED)"; fi

# ------------------------------------------------------------------------------------------------------------- deps
section "deps"
PREFIX=$WORK/root
if [ -d "$DEPS/debs" ]; then
  mkdir -p "$PREFIX"
  for deb in "$DEPS"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null 2>&1; then dpkg-deb -x "$deb" "$PREFIX"
    else (cd "$WORK" && ar x "$deb" data.tar.xz && tar -xJf data.tar.xz -C "$PREFIX" && rm -f data.tar.xz); fi
  done
  # pkg-config files and CMake's own data name /usr: point them at the extracted tree.
  find "$PREFIX/usr" -name '*.pc' -exec sed -i "s|^prefix=/usr|prefix=$PREFIX/usr|" {} +
  export PATH="$PATH:$PREFIX/usr/bin"  # after the machine's own cmake/ninja, if it has them
  export PKG_CONFIG_PATH="$PREFIX/usr/lib/x86_64-linux-gnu/pkgconfig:$PREFIX/usr/share/pkgconfig"
  export LD_LIBRARY_PATH="${NV_LIBS}$PREFIX/usr/lib/x86_64-linux-gnu:${TORCH_PKG:+$TORCH_PKG/lib:}${LD_LIBRARY_PATH:-}"
  record deps PASS "$(ls "$DEPS"/debs/*.deb | wc -l) packages extracted"
else
  record deps SKIPPED "no .gpu-deps/debs (run scripts/gpu_deps.sh and carry .gpu-deps): using the system's packages"
fi
cmake --version >/dev/null 2>&1 || echo "cmake does not run here"

# ---------------------------------------------------------------------------------------------------------- kernels
section "kernels"
KBIN=""
if [ -n "$NVCC" ]; then
  ARCHS=${CUDA_ARCHS:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | grep -q '^9' && echo 90a || echo 80)}
  if run_for 240 cmake -S . -B "$WORK/build-kernels" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBMOS_KERNELS_ONLY=ON \
       -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" >"$WORK/kernels-cmake.log" 2>&1 &&
     run_for 240 cmake --build "$WORK/build-kernels" -j "$JOBS" --target test_binarymos_cuda bench_binarymos_cuda \
       test_cuda_tile_layout >"$WORK/kernels-build.log" 2>&1; then
    KBIN=$WORK/build-kernels/kernels/cuda
    record kernels-build PASS "nvcc, sm_$ARCHS"
  else
    tail -n 30 "$WORK"/kernels-*.log
    record kernels-build FAIL "nvcc build failed (log above); trying the prebuilt programs"
  fi
fi
if [ -z "$KBIN" ] && [ -x "$DEPS/kernels/test_binarymos_cuda" ]; then
  KBIN=$DEPS/kernels
  [ -z "$NVCC" ] && record kernels-build SKIPPED "no nvcc here: the programs gpu_deps.sh built (sm_80, sm_90a)"
fi
if [ -z "$KBIN" ]; then
  record kernels FAIL "no kernel programs: neither nvcc nor .gpu-deps/kernels"
else
  if run_for 60 "$KBIN/test_cuda_tile_layout" >"$WORK/tile.log" 2>&1; then record kernels-host-test PASS "$(tail -n 1 "$WORK/tile.log")"
  else tail -n 20 "$WORK/tile.log"; record kernels-host-test FAIL "$(tail -n 1 "$WORK/tile.log")"; fi
  for pdl in 1 0; do
    name=kernels-cuda-test; [ $pdl -eq 0 ] && name=kernels-cuda-test-nopdl
    BMOS_CUDA_PDL=$pdl run_for 120 "$KBIN/test_binarymos_cuda" >"$WORK/cuda-test-$pdl.log" 2>&1
    rc=$?
    cat "$WORK/cuda-test-$pdl.log"
    case $rc in 0) record $name PASS "$(tail -n 1 "$WORK/cuda-test-$pdl.log")";;
                77) record $name SKIPPED "no GPU";;
                *) record $name FAIL "exit $rc: $(tail -n 1 "$WORK/cuda-test-$pdl.log")";; esac
  done
  if [ "$HAVE_GPU" -eq 1 ] && [ -n "$SANITIZER" ]; then
    for tool in memcheck racecheck; do
      if run_for 150 "$SANITIZER" --tool $tool --error-exitcode 9 "$KBIN/test_binarymos_cuda" --quick \
           >"$WORK/sanitizer-$tool.log" 2>&1; then record "sanitizer-$tool" PASS "$(grep -m1 'ERROR SUMMARY' "$WORK/sanitizer-$tool.log")"
      else tail -n 30 "$WORK/sanitizer-$tool.log"; record "sanitizer-$tool" FAIL "$(grep -m1 'ERROR SUMMARY' "$WORK/sanitizer-$tool.log")"; fi
    done
  else
    record sanitizer SKIPPED "$([ "$HAVE_GPU" -eq 1 ] && echo 'no compute-sanitizer here' || echo 'no GPU')"
  fi
  run_for 150 "$KBIN/bench_binarymos_cuda" >"$OUT/bench.txt" 2>&1
  rc=$?
  cat "$OUT/bench.txt"
  case $rc in 0) record kernels-bench PASS "table in bench.txt";;
              77) record kernels-bench SKIPPED "no GPU";;
              *) record kernels-bench FAIL "exit $rc";; esac
fi

# ------------------------------------------------------------------------------------------------------------- bmos
section "bmos"
BMOS=""
if [ "$HAVE_GPU" -eq 1 ] && [ -n "$NVCC" ]; then
  TORCH_DIR=$(python3 -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')
  NCCL_DIR=$(python3 -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
  if run_for 300 cmake -S . -B "$WORK/build-cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" \
       -DCMAKE_PREFIX_PATH="$PREFIX/usr" -DHDF5_ROOT="$PREFIX/usr" -DCMAKE_CUDA_COMPILER="$NVCC" \
       -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" ${NCCL_DIR:+-DNCCL_INCLUDE_DIR=$NCCL_DIR/include -DNCCL_LIBRARY_DIR=$NCCL_DIR/lib} \
       >"$WORK/bmos-cmake.log" 2>&1 &&
     run_for 300 cmake --build "$WORK/build-cuda" -j "$JOBS" --target bmos test_export >"$WORK/bmos-build.log" 2>&1; then
    grep "binarymos:" "$WORK/bmos-cmake.log"
    BMOS=$WORK/build-cuda/bmos
    record bmos-build PASS "against torch $TORCH_VER (CUDA $TORCH_CUDA)"
    # The packed layer's CUDA path against its CPU kernels (fp32/fp16/bf16 inputs, decode and prefill shapes).
    if run_for 90 "$WORK/build-cuda/test_export" --gtest_filter='PackedLinear.*' >"$WORK/packed-cuda.log" 2>&1; then
      grep "^cuda " "$WORK/packed-cuda.log" | sort -t= -k5 -g | tail -n 3
      record packed-layer-cuda PASS "$(grep -c '^cuda ' "$WORK/packed-cuda.log") cases vs the CPU kernels"
    else
      tail -n 30 "$WORK/packed-cuda.log"; record packed-layer-cuda FAIL "test_export PackedLinear.*"
    fi
  else
    tail -n 40 "$WORK/bmos-cmake.log" "$WORK/bmos-build.log" 2>/dev/null
    record bmos-build FAIL "see the log"
  fi
elif [ -x build/bmos ]; then
  BMOS=$ROOT/build/bmos
  record bmos-build SKIPPED "$([ "$HAVE_GPU" -eq 1 ] && echo 'no nvcc here' || echo 'no GPU'): the CPU parts use build/bmos"
else
  record bmos-build SKIPPED "no GPU/nvcc and no build/bmos: the train and serve steps cannot run"
fi

# ---------------------------------------------------------------------------------------------------- train + serve
DATA=$DEPS/data
[ -f "$DATA/stories260K.bin" ] || DATA=$ROOT/../shared/data/models/stories260K
WIKI=$DEPS/data/wiki.test.raw
[ -f "$WIKI" ] || WIKI=$ROOT/../shared/data/text/wikitext-2-raw/wiki.test.raw
if [ -n "$BMOS" ] && [ -f "$DATA/stories260K.bin" ]; then
  section "train"
  JOB=$WORK/job.yaml
  sed -e "s|../shared/data/models/stories260K|$DATA|g" -e "s|runs/corpora/|$WORK/corpora/|g" \
      configs/stories260k_e4.yaml >"$JOB"
  common="train.tokens=204800; train.log_every=5; checkpoint.every=50; eval.ppl=[]; run.threads=$JOBS"
  if run_for 120 "$BMOS" data generate "$JOB" --gen_count 400 >"$WORK/gen.log" 2>&1; then
    run_for 150 "$BMOS" train "$JOB" --set "$common; run.device=cpu; run.out_dir=$WORK/run-cpu" >"$WORK/train-cpu.log" 2>&1
    rc_cpu=$?
    rc_gpu=skip
    if [ "$BMOS" != "$ROOT/build/bmos" ]; then
      run_for 150 "$BMOS" train "$JOB" --set "$common; run.device=cuda; run.out_dir=$WORK/run-cuda" >"$WORK/train-cuda.log" 2>&1
      rc_gpu=$?
    fi
    tail -n 3 "$WORK/train-cpu.log"; [ "$rc_gpu" != skip ] && tail -n 3 "$WORK/train-cuda.log"
    python3 - "$WORK/run-cpu/metrics.jsonl" "$WORK/run-cuda/metrics.jsonl" >"$OUT/losses.tsv" <<'PY'
import json, sys
def curve(path):
    try:
        return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if "loss" in r}
    except OSError:
        return {}
cpu, gpu = curve(sys.argv[1]), curve(sys.argv[2])
print("step\tloss_cpu\tloss_cuda\trel_diff")
worst = 0.0
for s in sorted(cpu):
    g = gpu.get(s)
    d = abs(g - cpu[s]) / abs(cpu[s]) if g is not None else float("nan")
    worst = max(worst, d) if g is not None else worst
    print(f"{s}\t{cpu[s]:.5f}\t{'' if g is None else f'{g:.5f}'}\t{'' if g is None else f'{d:.4f}'}")
print(f"# {len(cpu)} cpu points, {len(gpu)} cuda points, max relative difference {worst:.4f}")
PY
    cat "$OUT/losses.tsv"
    [ $rc_cpu -eq 0 ] && record train-cpu PASS "50 steps" || record train-cpu FAIL "exit $rc_cpu (train-cpu.log)"
    if [ "$rc_gpu" = skip ]; then record train-cuda SKIPPED "no CUDA bmos"
    elif [ "$rc_gpu" -eq 0 ]; then record train-cuda PASS "$(tail -n 1 "$OUT/losses.tsv")"
    else tail -n 20 "$WORK/train-cuda.log"; record train-cuda FAIL "exit $rc_gpu"; fi
  else
    tail -n 20 "$WORK/gen.log"; record train FAIL "bmos data generate failed"
  fi

  section "serve"
  if [ -d "$WORK/run-cpu" ] && run_for 60 "$BMOS" export --checkpoint "$WORK/run-cpu" --out "$WORK/packed" \
       --tokenizer "$DATA/tok512.model" >"$WORK/export.log" 2>&1; then
    record export PASS "$WORK/packed"
    for dev in cpu cuda; do
      if [ $dev = cuda ] && [ "$BMOS" = "$ROOT/build/bmos" ]; then record "serve-$dev" SKIPPED "no CUDA bmos"; continue; fi
      run_for 60 "$BMOS" generate --model "$WORK/packed" --tokenizer "$DATA/tok512.model" --temperature 0 --steps 128 \
        --prompt "Once upon a time" --device $dev >"$WORK/gen-$dev.txt" 2>"$WORK/gen-$dev.err"
      run_for 120 "$BMOS" eval --model "$WORK/packed" --tokenizer "$DATA/tok512.model" --ppl "wikitext2=$WIKI" \
        --seq_len 256 --ppl_windows 64 --device $dev --json "$WORK/eval-$dev.json" >"$WORK/eval-$dev.log" 2>&1
      rc=$?
      if [ $rc -eq 0 ]; then
        record "serve-$dev" PASS "$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["perplexity"][0]; print("wikitext2 ppl %.4f over %d windows; " % (p["ppl"], p["windows"]))' "$WORK/eval-$dev.json")$(tail -n 1 "$WORK/gen-$dev.err")"
      else
        tail -n 20 "$WORK/eval-$dev.log" "$WORK/gen-$dev.err"; record "serve-$dev" FAIL "exit $rc"
      fi
    done
    if [ -f "$WORK/gen-cuda.txt" ] && [ -s "$WORK/gen-cuda.txt" ]; then
      cmp -s "$WORK/gen-cpu.txt" "$WORK/gen-cuda.txt" && record greedy-text PASS "CUDA text == CPU text" \
        || { diff "$WORK/gen-cpu.txt" "$WORK/gen-cuda.txt" | head -n 10; record greedy-text FAIL "texts differ"; }
      python3 - "$WORK/eval-cpu.json" "$WORK/eval-cuda.json" <<'PY' && record ppl-match PASS "within 0.1%" || record ppl-match FAIL "beyond 0.1%"
import json, sys
def ppl(p):
    return json.load(open(p))["perplexity"][0]["ppl"]
a, b = ppl(sys.argv[1]), ppl(sys.argv[2])
print(f"perplexity cpu {a:.4f} cuda {b:.4f} relative difference {abs(a - b) / a:.5f}")
sys.exit(0 if abs(a - b) / a <= 1e-3 else 1)
PY
    else
      record greedy-text SKIPPED "no CUDA run"
      record ppl-match SKIPPED "no CUDA run"
    fi
    head -c 400 "$WORK/gen-cpu.txt"; echo
  else
    tail -n 20 "$WORK/export.log" 2>/dev/null; record export FAIL "no checkpoint or export failed"
  fi
else
  record train SKIPPED "no bmos or no stories260K data"
fi

# ---------------------------------------------------------------------------------------------------------- summary
section "summary"
printf '%s\n' "${SUMMARY[@]}" | tee "$OUT/summary.txt"
echo "gpu_check: $(elapsed) s; files in $OUT"
printf '%s\n' "${SUMMARY[@]}" | grep -q ' FAIL ' && exit 1
exit 0
