#!/usr/bin/env bash
# Builds the fuzz targets (libFuzzer) and fuzzes each, starting from its committed corpus.
#
#   tests/fuzz/run.sh [--seconds N | --runs N] [--merge] [target...]
#
# --seconds N   fuzz each target for N seconds (default 60); --runs N: for N executions instead.
# --merge       afterwards, fold what was found into tests/fuzz/corpus/<target>, keeping the smallest set of
#               files with the same coverage (commit the result).
# Targets: otlp_protobuf otlp_json wal_replay trace_id traceql zipkin_json zipkin_protobuf (default: all), run one after another.
# New inputs go to a scratch folder, never into the committed corpus unless --merge. An input that breaks a
# check stops the run and is left as crash-* / timeout-* / oom-* in the scratch folder; copy it to
# tests/fuzz/regressions/<target>/ so tests/fuzz_corpora.rs replays it on every test run, then fix.
# Only spanlake and the targets are instrumented (tests/fuzz/rustc-wrapper): the other crates are the test
# build's own artifacts, so after `cargo test` this builds in a few minutes, not DataFusion's half hour.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

seconds=60
runs=""
merge=false
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --merge) merge=true; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(otlp_protobuf otlp_json wal_replay trace_id traceql zipkin_json zipkin_protobuf)

# Optimised (the fuzzer's executions per second), with debug assertions and overflow checks kept (the dev
# profile's), so an arithmetic overflow is a finding too.
RUSTC_WRAPPER="$root/tests/fuzz/rustc-wrapper" cargo build --quiet -p spanlake-fuzz --bins \
  --config 'profile.dev.package.spanlake.opt-level=3' \
  --config 'profile.dev.package.spanlake-fuzz.opt-level=3'
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

scratch="${FUZZ_SCRATCH:-$(mktemp -d)}"
status=0
for target in "${targets[@]}"; do
  corpus="$root/tests/fuzz/corpus/$target"
  found="$scratch/$target/found"
  artifacts="$scratch/$target/"
  mkdir -p "$found"
  if [[ -n "$runs" ]]; then budget=(-runs="$runs"); else budget=(-max_total_time="$seconds"); fi
  printf '\n==> fuzzing %s (%s)\n' "$target" "${budget[*]}" >&2
  # -rss_limit_mb: a memory blow-up is a finding; -timeout: so is an input that takes seconds.
  if ! "$target_dir/debug/$target" "$found" "$corpus" "${budget[@]}" -rss_limit_mb=2048 -timeout=10 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts" 2> "$scratch/$target/log"; then
    status=1
    tail -40 "$scratch/$target/log" >&2
    echo "FAILED: $target; the input is in $artifacts (crash-*, timeout-*, oom-*)" >&2
    continue
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$scratch/$target/log" \
    | sed "s/^/$target /" >&2
  if $merge; then
    merged="$scratch/$target/merged"
    mkdir -p "$merged"
    "$target_dir/debug/$target" -merge=1 "$merged" "$corpus" "$found" -max_len=8192 2>> "$scratch/$target/log"
    find "$corpus" -type f ! -name 'seed-*' -delete
    find "$merged" -type f -exec cp {} "$corpus/" \;
    echo "$target corpus: $(find "$corpus" -type f | wc -l) files" >&2
  fi
done
echo "logs in $scratch" >&2
exit "$status"
