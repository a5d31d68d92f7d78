#!/usr/bin/env python3
"""Search on blocks as ingest writes them (issue 24): `spanlake loadgen` -> `spanlake serve` (local folder,
compaction off) -> POST /flush -> Grafana's searches over HTTP, and DuckDB on the same block files, in the
same run. Prints a Markdown table (BENCHMARKS.md, "Search on blocks as ingest writes them").

    SPANLAKE_BIN=target/release/spanlake ~/.cache/spanlake/test-tools/bin/python benches/search_ingested.py [SECONDS]
"""
import glob, json, os, re, statistics, subprocess, sys, tempfile, time
import requests, duckdb
BIN = os.environ.get("SPANLAKE_BIN", "target/release/spanlake")
work = tempfile.mkdtemp(prefix="spanlake-search-ingested-")
log = open(f"{work}/log", "w")
server = subprocess.Popen([BIN, "serve", "--data-dir", f"{work}/data", "--http-addr", "127.0.0.1:0",
                           "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0", "--compaction-interval", "0s"], stderr=log, stdout=subprocess.DEVNULL)
def addr(name):
    while True:
        text = open(f"{work}/log").read()
        m = re.search(name + r"=([0-9.:]+)", text)
        if m and " ready" in text: return m.group(1)
        time.sleep(0.1)
grpc, http = addr("otlp_grpc_addr"), addr(" http_addr")
seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
out = subprocess.run([BIN, "loadgen", "--endpoint", f"http://{grpc}", "--rate", "150000", "--duration", f"{seconds}s",
                      "--spans-per-request", "1000", "--concurrency", "4"], capture_output=True, text=True)
print(out.stdout.strip().splitlines()[-3:], file=sys.stderr)
requests.post(f"http://{http}/flush").raise_for_status()
files = glob.glob(f"{work}/data/**/*.parquet", recursive=True)
metas = glob.glob(f"{work}/data/**/meta.json", recursive=True)
spans = sum(json.load(open(m)).get("span_count", 0) for m in metas)
print(f"{len(files)} blocks, {spans} spans", file=sys.stderr)
now = int(time.time())
def search(q, start=None, end=None):
    params = {"q": q, "limit": 20, "spss": 3}
    if start: params.update(start=start, end=end)
    t = time.perf_counter(); r = requests.get(f"http://{http}/api/search", params=params); dt = (time.perf_counter() - t) * 1000
    r.raise_for_status(); return dt, r.json()
cases = [
    ("(a) one service, last hour", '{resource.service.name="checkout"}', (now - 3600, now + 60),
     "SELECT trace_id, epoch_ns(min(start_time)) FROM spans WHERE service_name = 'checkout' GROUP BY trace_id ORDER BY 2 DESC, 1 LIMIT 20"),
    ("(b) 5xx slower than 100 ms", "{span.http.response.status_code >= 500 && duration > 100ms}", None,
     "SELECT trace_id, epoch_ns(min(start_time)) FROM spans WHERE TRY_CAST(attributes['http.response.status_code'] AS DOUBLE) >= 500 AND duration_ns > 100000000 GROUP BY trace_id ORDER BY 2 DESC, 1 LIMIT 20"),
    ("(d) frontend >> error", '{resource.service.name="frontend"} >> {status=error}', None, None),
]
con = duckdb.connect(); con.execute("SET threads=2")
con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet({files!r})")
print(f"{len(files)} blocks as ingest cut them, {spans} spans; loadgen 1,000-span gRPC requests, 4 in flight")
print("| search | spanlake p50 / p99 ms | traces | DuckDB median ms | ratio |")
print("| --- | ---: | ---: | ---: | ---: |")
for name, q, window, duck in cases:
    for _ in range(3): search(q, *(window or (None, None)))
    times = sorted(search(q, *(window or (None, None)))[0] for _ in range(30))
    traces = len(search(q, *(window or (None, None)))[1].get("traces", []))
    p50, p99 = times[len(times)//2], times[-1]
    if duck:
        con.execute(duck).fetchall()
        dts = []
        for _ in range(5):
            t = time.perf_counter(); con.execute(duck).fetchall(); dts.append((time.perf_counter() - t) * 1000)
        dm = statistics.median(dts); ratio = f"{p50/dm:.2f}"; dm = f"{dm:.1f}"
    else:
        dm, ratio = "—", "—"
    print(f"| {name} | {p50:.1f} / {p99:.1f} | {traces} | {dm} | {ratio} |")
server.terminate(); server.wait()
import shutil; shutil.rmtree(work, ignore_errors=True)
