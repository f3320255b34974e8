#!/usr/bin/env bash
# Load loop for `bmos serve`: single-request speed, then rounds of N concurrent completions from curl, and the latency
# percentiles (p50/p90/p99, nearest rank) of the concurrent ones as a client sees them (curl's time_total: queueing
# included, the server runs one completion at a time).
#
# Usage: experiments/serve_load.sh [--clients N (16)] [--tokens T (32)] [--rounds R (4)] [--threads K (1)]
#          [--model PATH --tokenizer PATH (stories260K)] [--url http://HOST:PORT (a running server; none is started)]
#   BMOS=path/to/bmos (default: build/bmos of this repository). Needs curl.
set -euo pipefail

clients=16 tokens=32 rounds=4 threads=1 model="" tok="" url=""
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --tokenizer) tok=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    *) echo "serve_load: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
repo=$(cd "$(dirname "$0")/.." && pwd)
BMOS=${BMOS:-$repo/build/bmos}
stories=$repo/../shared/data/models/stories260K
model=${model:-$stories/stories260K.bin}
tok=${tok:-$stories/tok512.model}
command -v curl >/dev/null || { echo "serve_load: needs curl (scripts/setup.sh installs it)" >&2; exit 1; }
work=$(mktemp -d /tmp/bmos_serve_load.XXXXXX)
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$url" ]; then
  OMP_WAIT_POLICY=PASSIVE "$BMOS" serve --model "$model" --tokenizer "$tok" --threads "$threads" \
    --max_queue $((clients + 4)) --port 0 >"$work/serve.out" 2>"$work/serve.err" &
  server=$!
  for _ in $(seq 300); do grep -q '^listening on ' "$work/serve.out" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$work/serve.out")
  [ -n "$url" ] || { echo "serve_load: the server did not start:" >&2; cat "$work/serve.err" >&2; exit 1; }
fi
echo "server: $url ($(curl -s "$url/health"))"

body() { printf '{"prompt": "Once upon a time", "max_tokens": %d, "temperature": 1.0, "seed": %d}' "$1" "$2"; }
completion_tokens() { sed -n 's/.*"completion_tokens":\([0-9]*\).*/\1/p' "$1"; }

# One request at a time: tokens/s as the client sees it (HTTP and prefill included).
echo
echo "single request (client side, 5 each):"
printf '  %-10s %-12s %s\n' "max_tokens" "tokens" "tok/s"
for n in "$tokens" 256; do
  total_tok=0 total_s=0
  for i in 1 2 3 4 5; do
    s=$(curl -sS -o "$work/one.json" -w '%{time_total}' -d "$(body "$n" "$i")" "$url/v1/completions")
    total_tok=$((total_tok + $(completion_tokens "$work/one.json")))
    total_s=$(awk -v a="$total_s" -v b="$s" 'BEGIN { print a + b }')
  done
  printf '  %-10s %-12s %.0f\n' "$n" "$total_tok" "$(awk -v t="$total_tok" -v s="$total_s" 'BEGIN { print t / s }')"
done

# Rounds of `clients` requests at once.
: >"$work/latencies"
failed=0 generated=0
t0=$(date +%s.%N)
for r in $(seq "$rounds"); do
  pids=()
  for c in $(seq "$clients"); do
    curl -sS -o "$work/r$r.c$c.json" -w '%{http_code} %{time_total}\n' -d "$(body "$tokens" $((r * 1000 + c)))" \
      "$url/v1/completions" >"$work/r$r.c$c.code" &
    pids+=($!)
  done
  wait "${pids[@]}" || true  # the curls only (the server is a child too); failures show in their codes
  for c in $(seq "$clients"); do
    read -r code secs <"$work/r$r.c$c.code"
    if [ "$code" = 200 ]; then
      echo "$secs" >>"$work/latencies"
      generated=$((generated + $(completion_tokens "$work/r$r.c$c.json")))
    else
      failed=$((failed + 1))
    fi
  done
done
wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
n=$(wc -l <"$work/latencies")
echo
echo "$rounds rounds of $clients concurrent requests, $tokens tokens each: $n answered, $failed failed, ${wall}s"
sort -n "$work/latencies" | awk -v n="$n" -v wall="$wall" -v tok="$generated" '
  { v[NR] = $1 }
  function pct(p,  k) { k = int((p * n + 99) / 100); if (k < 1) k = 1; return v[k] }
  END {
    printf "  %-6s %-6s %-6s %-6s %-6s  %s\n", "p50", "p90", "p99", "min", "max", "(seconds, client side)"
    printf "  %-6.3f %-6.3f %-6.3f %-6.3f %-6.3f\n", pct(50), pct(90), pct(99), v[1], v[n]
    printf "  throughput: %.1f requests/s, %.0f generated tok/s\n", n / wall, tok / wall
  }'
if [ -n "$server" ]; then
  echo
  echo "server side (generation only, from its log): mean $(sed -n 's/.*(\([0-9.]*\) tok\/s).*/\1/p' \
    "$work/serve.err" | awk '{ s += $1 } END { printf "%.0f", s / NR }') tok/s over $(grep -c ' tok/s' \
    "$work/serve.err") completions"
fi
[ "$failed" -eq 0 ]
