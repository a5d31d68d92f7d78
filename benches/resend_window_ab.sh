#!/bin/bash
# What the resend window costs ingest (issue 26, Add 6): flat-out `spanlake loadgen` against a fresh
# `spanlake serve` per run (compaction off), the window on (default) and off (`--resend-window 0s`), runs
# alternated in one sitting, gRPC with 1,000-span and OTLP/HTTP with 512-span requests, 8 in flight.
# Compare ratios within one sitting only.
#
#   benches/resend_window_ab.sh NEW_BINARY [PREVIOUS_BINARY] [SECONDS]
#
# PREVIOUS_BINARY adds a "window on" run of another build beside each pair. Prints one line per run:
# spans/s acknowledged and ack p99 (ms), the window's keys and bytes at the end, the server's peak RSS.
set -euo pipefail
NEW=${1:?usage: $0 NEW_BINARY [PREVIOUS_BINARY] [SECONDS]}
PREVIOUS=${2:-}
SECONDS_PER_RUN=${3:-40}

run() { # binary label protocol spans-per-request [server flags...]
  local binary=$1 label=$2 protocol=$3 spans=$4
  shift 4
  local dir
  dir=$(mktemp -d)
  "$binary" serve --data-dir "$dir/data" --http-addr 127.0.0.1:13200 --otlp-grpc-addr 127.0.0.1:14317 \
    --otlp-http-addr 127.0.0.1:14318 --compaction-interval 0s "$@" 2>"$dir/log" &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:13200/ready >/dev/null && break; sleep 0.2; done
  local endpoint=http://127.0.0.1:14317
  [ "$protocol" = http ] && endpoint=http://127.0.0.1:14318
  "$binary" loadgen --endpoint "$endpoint" --protocol "$protocol" --rate 0 --duration "${SECONDS_PER_RUN}s" \
    --spans-per-request "$spans" --concurrency 8 >"$dir/loadgen.txt" 2>/dev/null
  local rate window peak
  rate=$(tail -1 "$dir/loadgen.txt" | python3 -c "import json,sys; d=json.load(sys.stdin); print(round(d['spans_per_second']), d['p99_ms'])")
  window=$(curl -sf http://127.0.0.1:13200/metrics | awk '/^spanlake_ingester_resend_window_(keys|bytes) /{printf "%s ", $2}')
  peak=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$label $protocol x$spans: spans/s, p99 ms = $rate; window keys, bytes = ${window:-0 0}; peak RSS KiB $peak"
  rm -rf "$dir"
}

for shape in "grpc 1000" "http 512"; do
  set -- $shape
  run "$NEW" window-on "$1" "$2"
  run "$NEW" window-off "$1" "$2" --resend-window 0s
  [ -n "$PREVIOUS" ] && run "$PREVIOUS" previous-build-on "$1" "$2"
done
