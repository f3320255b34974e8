#!/usr/bin/env bash
# Crash soak: SIGKILLs a distillation run at random moments, resumes it each time with `bmos train --resume`, and checks
# that its final weights and optimiser state are bit-identical to those of the same job run once without a stop.
#
# The run checkpoints every step (`checkpoint.every: 1`, fsynced writes), so a good share of the random kills lands
# inside a checkpoint write, and every second kill is aimed at one (it waits for the save's .tmp-step_<n> folder to
# appear, then 0-4 ms more). After each kill the script records where it landed (before the first step, between
# checkpoints, or with a half-written .tmp-step_<n> folder and which files it held) and fails if a resume ever reports
# a damaged checkpoint or an error.
# Each kill comes a random time (drawn from --seed) after its start: up to the start-up time plus 1.5 / (kills left + 1)
# of the training left (timed on an uninterrupted run of the same job, and on the killed runs when they go faster), so
# the run cannot finish before the last kill and the kills spread over starting up, training steps and checkpoint writes.
#
# Usage: experiments/crash_soak.sh [--kills N (20)] [--steps S (400)] [--seed R (1)] [--work DIR] [--keep-work]
#   BMOS=path/to/bmos (default: build/bmos beside this script's repository). Exit 0 when every kill landed and the bits
#   match; the last line says so. tests/test_checkpoint_integrity.cpp runs a short version (3 kills) under ctest.
set -euo pipefail

kills=20 steps=400 seed=1 work="" keep_work=0
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --keep-work) keep_work=1; shift ;;
    *) echo "crash_soak: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
repo=$(cd "$(dirname "$0")/.." && pwd)
bmos=${BMOS:-$repo/build/bmos}
[ -x "$bmos" ] || { echo "crash_soak: no bmos binary at $bmos (build it, or set BMOS)" >&2; exit 2; }
if [ -z "$work" ]; then work=$(mktemp -d /tmp/bmos_soak.XXXXXX); else rm -rf "$work"; mkdir -p "$work"; fi
cleanup() { if [ $keep_work -eq 0 ]; then rm -rf "$work"; else echo "work folder kept: $work"; fi; }
trap cleanup EXIT
export OMP_WAIT_POLICY=PASSIVE

# A small learnable corpus (a tiny grammar, one document per line) and a tiny teacher pretrained on it.
awk 'BEGIN { srand(7); split("the cat,a dog,the old man,my sister,a bird", w, ",");
             split("saw,liked,found,chased,called", d, ","); split("the ball,a red box,the moon,her friend,a small tree", o, ",");
             for (i = 0; i < 400; ++i) { s = ""; for (j = 0; j < 3; ++j) s = s w[int(rand()*5)+1] " " d[int(rand()*5)+1] " " o[int(rand()*5)+1] ". "; print s } }' \
  > "$work/corpus.txt"
data="data: {seq_len: 32, cache_dir: $work/cache, sources: [{name: toy, format: text, files: [$work/corpus.txt]}]}"
cat > "$work/teacher.yaml" <<EOF
run: {name: teacher, out_dir: $work/teacher, seed: 3, threads: 1}
teacher: {format: random, init: {dim: 64, hidden_dim: 128, n_layers: 2, n_heads: 4, n_kv_heads: 2, max_seq_len: 32}}
tokenizer: {kind: byte}
quant: {method: none}
$data
train: {steps: 20, batch_size: 8, lr: 3.0e-3, warmup_ratio: 0.1, log_every: 5}
checkpoint: {every: 20, keep: 1}
EOF
"$bmos" train "$work/teacher.yaml" > "$work/teacher.log" 2>&1 || { cat "$work/teacher.log"; exit 1; }
student_job() {  # name -> the job file; only run.name/out_dir differ between the two runs (allowed on resume)
  cat > "$work/$1.yaml" <<EOF
# crash soak: $1
run: {name: $1, out_dir: $work/$1, seed: 3, threads: 1}
teacher: {path: $work/teacher}
tokenizer: {kind: byte}
quant: {method: binarymos, experts: 4}
$data
train: {steps: $steps, batch_size: 8, lr: 3.0e-3, warmup_ratio: 0.1, log_every: 1}
checkpoint: {every: 1, keep: 2}
EOF
  echo "$work/$1.yaml"
}
ref_job=$(student_job reference) soak_job=$(student_job soak)

t0=$(date +%s%N)
"$bmos" train "$ref_job" > "$work/reference.log" 2>&1 || { cat "$work/reference.log"; exit 1; }
ref_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# The training loop's share (metrics.jsonl's "seconds" at the last step); the rest is starting up.
train_ms=$(tail -n 1 "$work/reference/metrics.jsonl" | grep -o '"seconds":[0-9.]*' | cut -d: -f2 | awk '{ printf "%d", $1 * 1000 }')
train_ms=${train_ms:-$ref_ms}
start_ms=$(( ref_ms > train_ms ? ref_ms - train_ms : 0 ))
step_ms=$(( train_ms / steps > 0 ? train_ms / steps : 1 ))
echo "uninterrupted run: $steps steps in $ref_ms ms ($start_ms ms starting up, $step_ms ms a step with its checkpoint)"

RANDOM=$seed
ckdir=$work/soak/checkpoints
newest() { ls -d "$ckdir"/step_* 2>/dev/null | tail -n 1 | sed 's|.*/||' || true; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
landed=0 inside=0 failures=0
printf '%-5s %-7s %-8s %-15s %s\n' kill aim "after" newest "where it landed"
for k in $(seq 1 "$kills"); do
  # Up to the start-up time plus 1.5 / (kills left + 1) of the remaining training: never the whole of it.
  done_steps=$(newest | sed 's/step_0*//')
  done_steps=${done_steps:-0}
  left_ms=$(( (steps - done_steps) * step_ms ))
  window=$(( start_ms + left_ms * 3 / (2 * (kills - k + 2)) ))
  touch "$work/started"  # a .tmp folder older than this is an earlier kill's
  "$bmos" train "$soak_job" --resume > "$work/soak_$k.log" 2>&1 &
  pid=$! t_start=$(now_ms)
  if [ $((k % 2)) -eq 0 ]; then
    # Every second kill is aimed at a checkpoint write: once this process's second save has begun (its .tmp folder
    # appears; the first save may be replacing a folder the last kill left), 0-4 ms into it.
    aim=write
    target=$ckdir/$(printf '.tmp-step_%08d' $((done_steps + 2)))
    while [ ! -d "$target" ] && [ $(( $(now_ms) - t_start )) -lt "$window" ]; do sleep 0.001; done
    sleep "0.00$((RANDOM % 5))"
  else
    aim=random
    offset=$(( (RANDOM * 32768 + RANDOM) % (window + 1) ))
    sleep "$(printf '%d.%03d' $((offset / 1000)) $((offset % 1000)))"
  fi
  kill -KILL "$pid" 2>/dev/null || true
  offset=$(( $(now_ms) - t_start ))
  status=0
  { wait "$pid"; } 2>/dev/null || status=$?  # (without the shell's "Killed" notice)
  if [ $status -ne 137 ]; then
    echo "kill $k: the run was not killed (exit status $status): $(tail -n 2 "$work/soak_$k.log")"
    failures=$((failures + 1))
    break
  fi
  landed=$((landed + 1))
  now_done=$(newest | sed 's/step_0*//')
  if [ "${now_done:-0}" -gt "$done_steps" ] && [ "$offset" -gt "$start_ms" ]; then  # faster than the reference: use that
    rate=$(( (offset - start_ms) / (${now_done:-0} - done_steps) ))
    [ "$rate" -lt "$step_ms" ] && step_ms=$(( rate > 0 ? rate : 1 ))
  fi
  where="between checkpoints"
  grep -q '^step ' "$work/soak_$k.log" || where="before its first step"
  tmp=$(find "$ckdir" -maxdepth 1 -name '.tmp-step_*' -newer "$work/started" 2>/dev/null | head -n 1 || true)
  if [ -n "$tmp" ]; then
    inside=$((inside + 1))
    where="inside the write of ${tmp##*/.tmp-}: [$( (ls "$tmp" 2>/dev/null || true) | tr '\n' ' ' | sed 's/ $//')]"
  fi
  printf '%-5s %-7s %-8s %-15s %s\n' "$k" "$aim" "${offset}ms" "$(newest)" "$where"
  if grep -q 'is damaged\|error' "$work/soak_$k.log"; then
    echo "kill $k: that run reported: $(grep 'is damaged\|error' "$work/soak_$k.log" | head -n 3)"
    failures=$((failures + 1))
  fi
done
"$bmos" train "$soak_job" --resume > "$work/soak_final.log" 2>&1 || { cat "$work/soak_final.log"; exit 1; }
if grep -q 'is damaged' "$work/soak_final.log"; then grep 'is damaged' "$work/soak_final.log"; failures=$((failures + 1)); fi
last=$(printf 'step_%08d' "$steps")
same=1
for f in model.safetensors optimizer.rank0.safetensors; do
  if ! cmp -s "$work/reference/checkpoints/$last/$f" "$work/soak/checkpoints/$last/$f"; then
    echo "DIFFERENT: $last/$f of the killed-and-resumed run differs from the uninterrupted run's"
    same=0
  fi
done
# Every step's losses once, as the uninterrupted run logged them (timings aside).
strip() { sed -E 's/"(seconds|tokens_per_second|comm_seconds)":[^,}]*,?//g' "$1"; }
if strip "$work/reference/metrics.jsonl" | cmp -s - <(strip "$work/soak/metrics.jsonl"); then
  metrics="metrics.jsonl: every step once, the same losses"
else
  metrics="metrics.jsonl: differs from the uninterrupted run's (steps missing, repeated or with other losses)"
  failures=$((failures + 1))
fi
echo "$landed of $kills kills landed ($inside inside a checkpoint write); $metrics"
if [ $same -eq 1 ] && [ $failures -eq 0 ] && [ $landed -eq "$kills" ]; then
  echo "crash soak: PASS: after $kills kills the final weights and optimiser state are bit-identical to the uninterrupted run's"
else
  echo "crash soak: FAIL (bit-identical: $([ $same -eq 1 ] && echo yes || echo no), problems: $failures)"
  exit 1
fi
