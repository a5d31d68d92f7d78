#!/usr/bin/env python3
"""SQL over HTTP as a client sees it (issue 25 item 3, measured from outside): spans recorded by the
OpenTelemetry Python SDK (benches/ingest_client.py) are sent to a fresh `spanlake serve` (embedded default,
compaction off) over gRPC in 1,000-span requests, 4 in flight, or in 512-span requests with --size 512; after
`POST /flush` the blocks are exactly as ingest cut them. Each query then runs as `POST /api/sql?format=arrow`
(the Arrow stream read to the end by pyarrow) and in DuckDB (2 threads) over the same block files, in the same
run: one warm-up, median of 5. Prints a Markdown table (BENCHMARKS.md).

    SPANLAKE_BIN=target/release/spanlake ~/.cache/spanlake/test-tools/bin/python benches/sql_http.py [SPANS] [--size 512]
"""
import glob, io, os, re, shutil, statistics, subprocess, sys, tempfile, time

import duckdb
import pyarrow.ipc
import requests

BIN = os.environ.get("SPANLAKE_BIN", "target/release/spanlake")
args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
SPANS = int(args[0]) if args else 1_000_000
SIZE = int(sys.argv[sys.argv.index("--size") + 1]) if "--size" in sys.argv else 1000
STATUS = "coalesce(status_code, 'unset')"
QUERIES = [
    ("count, avg by service", "SELECT service_name, count(*), avg(duration_ns) FROM spans GROUP BY 1 ORDER BY 2 DESC",
     "SELECT service_name, count(*), avg(duration_ns) FROM spans GROUP BY 1 ORDER BY 2 DESC"),
    ("count by name", "SELECT name, count(*) FROM spans GROUP BY name",
     "SELECT name, count(*) FROM spans GROUP BY name"),
    ("count by status", "SELECT status_code, count(*) FROM spans GROUP BY status_code",
     f"SELECT {STATUS}, count(*) FROM spans GROUP BY 1"),
    ("errors by service", "SELECT service_name, count(*) FROM spans WHERE status_code = 'error' GROUP BY 1",
     "SELECT service_name, count(*) FROM spans WHERE status_code = 'error' GROUP BY 1"),
    ("attribute filter count", "SELECT count(*) FROM spans WHERE attributes['http.route'] = '/api/orders'",
     "SELECT count(*) FROM spans WHERE attributes['http.route'] = '/api/orders'"),
    ("p99 by name", "SELECT name, percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) FROM spans GROUP BY name",
     "SELECT name, quantile_cont(duration_ns, 0.99) FROM spans GROUP BY name"),
    ("spans per 10 s", "SELECT date_bin(INTERVAL '10 seconds', start_time) AS t, count(*) FROM spans GROUP BY 1 ORDER BY 1",
     "SELECT epoch_ns(start_time) // 10000000000 AS t, count(*) FROM spans GROUP BY 1 ORDER BY 1"),
    ("slowest traces", "SELECT trace_id, duration_ns FROM traces ORDER BY duration_ns DESC LIMIT 10",
     "SELECT trace_id, max(epoch_ns(start_time) + duration_ns) - min(epoch_ns(start_time)) AS d FROM spans "
     "GROUP BY trace_id ORDER BY d DESC LIMIT 10"),
]


def median_ms(run, times=5):
    run()
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        rows = run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), rows


work = tempfile.mkdtemp(prefix="spanlake-sql-http-")
server = None
try:
    subprocess.run([sys.executable, "benches/ingest_client.py", "prepare", f"{work}/pool"], check=True,
                   stdout=subprocess.DEVNULL)
    log = open(f"{work}/log", "w")
    server = subprocess.Popen([BIN, "serve", "--data-dir", f"{work}/data", "--http-addr", "127.0.0.1:0",
                               "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0",
                               "--compaction-interval", "0s"], stderr=log, stdout=subprocess.DEVNULL)
    while " ready" not in open(f"{work}/log").read():
        if server.poll() is not None:
            sys.exit(open(f"{work}/log").read())
        time.sleep(0.1)
    text = open(f"{work}/log").read()
    grpc = re.search(r"otlp_grpc_addr=([0-9.:]+)", text).group(1)
    http = re.search(r" http_addr=([0-9.:]+)", text).group(1)
    sent = subprocess.run([sys.executable, "benches/ingest_client.py", "run", f"{work}/pool", "--protocol", "grpc",
                           "--endpoint", grpc, "--size", str(SIZE), "--inflight", "4", "--spans", str(SPANS)],
                          capture_output=True, text=True, check=True)
    print(sent.stdout.strip(), file=sys.stderr)
    requests.post(f"http://{http}/flush").raise_for_status()
    files = sorted(glob.glob(f"{work}/data/**/data.parquet", recursive=True))

    def spanlake(sql):
        reply = requests.post(f"http://{http}/api/sql?format=arrow", data=sql)
        reply.raise_for_status()
        return pyarrow.ipc.open_stream(io.BytesIO(reply.content)).read_all().num_rows

    con = duckdb.connect()
    con.execute("SET threads = 2")
    # Blocks store start and duration; the end is their sum (docs/storage-format.md).
    con.execute("CREATE VIEW spans AS SELECT *, make_timestamp_ns(epoch_ns(start_time) + duration_ns) AS end_time "
                f"FROM read_parquet({files!r})")
    print(f"{len(files)} blocks as ingest cut them from {SPANS} SDK spans ({SIZE}-span gRPC requests, 4 in flight)")
    print("| query | spanlake over HTTP ms | DuckDB ms | spanlake / DuckDB | rows |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, ours, theirs in QUERIES:
        ours_ms, ours_rows = median_ms(lambda: spanlake(ours))
        theirs_ms, theirs_rows = median_ms(lambda: len(con.execute(theirs).fetchall()))
        assert ours_rows == theirs_rows, f"{name}: {ours_rows} rows vs DuckDB's {theirs_rows}"
        print(f"| {name} | {ours_ms:.1f} | {theirs_ms:.1f} | {ours_ms / theirs_ms:.2f} | {ours_rows} |")
finally:
    if server is not None:
        server.kill()
        server.wait()
    shutil.rmtree(work, ignore_errors=True)
