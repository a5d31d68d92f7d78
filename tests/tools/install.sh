#!/usr/bin/env bash
# Installs the test suite's Python tools (S3 test server, pyarrow, DuckDB) into a private virtualenv.
# Idempotent: does nothing when the installed set already matches requirements.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="${SPANLAKE_TEST_TOOLS:-$HOME/.cache/spanlake/test-tools}"
requirements="$here/requirements.txt"
stamp="$tools/.installed-requirements"
if [ -x "$tools/bin/python" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi
echo "installing test tools into $tools" >&2
python3 -m venv "$tools"
"$tools/bin/pip" install --disable-pip-version-check --quiet --upgrade pip
"$tools/bin/pip" install --disable-pip-version-check --quiet -r "$requirements"
cp "$requirements" "$stamp"
