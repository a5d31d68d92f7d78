#!/usr/bin/env bash
# End-to-end ingest benchmark: `spanlake loadgen` against `spanlake serve` on this machine.
# Usage: benches/ingest.sh [SECONDS] [PROTOCOL] [RATE] [CONCURRENCY]   (defaults: 60 grpc 0 16; rate 0 = flat out)
# Prints loadgen's report, the server's peak RSS and CPU use, and bytes per span in the blocks.
# SPANLAKE_BIN=path runs that binary instead of building this checkout (to compare two builds in one run).
set -euo pipefail
seconds="${1:-60}"; protocol="${2:-grpc}"; rate="${3:-0}"; concurrency="${4:-16}"
if [ -n "${SPANLAKE_BIN:-}" ]; then
  bin="$SPANLAKE_BIN"
else
  cargo build --release --quiet
  bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/spanlake"
fi
work="$(mktemp -d)"; trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" serve --data-dir "$work/data" --http-addr 127.0.0.1:0 --otlp-grpc-addr 127.0.0.1:0 \
  --otlp-http-addr 127.0.0.1:0 2> "$work/log" &
server=$!
until grep -q ' ready' "$work/log"; do sleep 0.1; done
grpc="$(grep -o 'otlp_grpc_addr=[0-9.:]*' "$work/log" | cut -d= -f2)"
otlp_http="$(grep -o 'otlp_http_addr=[0-9.:]*' "$work/log" | cut -d= -f2)"
query="$(grep -o ' http_addr=[0-9.:]*' "$work/log" | cut -d= -f2)"
endpoint="http://$grpc"; [ "$protocol" = http ] && endpoint="http://$otlp_http"
ticks="$(getconf CLK_TCK)"
cpu_before="$(awk '{print $14 + $15}' "/proc/$server/stat")"
"$bin" loadgen --endpoint "$endpoint" --protocol "$protocol" --rate "$rate" --concurrency "$concurrency" --duration "${seconds}s"
cpu_after="$(awk '{print $14 + $15}' "/proc/$server/stat")"
peak_rss_kib="$(awk '/VmHWM/ {print $2}' "/proc/$server/status")"
curl -s -X POST "http://$query/flush" > /dev/null
echo "server CPU: $(python3 -c "print(round(($cpu_after - $cpu_before) / $ticks / $seconds, 2))") cores; peak RSS: $((peak_rss_kib / 1024)) MiB"
"$bin" blocks --storage "file://$work/data/blocks" | awk 'NR > 1 {spans += $3; bytes += $5; blocks++}
  END {printf "blocks: %d, spans: %d, bytes/span: %.1f\n", blocks, spans, bytes / spans}'
