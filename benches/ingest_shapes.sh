#!/usr/bin/env bash
# Ingest as real clients send it (issue 25): the OpenTelemetry Python SDK's spans through the transports of
# its exporters (benches/ingest_client.py: grpcio, requests) against `spanlake serve` on the embedded
# default, one fresh server per client shape. Every shape: request size x requests in flight x protocol x
# gzip. Per shape: acknowledged spans/s, acknowledgement latency p50/p99, the server's CPU seconds per
# million spans end to end (decode, WAL, block write: measured after POST /flush has cut every block) and
# its peak RSS. Prints a Markdown table.
#
# Usage: benches/ingest_shapes.sh
#   SPANS=1000000 SIZES="512 1000 8192" INFLIGHT="1 4 16" PROTOCOLS="grpc http" GZIP="off on"   (defaults)
#   SPANLAKE_BIN=path runs that binary instead of building this checkout (to compare two builds in one run).
#   AUTH=on: the server checks a bearer token on every request (--auth-file), the client sends it.
#   TLS=on: every port behind TLS (a CA and certificate made here with openssl), the client trusts the CA.
set -euo pipefail
cd "$(dirname "$0")/.."
spans="${SPANS:-1000000}"
sizes="${SIZES:-512 1000 8192}"
inflights="${INFLIGHT:-1 4 16}"
protocols="${PROTOCOLS:-grpc http}"
gzips="${GZIP:-off on}"
if [ -n "${SPANLAKE_BIN:-}" ]; then
  bin="$SPANLAKE_BIN"
else
  cargo build --release --quiet
  bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/spanlake"
fi
tests/tools/install.sh
python="${SPANLAKE_TEST_TOOLS:-$HOME/.cache/spanlake/test-tools}/bin/python"
work="$(mktemp -d)"
server=""
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
"$python" benches/ingest_client.py prepare "$work/pool"
ticks="$(getconf CLK_TCK)"
serve_flags=(); client_flags=(); scheme=http; curl_flags=()
if [ "${AUTH:-off}" = on ]; then
  token="bench-token-$$"
  digest="$(printf '%s\n' "$token" | "$bin" auth hash)"
  printf 'credentials:\n  - {name: bench, admin: true, sha256: %s}\n' "$digest" > "$work/credentials.yaml"
  serve_flags+=(--auth-file "$work/credentials.yaml"); client_flags+=(--token "$token")
  curl_flags+=(-H "authorization: Bearer $token")
fi
if [ "${TLS:-off}" = on ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" \
    -days 1 -subj /CN=bench-ca 2> /dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/server.key" -out "$work/server.csr" \
    -subj /CN=localhost 2> /dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/ext"
  openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -out "$work/server.pem" -days 1 -extfile "$work/ext" 2> /dev/null
  serve_flags+=(--tls-cert-file "$work/server.pem" --tls-key-file "$work/server.key")
  client_flags+=(--ca "$work/ca.pem"); scheme=https; curl_flags+=(--cacert "$work/ca.pem")
fi
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "| protocol | spans/request | in flight | gzip | acknowledged spans/s | ack p50 / p99 (ms) | server CPU s per 1 M spans | peak RSS (MiB) | failed requests |"
echo "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
for protocol in $protocols; do
  for size in $sizes; do
    for inflight in $inflights; do
      for gzip in $gzips; do
        rm -rf "$work/data"
        "$bin" serve --data-dir "$work/data" --http-addr 127.0.0.1:0 --otlp-grpc-addr 127.0.0.1:0 \
          --otlp-http-addr 127.0.0.1:0 "${serve_flags[@]}" 2> "$work/log" &
        server=$!
        until grep -q ' ready' "$work/log"; do
          kill -0 "$server" || { cat "$work/log" >&2; exit 1; }
          sleep 0.1
        done
        grpc="$(grep -o 'otlp_grpc_addr=[0-9.:]*' "$work/log" | cut -d= -f2)"
        otlp_http="$(grep -o 'otlp_http_addr=[0-9.:]*' "$work/log" | cut -d= -f2)"
        query="$(grep -o ' http_addr=[0-9.:]*' "$work/log" | cut -d= -f2)"
        endpoint="$grpc"; [ "$protocol" = http ] && endpoint="$otlp_http"
        gzip_flag=(); [ "$gzip" = on ] && gzip_flag=(--gzip)
        cpu_before="$(cpu_of "$server")"
        result="$("$python" benches/ingest_client.py run "$work/pool" --protocol "$protocol" --endpoint "$endpoint" \
          --size "$size" --inflight "$inflight" --spans "$spans" "${gzip_flag[@]}" "${client_flags[@]}")" || true
        curl -sf "${curl_flags[@]}" -X POST "$scheme://$query/flush" > /dev/null
        cpu_after="$(cpu_of "$server")"
        peak_rss_kib="$(awk '/VmHWM/ {print $2}' "/proc/$server/status")"
        kill "$server"; wait "$server" 2>/dev/null || true; server=""
        RESULT="$result" CPU="$(( cpu_after - cpu_before ))" TICKS="$ticks" RSS="$peak_rss_kib" python3 -c '
import json, os
r = json.loads(os.environ["RESULT"])
cpu = int(os.environ["CPU"]) / int(os.environ["TICKS"])
per_million = cpu / (r["acknowledged_spans"] / 1e6) if r["acknowledged_spans"] else float("nan")
row = [r["protocol"], r["size"], r["inflight"], "on" if r["gzip"] else "off", "{:,}".format(r["spans_per_s"]),
       "{} / {}".format(r["p50_ms"], r["p99_ms"]), "{:.2f}".format(per_million), int(os.environ["RSS"]) // 1024,
       r["failures"]]
print("| " + " | ".join(str(cell) for cell in row) + " |")
if r["first_failure"]:
    import sys
    print("{} {} x{} gzip {}: first refusal: {}".format(r["protocol"], r["size"], r["inflight"], r["gzip"],
          r["first_failure"]), file=sys.stderr)'
      done
    done
  done
done
