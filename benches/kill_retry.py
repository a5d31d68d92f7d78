#!/usr/bin/env python3
"""Resent requests across `kill -9` (issue 26, Add 6): one load run by a client that resends every request a
kill left unanswered (`spanlake loadgen --retry`, the same bytes, as SDKs and the Collector retry), the
server killed with SIGKILL --kills times at random moments and restarted on the same ports, then every
acknowledged span looked up in the blocks (`spanlake verify`: missing, stored more than once) and the
blocks' SQL row count compared with the distinct spans.

    python3 benches/kill_retry.py [--kills 10] [--rate 100000] [--seconds 25] [--server-bin PATH] [--bin PATH]
                                  [--timeout 20ms] [--server-args "--resend-window 0"]

--server-bin runs another build as the server (an older one, for a before/after in one sitting); the load
generator is always --bin's (default: this checkout's release build). --timeout gives the client a deadline
(`loadgen --timeout`): a request it gives up on is resent a second later, though the server may have stored
it meanwhile (with --kills 0 this measures resends alone). --server-args adds settings to the server's.
"""

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_binary() -> str:
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "spanlake"], check=True)
    meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--no-deps"]))
    return os.path.join(meta["target_directory"], "release", "spanlake")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rate", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=25)
    parser.add_argument("--spans-per-request", type=int, default=1000)
    parser.add_argument("--bin", default=os.environ.get("SPANLAKE_BIN"))
    parser.add_argument("--server-bin")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 32))
    parser.add_argument("--timeout", help="the client's deadline per request, e.g. 20ms")
    parser.add_argument("--server-args", default="", help="more `spanlake serve` flags, one string")
    args = parser.parse_args()
    binary = args.bin or build_binary()
    server_binary = args.server_bin or binary
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="spanlake-kill-retry-")
    ports = {"http": free_port(), "grpc": free_port(), "otlp_http": free_port()}
    log = open(os.path.join(work, "server.log"), "a")

    def start():
        process = subprocess.Popen(
            [server_binary, "serve", "--data-dir", os.path.join(work, "data"),
             "--http-addr", f"127.0.0.1:{ports['http']}", "--otlp-grpc-addr", f"127.0.0.1:{ports['grpc']}",
             "--otlp-http-addr", f"127.0.0.1:{ports['otlp_http']}", *args.server_args.split()],
            stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return process
            except OSError:
                pass
            if process.poll() is not None:
                sys.exit(f"the server exited; log in {work}/server.log")
            time.sleep(0.05)
        sys.exit("the server did not get ready")

    ids = os.path.join(work, "acked-ids")
    server = start()
    loadgen = subprocess.Popen(
        [binary, "loadgen", "--endpoint", f"http://127.0.0.1:{ports['grpc']}", "--rate", str(args.rate),
         "--duration", f"{args.seconds}s", "--spans-per-request", str(args.spans_per_request),
         "--concurrency", "8", "--seed", str(args.seed), "--retry", "--verify", ids,
         *(["--timeout", args.timeout] if args.timeout else [])],
        stdout=subprocess.PIPE, text=True)
    started = time.time()
    kill_times = sorted(rng.uniform(1, args.seconds - 2) for _ in range(args.kills))
    for at in kill_times:
        time.sleep(max(0.0, started + at - time.time()))
        server.kill()
        server.wait()
        server = start()
    report = loadgen.communicate()[0]
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{ports['http']}/flush", method="POST"),
                           timeout=300).read()
    server.terminate()
    server.wait()

    verify = subprocess.run([binary, "verify", "--ids", ids, "--storage", f"file://{work}/data/blocks"],
                            capture_output=True, text=True)
    def sql(query):
        answer = subprocess.run([binary, "sql", "--storage", f"file://{work}/data/blocks", "--format", "csv", query],
                                capture_output=True, text=True)
        return answer.stdout.strip().splitlines()[-1] if answer.returncode == 0 else "?"

    rows = sql("SELECT count(*) AS n FROM spans")
    distinct = sql("SELECT count(*) AS n FROM (SELECT trace_id, span_id FROM spans GROUP BY trace_id, span_id)")
    acked = json.loads(report.strip().splitlines()[-1])
    failed = re.findall(r"^\s+(\d+) × (.+)$", report, re.M)
    print(f"server {server_binary} {args.server_args}; client timeout {args.timeout or 'none'}; seed {args.seed}; "
          f"{args.kills} kills at "
          f"{', '.join(f'{t:.1f}' for t in kill_times)} s")
    print(f"acknowledged {acked['acked_spans']} spans in {args.seconds} s; failed attempts (resent): "
          f"{', '.join(f'{n} {reason}' for n, reason in failed) or 'none'}")
    print(f"verify: {verify.stdout.strip() or verify.stderr.strip()}")
    print(f"SQL over the blocks: {rows} rows, {distinct} distinct (trace_id, span_id): "
          f"{int(rows) - int(distinct) if rows.isdigit() and distinct.isdigit() else '?'} duplicated rows")
    print(f"(data and log in {work})")
    sys.exit(0 if verify.returncode == 0 else 1)


if __name__ == "__main__":
    main()
