#!/usr/bin/env bash
# The project's one test command (the README's, and what .ci/run calls): installs the test tools (the
# S3-compatible test server, pyarrow, DuckDB) when missing, then runs every test, benches in test mode
# included, and closes with the total. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/tools/install.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --all-targets "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
