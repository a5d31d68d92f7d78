#!/usr/bin/env python3
"""One process or several on one store (issue 29), in the same run on the same machine:

1. Ingest: spans/s and server CPU per million spans with one `--target all` process (the baseline) and with
   1, 2 and 3 `--target ingester` processes, fed by `spanlake loadgen` over OTLP/gRPC, requests routed by
   trace ID with the ring of the Collector's loadbalancing exporter (each batch split per ingester, as the
   exporter splits it). On 2 cores this shows the overhead of the split, not scaling.
2. Queries: trace by ID, SQL and search answered by a `--target querier` that must ask 3 ingesters holding
   the spans in their buffers, against one `--target all` process holding the same spans, same requests.

Storage is a local folder shared by the processes (the embedded default). Prints Markdown tables for
BENCHMARKS.md ("Several processes on one store").

    SPANLAKE_BIN=target/release/spanlake ~/.cache/spanlake/test-tools/bin/python benches/split.py [SECONDS] [SPANS_PER_REQUEST]

PARTS=ingest or PARTS=query runs one of the two.
"""
import os, re, socket, statistics, subprocess, sys, tempfile, time
import requests

BIN = os.environ.get("SPANLAKE_BIN", "target/release/spanlake")
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
BATCH = int(sys.argv[2]) if len(sys.argv) > 2 else 8192
work = tempfile.mkdtemp(prefix="spanlake-split-")
STORE = f"file://{work}/bucket"
os.makedirs(f"{work}/bucket")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, name, args, store=STORE):
        self.log_path = f"{work}/{name}.log"
        self.proc = subprocess.Popen([BIN, "serve", "--storage", store, "--data-dir", f"{work}/{name}",
                                      "--jaeger-addr", "", "--zipkin-addr", "", "--compaction-interval", "0s"] + args,
                                     stderr=open(self.log_path, "w"), stdout=subprocess.DEVNULL,
                                     env={**os.environ, "SPANLAKE_LOG": "info"})
        deadline = time.time() + 60
        while " ready" not in open(self.log_path).read():
            assert self.proc.poll() is None and time.time() < deadline, open(self.log_path).read()
            time.sleep(0.05)

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def start(name, target, http, grpc=None, extra=(), store=STORE):
    args = ["--target", target, "--http-addr", f"127.0.0.1:{http}"]
    if grpc:
        args += ["--otlp-grpc-addr", f"127.0.0.1:{grpc}", "--otlp-http-addr", "127.0.0.1:0"]
    return Proc(name, args + list(extra), store)


def load(endpoints, seconds, rate=0, seed=1):
    out = subprocess.run([BIN, "loadgen", "--endpoint", ",".join(f"http://127.0.0.1:{p}" for p in endpoints),
                          "--route", "trace-id", "--rate", str(rate), "--duration", f"{seconds}s",
                          "--spans-per-request", str(BATCH), "--concurrency", "4", "--seed", str(seed)],
                         capture_output=True, text=True, check=True)
    acked = int(re.search(r"acknowledged (\d+) spans", out.stdout).group(1))
    rate = float(re.search(r"(\d+) spans/s", out.stdout).group(1))
    p50, p99 = map(float, re.search(r"p50 ([\d.]+) ms, p90 [\d.]+ ms, p99 ([\d.]+) ms", out.stdout).groups())
    return acked, rate, p50, p99


def ingest_run(label, layout):
    """layout: 'all' or the number of ingester processes."""
    procs, endpoints = [], []
    count = 1 if layout == "all" else layout
    for n in range(count):
        grpc = free_port()
        procs.append(start(f"{label}-{n}", "all" if layout == "all" else "ingester", free_port(), grpc))
        endpoints.append(grpc)
    before = sum(p.cpu_seconds() for p in procs)
    acked, rate, p50, p99 = load(endpoints, SECONDS)
    cpu = sum(p.cpu_seconds() for p in procs) - before
    rss = sum(p.rss_mib() for p in procs)
    for p in procs:
        p.stop()
    return rate, p50, p99, cpu / acked * 1e6, rss


def timed(call, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1 if len(times) >= 100 else -1]


PARTS = os.environ.get("PARTS", "ingest,query").split(",")
print(f"machine: {os.cpu_count()} cores; {SECONDS} s per run, {BATCH}-span requests routed by trace ID, 4 in flight\n")
print("| processes | spans/s | vs one `all` | ack p50 / p99 (ms) | server CPU s / 1 M spans | peak RSS, all processes (MiB) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
baseline = None
for label, layout in [("all", "all"), ("one", 1), ("two", 2), ("three", 3)] if "ingest" in PARTS else []:
    rate, p50, p99, cpu, rss = ingest_run(label, layout)
    baseline = baseline or rate
    name = "1 × `--target all`" if layout == "all" else f"{layout} × `--target ingester`"
    print(f"| {name} | {rate:,.0f} | {rate / baseline:.2f} | {p50:.1f} / {p99:.1f} | {cpu:.2f} | {rss:.0f} |", flush=True)

# Queries: the same spans held by one `all` process, and by three ingesters read through a querier, on a
# store of their own. First with every span in the buffers, then with every span in blocks (flushed, the
# handed-off copies expired, the store listed by both), where the querier still asks every ingester.
if "query" not in PARTS:
    sys.exit(0)
# QUERY_STORE=shared: the query runs on the ingest runs' blocks (millions of spans), the single process on a
# copy of them.
SHARED = os.environ.get("QUERY_STORE") == "shared"
QSTORE = STORE if SHARED else f"file://{work}/query-bucket"
os.makedirs(f"{work}/query-bucket", exist_ok=True)
ports = [(free_port(), free_port()) for _ in range(3)]
# Nothing cut while loading (a block of one side's buffered spans would change that side's search slices).
held = ["--max-block-age", "1h", "--max-block-bytes", "1GiB", "--handoff-retention", "1s"]
ingesters = [start(f"q-ingester-{n}", "ingester", http, grpc, held, QSTORE) for n, (http, grpc) in enumerate(ports)]
querier = start("querier", "querier", free_port(), None,
                ["--ingesters", ",".join(f"127.0.0.1:{http}" for http, _ in ports), "--block-refresh-interval", "2s"], QSTORE)
single_http, single_grpc = free_port(), free_port()
if SHARED:
    # The single process gets a copy of the ingest runs' blocks under a store of its own, so neither side
    # sees the other's spans.
    import shutil
    shutil.copytree(f"{work}/bucket", f"{work}/query-bucket-single")
else:
    os.makedirs(f"{work}/query-bucket-single")
single_store = QSTORE + "-single" if not SHARED else f"file://{work}/query-bucket-single"
single = start("single", "all", single_http, single_grpc, held + ["--block-refresh-interval", "2s"], single_store)
# The same seed and rate, so both sides hold the same traces.
sent_split = load([grpc for _, grpc in ports], 10, rate=20_000, seed=7)[0]
sent_single = load([single_grpc], 10, rate=20_000, seed=7)[0]
q_http = re.search(r" http_addr=([0-9.:]+)", open(querier.log_path).read()).group(1)
s_http = f"127.0.0.1:{single_http}"
ids = requests.post(f"http://{s_http}/api/sql", data="SELECT DISTINCT trace_id FROM spans ORDER BY trace_id LIMIT 200").json()["rows"]
ids = [row[0] for row in ids]
cases = [
    ("trace by ID (v2, JSON)", lambda h, i=iter(ids * 100): requests.get(f"http://{h}/api/v2/traces/{next(i)}").raise_for_status(), 200),
    ("SQL `count(*)`", lambda h: requests.post(f"http://{h}/api/sql", data="SELECT count(*) FROM spans").raise_for_status(), 50),
    ("SQL spans of one service by name", lambda h: requests.post(f"http://{h}/api/sql", data="SELECT name, count(*) FROM spans WHERE service_name = 'cart' GROUP BY name").raise_for_status(), 50),
    ("search `{ resource.service.name = \"cart\" }`", lambda h: requests.get(f"http://{h}/api/search", params={"q": '{ resource.service.name = "cart" }', "limit": 20}).raise_for_status(), 50),
]


def count(h):
    return requests.post(f"http://{h}/api/sql", data="SELECT count(*) FROM spans").json()["rows"][0][0]


def measure(where):
    counts = [count(h) for h in (s_http, q_http)]
    assert SHARED or counts == [sent_single, sent_split], counts
    assert counts[0] - sent_single == counts[1] - sent_split, f"both sides hold the same blocks: {counts}"
    print(f"\n{where}: {sent_single:,} spans acknowledged by one `all` process and {sent_split:,} by three ingesters (same seed and rate)\n")
    print("| request | one `all` p50 / p99 (ms) | querier asking 3 ingesters p50 / p99 (ms) | ratio of p50 |")
    print("| --- | ---: | ---: | ---: |")
    for name, call, runs in cases:
        for h in (s_http, q_http):
            for _ in range(3):
                call(h)
        single_p50, single_p99 = timed(lambda: call(s_http), runs)
        split_p50, split_p99 = timed(lambda: call(q_http), runs)
        print(f"| {name} | {single_p50:.1f} / {single_p99:.1f} | {split_p50:.1f} / {split_p99:.1f} | {split_p50 / single_p50:.2f} |", flush=True)


measure("Every span in the buffers")
for h in [f"127.0.0.1:{http}" for http, _ in ports] + [s_http]:
    requests.post(f"http://{h}/flush").raise_for_status()
time.sleep(5)  # the handed-off copies (1 s) expire and both sides list the store (every 2 s)
measure("Every span in blocks (the querier still asks the 3 ingesters, which hold nothing)")
for p in ingesters + [querier, single]:
    p.stop()
