#!/usr/bin/env python3
"""Soak and overload run of one `spanlake serve` (issue 26, Add 4). Not part of the test command: it takes
about 45 minutes.

    python3 benches/soak.py [--soak-minutes 30] [--overload-minutes 10] [--bin PATH]

1. Capacity: `spanlake loadgen` flat out for --capacity-seconds (1,000-span requests, 8 in flight, OTLP/gRPC:
   a Collector's shape), with the queries of step 2 beside it, gives the spans/s this machine sustains.
2. Soak: --soak-minutes at 80 % of that rate, with trace-by-ID lookups (of spans just acknowledged) and SQL
   aggregations running beside it. Passes when no request fails, RSS is flat (the mean of the last five
   minutes within 15 % of the mean of minutes 3-7) and ack p99 is stable (no minute's p99 over 3× the
   median minute's).
3. Overload: --overload-minutes offering twice the rate (--overload-concurrency requests in flight),
   queries still running. Passes when every refused request was a retryable one (gRPC RESOURCE_EXHAUSTED /
   HTTP 429), peak RSS stayed under the sum of the memory limits the server runs with (LIMITS, over the idle
   baseline), and afterwards `spanlake verify` finds every span acknowledged in the overload stored exactly
   once. Each phase writes as its own tenant (capacity, soak, overload), so the check reads the overload's
   blocks only.

On a machine with few cores the load generator takes the CPU an overload needs to offer twice what the
server sustains: `--server-cpus 0 --client-cpus 1` gives each side its own (capacity is then the server's on
its CPUs, and the overload check says how many times that was offered).

Prints a per-minute table and a verdict as Markdown (for BENCHMARKS.md) and exits 1 if any check fails.
Each minute is one `loadgen` run of 60 s (its p99 is that minute's), all appending to one verify file.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

RETRYABLE = {"refused: ResourceExhausted", "refused: 429"}

# Every setting that bounds the server's memory, set explicitly (the defaults allow a 1 GiB SQL query four
# at a time and 64 lookups of 64 MiB traces, bounds too loose to say anything about an RSS under them).
LIMITS = {
    "max-buffer-bytes": "512MiB", "max-inflight-request-bytes": "256MiB", "footer-cache-bytes": "64MiB",
    "sql-memory-limit": "256MiB", "sql-max-concurrent": 2, "max-trace-bytes": "64MiB",
    "max-concurrent-trace-lookups": 4, "compaction-merge-memory": "256MiB", "compaction-concurrency": 1,
    "resend-window-bytes": "128MiB",
}


# The gauges that count memory the server holds, and the short names the per-minute table uses.
MEMORY_GAUGES = {
    "spanlake_ingester_buffer_bytes": "buffer", "spanlake_request_bytes_in_flight": "requests",
    "spanlake_footer_cache_bytes": "footers", "spanlake_catalog_bloom_bytes": "blooms",
    "spanlake_ingester_resend_window_bytes": "resend", "spanlake_catalog_tag_bytes": "tags",
}


def limits_sum_mib() -> int:
    mib = {name: int(str(value).removesuffix("MiB")) for name, value in LIMITS.items()}
    return (mib["max-buffer-bytes"] + mib["max-inflight-request-bytes"] + mib["footer-cache-bytes"]
            + mib["sql-memory-limit"] * mib["sql-max-concurrent"]
            + mib["max-trace-bytes"] * mib["max-concurrent-trace-lookups"]
            + mib["compaction-merge-memory"] * mib["compaction-concurrency"] + mib["resend-window-bytes"])


def build_binary() -> str:
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "spanlake"], check=True)
    meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--no-deps"]))
    return os.path.join(meta["target_directory"], "release", "spanlake")


def cpu_set(text):
    """`0` or `0,1` or `0-1` → the set of CPU numbers, as taskset takes them."""
    cpus = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


class Server:
    def __init__(self, binary: str, work: str, limits: dict, cpus=None):
        self.log_path = os.path.join(work, "server.log")
        self.data = os.path.join(work, "data")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--data-dir", self.data, "--http-addr", "127.0.0.1:0",
             "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0", "--multitenancy", "true"]
            + [part for name, value in limits.items() for part in (f"--{name}", str(value))],
            stderr=self.log, stdout=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        deadline = time.time() + 60
        while time.time() < deadline:
            text = open(self.log_path).read()
            if " ready" in text:
                self.grpc = re.search(r"otlp_grpc_addr=([0-9.:]+)", text).group(1)
                self.http = re.search(r" http_addr=([0-9.:]+)", text).group(1)
                return
            if self.process.poll() is not None:
                sys.exit(f"the server exited at start:\n{text}")
            time.sleep(0.1)
        sys.exit("the server did not get ready within 60 s")

    def status_mib(self, field: str) -> float:
        """A memory line of /proc/PID/status (VmRSS: now, VmHWM: peak) in MiB."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def memory_parts_mib(self) -> dict:
        """What the server says it holds (its /metrics gauges) beside the kernel's count, in MiB, so an RSS
        that grows can be told apart: bounded parts at their bounds, or memory nothing accounts for."""
        text = urllib.request.urlopen(f"http://{self.http}/metrics", timeout=30).read().decode()
        gauges = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if not line.startswith("#") and "{" not in name and (name in MEMORY_GAUGES or name.startswith("spanlake_catalog")):
                gauges[name] = float(value)
        parts = {MEMORY_GAUGES[name]: gauges.get(name, 0.0) / 2**20 for name in MEMORY_GAUGES}
        parts["anon"] = self.status_mib("RssAnon")
        # What per-block memory grows with: blocks in the catalogue, and those compaction has not merged.
        parts["blocks"] = gauges.get("spanlake_catalog_blocks", 0.0)
        parts["outstanding"] = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                   if line.startswith("spanlake_compaction_blocks_outstanding{"))
        return parts

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.process.kill()


def loadgen(binary, server, rate, seconds, args, tenant, verify=None, seed=1, concurrency=None):
    command = [binary, "loadgen", "--endpoint", f"http://{server.grpc}", "--protocol", "grpc", "--tenant", tenant,
               "--rate", str(int(rate)), "--duration", f"{seconds}s", "--seed", str(seed),
               "--spans-per-request", str(args.spans_per_request),
               "--concurrency", str(concurrency or args.concurrency)]
    if verify:
        command += ["--verify", verify]
    output = subprocess.run(command, capture_output=True, text=True).stdout
    summary = json.loads(output.strip().splitlines()[-1])
    summary["errors"] = {reason: int(count) for count, reason in re.findall(r"^\s+(\d+) × (.+)$", output, re.M)}
    return summary


class Queries(threading.Thread):
    """Trace-by-ID lookups of spans just acknowledged, and an SQL aggregation over the last minutes."""

    SQL = ("SELECT service_name, count(*) AS spans, max(duration_ns) AS slowest FROM spans "
           "WHERE start_time >= now() - INTERVAL '1 minute' GROUP BY service_name ORDER BY spans DESC")

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        # The phase's tenant and the file its load generator is appending acknowledged IDs to.
        self.tenant, self.verify_path = "soak", ""
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.samples = []  # (time, kind, seconds, status)

    def recent_trace_id(self):
        try:
            with open(self.verify_path, "rb") as ids:
                ids.seek(max(0, os.path.getsize(self.verify_path) - 4096))
                lines = ids.read().decode(errors="replace").splitlines()[1:]
        except OSError:
            return None
        return random.choice(lines).split()[0] if lines else None

    def timed(self, kind, request):
        if isinstance(request, str):
            request = urllib.request.Request(request)
        request.add_header("X-Scope-OrgID", self.tenant)
        started = time.time()
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                reply.read()
                status = reply.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError):
            status = 0
        with self.lock:
            self.samples.append((started, kind, time.time() - started, status))

    def run(self):
        turn = 0
        while not self.stop_event.is_set():
            trace_id = self.recent_trace_id()
            if trace_id:
                self.timed("trace", f"http://{self.server.http}/api/v2/traces/{trace_id}")
            if turn % 5 == 0:
                self.timed("sql", urllib.request.Request(
                    f"http://{self.server.http}/api/sql", data=self.SQL.encode(),
                    headers={"Content-Type": "application/sql"}))
            turn += 1
            self.stop_event.wait(0.2)

    def window(self, start, end):
        with self.lock:
            return [s for s in self.samples if start <= s[0] < end]


def p99(values):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def run_phase(name, tenant, minutes, rate, concurrency, binary, server, args, ids, queries, rss_samples, seed_base,
              keep_ids):
    """One `loadgen` run per minute as `tenant`. Acknowledged IDs go to `ids` (appended) when `keep_ids`, for
    `spanlake verify`; otherwise to a file per minute, removed after it (a 30-minute soak acknowledges
    hundreds of millions of spans: neither the disk nor verify's memory would hold them)."""
    rows = []
    queries.tenant = tenant
    for minute in range(minutes):
        started = time.time()
        minute_ids = ids if keep_ids else f"{ids}.minute"
        queries.verify_path = minute_ids
        summary = loadgen(binary, server, rate, 60, args, tenant, verify=minute_ids, seed=seed_base + minute,
                          concurrency=concurrency)
        ended = time.time()
        if not keep_ids:
            os.remove(minute_ids)
        window = queries.window(started, ended)
        traces = [s for s in window if s[1] == "trace"]
        sqls = [s for s in window if s[1] == "sql"]
        rss = [r for t, r in rss_samples if started <= t < ended]
        rss_median = statistics.median(rss) if rss else server.status_mib('VmRSS')
        row = {
            "phase": name, "minute": minute + 1, "spans_per_second": summary["spans_per_second"],
            "offered": summary["spans_per_second"]
            + sum(summary["errors"].values()) * args.spans_per_request / (ended - started),
            "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "errors": summary["errors"],
            "rss_mib": max(rss) if rss else server.status_mib('VmRSS'), "rss_median_mib": rss_median,
            "trace_p99_ms": p99([s[2] * 1000 for s in traces]), "traces": len(traces),
            "trace_failures": sum(1 for s in traces if s[3] != 200),
            "sql_p99_ms": p99([s[2] * 1000 for s in sqls]), "sqls": len(sqls),
            "sql_failures": sum(1 for s in sqls if s[3] != 200),
        }
        try:
            row["memory"] = server.memory_parts_mib()
        except OSError as error:
            row["memory"] = {}
            print(f"memory gauges unavailable: {error}", file=sys.stderr)
        rows.append(row)
        print(f"{name} {row['minute']:>2}: {row['spans_per_second']:>8.0f} spans/s, ack p99 {row['p99_ms']:.1f} ms, "
              f"RSS {row['rss_mib']:.0f} MiB (median {row['rss_median_mib']:.0f}), errors {sum(row['errors'].values())} "
              f"({', '.join(f'{n} {reason}' for reason, n in row['errors'].items()) or 'none'}), "
              f"trace p99 {row['trace_p99_ms']:.1f} ms ({row['trace_failures']} failed of {row['traces']}), "
              f"SQL p99 {row['sql_p99_ms']:.1f} ms ({row['sql_failures']} failed of {row['sqls']}), "
              f"memory {' '.join(f'{k} {v:.0f}' for k, v in row['memory'].items())}",
              file=sys.stderr, flush=True)
    return rows


def memory_cell(parts: dict) -> str:
    if not parts:
        return "n/a"
    named = ", ".join(f"{parts.get(name, 0):.0f}" for name in MEMORY_GAUGES.values())
    return f"{parts.get('anon', 0):.0f}; {named}; {parts.get('blocks', 0):.0f} blocks, {parts.get('outstanding', 0):.0f} unmerged"


def table(rows):
    lines = ["| phase | min | offered spans/s | acknowledged spans/s | ack p50 ms | ack p99 ms | failed requests | RSS MiB max (median) | by-ID p99 ms (n, failed) | SQL p99 ms (n, failed) | at the minute's end: anonymous RSS; buffer, requests, footers, blooms, resend, tags (MiB); catalogue blocks, unmerged |",
             "|---|---:|---:|---:|---:|---:|---|---:|---|---|---|"]
    for r in rows:
        errors = ", ".join(f"{n} {reason}" for reason, n in r["errors"].items()) or "0"
        lines.append(f"| {r['phase']} | {r['minute']} | {r['offered']:.0f} | {r['spans_per_second']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{errors} | {r['rss_mib']:.0f} ({r['rss_median_mib']:.0f}) | {r['trace_p99_ms']:.0f} ({r['traces']}, {r['trace_failures']}) | "
                     f"{r['sql_p99_ms']:.0f} ({r['sqls']}, {r['sql_failures']}) | {memory_cell(r.get('memory', {}))} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=os.environ.get("SPANLAKE_BIN"))
    parser.add_argument("--soak-minutes", type=int, default=30)
    parser.add_argument("--overload-minutes", type=int, default=10)
    parser.add_argument("--capacity-seconds", type=int, default=180)
    parser.add_argument("--spans-per-request", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--verify-bin", help="the build whose `spanlake verify` checks the overload's spans")
    parser.add_argument("--overload-concurrency", type=int, default=32,
                        help="requests in flight during the overload: enough to offer twice what is acknowledged")
    parser.add_argument("--compaction-concurrency", type=int, default=1,
                        help="merges at once; the merge memory limit is split between them (256 MiB in all)")
    parser.add_argument("--server-cpus", help="CPUs the server runs on (taskset's list form, e.g. 0): with "
                        "--client-cpus, the load generator and queries get their own, so the overload can offer 2×")
    parser.add_argument("--client-cpus", help="CPUs the load generator, the queries and this script run on (e.g. 1)")
    args = parser.parse_args()
    if args.client_cpus:
        os.sched_setaffinity(0, cpu_set(args.client_cpus))
    LIMITS["compaction-concurrency"] = args.compaction_concurrency
    LIMITS["compaction-merge-memory"] = f"{256 // args.compaction_concurrency}MiB"
    binary = args.bin or build_binary()
    work = tempfile.mkdtemp(prefix="spanlake-soak-")
    # The overload alone writes ~20 GB of blocks and ~2 GB of acknowledged IDs; a disk that fills up turns
    # the run into a test of a full disk (as happened once, BENCHMARKS.md).
    free_gib = shutil.disk_usage(work).free / 2**30
    if free_gib < 40:
        print(f"warning: {free_gib:.0f} GiB free where the run writes ({work}); it needs about 30", file=sys.stderr)
    server = Server(binary, work, LIMITS, cpu_set(args.server_cpus) if args.server_cpus else None)
    verify = os.path.join(work, "acked-ids")
    baseline_rss = server.status_mib('VmRSS')

    rss_samples = []
    stop_sampling = threading.Event()

    def sample():
        while not stop_sampling.wait(2):
            try:
                rss_samples.append((time.time(), server.status_mib('VmRSS')))
            except OSError:
                return

    threading.Thread(target=sample, daemon=True).start()

    # Capacity is measured as the soak runs: with the queries beside it and long enough for blocks to be
    # cut, uploaded and compacted, so 80 % of it is 80 % of what this machine sustains, not of a burst.
    queries = Queries(server)
    queries.tenant, queries.verify_path = "capacity", f"{verify}.capacity"
    queries.start()
    capacity = loadgen(binary, server, 0, args.capacity_seconds, args, "capacity", verify=queries.verify_path)
    os.remove(queries.verify_path)
    rate = capacity["spans_per_second"]
    print(f"capacity: {rate:.0f} spans/s acknowledged flat out with the queries beside "
          f"(p99 {capacity['p99_ms']:.1f} ms)", file=sys.stderr)

    soak = run_phase("soak 80 %", "soak", args.soak_minutes, 0.8 * rate, args.concurrency, binary, server, args,
                     verify, queries, rss_samples, 1000, keep_ids=False)
    overload = run_phase("overload 2×", "overload", args.overload_minutes, 2 * rate, args.overload_concurrency,
                         binary, server, args, verify, queries, rss_samples, 5000, keep_ids=True)
    queries.stop_event.set()
    queries.join()
    peak_rss = server.status_mib('VmHWM')
    limits_mib = limits_sum_mib()
    urllib.request.urlopen(urllib.request.Request(f"http://{server.http}/flush", method="POST"), timeout=600).read()
    server.stop()
    stop_sampling.set()
    verified = subprocess.run([args.verify_bin or binary, "verify", "--storage", f"file://{server.data}/blocks",
                               "--tenant", "overload", "--ids", verify], capture_output=True, text=True)

    checks = []
    soak_errors = sum(sum(r["errors"].values()) + r["trace_failures"] + r["sql_failures"] for r in soak)
    checks.append((soak_errors == 0, f"soak: {soak_errors} failed requests or queries"))
    if len(soak) >= 12:
        early = statistics.mean(r["rss_mib"] for r in soak[2:7])
        late = statistics.mean(r["rss_mib"] for r in soak[-5:])
        early_median = statistics.mean(r["rss_median_mib"] for r in soak[2:7])
        late_median = statistics.mean(r["rss_median_mib"] for r in soak[-5:])
        checks.append((late <= early * 1.15, f"soak RSS (each minute's max): minutes 3-7 mean {early:.0f} MiB, last 5 "
                       f"minutes {late:.0f} MiB (×{late / early:.2f}; each minute's median: {early_median:.0f} → "
                       f"{late_median:.0f}, ×{late_median / early_median:.2f})"))
    p99s = [r["p99_ms"] for r in soak]
    if p99s:
        median = statistics.median(p99s)
        checks.append((max(p99s) <= 3 * median,
                       f"soak ack p99: median minute {median:.1f} ms, worst {max(p99s):.1f} ms, best {min(p99s):.1f} ms"))
    other = {reason: n for r in overload for reason, n in r["errors"].items() if reason not in RETRYABLE}
    refused = sum(n for r in overload for reason, n in r["errors"].items() if reason in RETRYABLE)
    checks.append((not other, f"overload: {refused} retryable refusals, other failures {other or 'none'}"))
    if overload:
        offered = statistics.mean(r["offered"] for r in overload) / rate
        checks.append((offered >= 1.9, f"overload offered {offered:.2f}× capacity (the aim: 2×)"))
    checks.append((peak_rss <= baseline_rss + limits_mib,
                   f"peak RSS {peak_rss:.0f} MiB; idle {baseline_rss:.0f} MiB + limits {limits_mib:.0f} MiB"))
    checks.append((verified.returncode == 0, f"verify: {verified.stdout.strip() or verified.stderr.strip()}"))

    print(f"\ncapacity {rate:.0f} spans/s; soak at {0.8 * rate:.0f}, overload at {2 * rate:.0f} "
          f"({args.spans_per_request}-span OTLP/gRPC requests, {args.concurrency} in flight; "
          f"{args.overload_concurrency} in the overload; server on CPUs {args.server_cpus or 'all'}, "
          f"load generator and queries on {args.client_cpus or 'all'})\n")
    print("server limits: " + ", ".join(f"{name} {value}" for name, value in LIMITS.items()) + "\n")
    print(table(soak + overload))
    print()
    for passed, text in checks:
        print(f"- {'PASS' if passed else 'FAIL'}: {text}")
    print(f"\n(server log and data in {work})")
    sys.exit(0 if all(passed for passed, _ in checks) else 1)


if __name__ == "__main__":
    main()
