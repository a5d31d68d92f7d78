#!/usr/bin/env bash
# The project's one test command (the README's, and what .ci/run calls): installs the test tools (the
# S3-compatible test server, pyarrow, DuckDB) when missing, then runs every test, benches in test mode
# included. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/tools/install.sh
cargo test --all-targets "$@"
cargo test --doc "$@"
