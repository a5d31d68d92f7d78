#!/usr/bin/env bash
# Installs the test suite's tools: Python ones (S3 test server, pyarrow, DuckDB, the OpenTelemetry SDK,
# Playwright) into a private virtualenv, and curl, a C++ compiler and Chromium from apt when the machine lacks
# them.
# Idempotent: does nothing when the installed sets already match requirements.txt and
# requirements-zipkin-proto.txt (the Zipkin exporters, in a second virtualenv beside the first).
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
# Installs a requirements file into a virtualenv unless that exact file is installed there already.
install_venv() {
  local venv="$1" requirements="$2"
  local stamp="$venv/.installed-requirements"
  if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
    return 0
  fi
  echo "installing test tools into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check --quiet --upgrade pip
  "$venv/bin/pip" install --disable-pip-version-check --quiet -r "$requirements"
  cp "$requirements" "$stamp"
}
install_venv "$tools" "$here/requirements.txt"
# The Zipkin exporters need protobuf<4, which the OTLP exporters above cannot share: a second virtualenv.
install_venv "$tools-zipkin-proto" "$here/requirements-zipkin-proto.txt"
