#!/usr/bin/env bash
# The project's one test command (the README's, and what .ci/run calls). In order:
#   1. the review gates: `cargo fmt --check`, `cargo clippy --all-targets -- -D warnings`, and
#      `cargo doc --no-deps` with warnings as errors (broken doc links fail);
#   2. installs the test tools (the S3-compatible test server, pyarrow, DuckDB) when missing;
#   3. every test, benches in test mode included;
#   4. each fuzz target (tests/fuzz) for 20 seconds from its committed corpus; a crash fails the run;
#   5. every suite that writes and reads blocks (block lookup, storage, OTLP round trip, external readers,
#      CLI, trace by ID, SQL, compaction, crash) again with
#      SPANLAKE_DIRECT_ENCODING=false, so parquet's own writer (the way back from spanlake's encoder)
#      stays proven too;
# and closes with the total. Any failure fails the whole run. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
step "cargo doc --no-deps (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "installing test tools"
tests/tools/install.sh

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# --no-fail-fast: a failing suite must not hide the suites after it (the run still fails).
step "cargo test --all-targets --no-fail-fast $*"
cargo test --all-targets --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?

# The fuzz targets, briefly: the committed corpora already run as tests (tests/fuzz_corpora.rs); this also
# proves the fuzz build works and gives each target a short search for new failures.
step "fuzzing each target for ${SPANLAKE_FUZZ_SECONDS:=20} s (tests/fuzz/run.sh)"
tests/fuzz/run.sh --seconds "$SPANLAKE_FUZZ_SECONDS" 2>&1 | tee -a "$log" || status=$?

# The suites that write and read blocks, once more through parquet's own writer. Unit tests of the block
# writer already compare both encoders chunk by chunk; these prove the whole path end to end.
direct_off_suites=(block_lookup storage_conformance otlp_roundtrip external_readers cli trace_by_id sql sql_point_queries compaction crash search_golden)
step "SPANLAKE_DIRECT_ENCODING=false: ${direct_off_suites[*]}"
suite_args=()
for suite in "${direct_off_suites[@]}"; do suite_args+=(--test "$suite"); done
SPANLAKE_DIRECT_ENCODING=false cargo test --no-fail-fast "${suite_args[@]}" "$@" 2>&1 | tee -a "$log" || status=$?

awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
