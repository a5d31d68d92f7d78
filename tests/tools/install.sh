#!/usr/bin/env bash
# Installs the test suite's tools: Python ones (S3 test server, pyarrow, DuckDB, the OpenTelemetry SDK,
# Playwright) into a private virtualenv, and curl, a C++ compiler and Chromium from apt when the machine lacks
# them.
# Idempotent: does nothing when the installed set already matches requirements.txt.
set -euo pipefail
# curl is a client of the TLS tests (tests/tls.rs); g++ builds libFuzzer for the fuzz targets (tests/fuzz).
# Debian images usually have both.
apt_install() {
  echo "installing $1 (apt)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$1"; else sudo apt-get update -qq && sudo apt-get install -y -qq "$1"; fi
}
command -v curl > /dev/null || apt_install curl
command -v c++ > /dev/null || apt_install g++
# Debian's Chromium is the browser of the web UI tests (tests/ui.rs); Playwright drives it, so nothing is
# downloaded from Playwright's own CDN. SPANLAKE_CHROMIUM names another binary.
[ -x "${SPANLAKE_CHROMIUM:-/usr/bin/chromium}" ] || apt_install chromium
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
