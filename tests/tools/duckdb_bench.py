"""Times queries in DuckDB over spanlake's block files, for the SQL benchmark's same-run comparison.

Usage: duckdb_bench.py GLOB RUNS THREADS < queries.json
queries.json is a list of {"name", "sql"}; `{spans}` in the SQL stands for read_parquet(GLOB). Each query
runs once to warm up, then RUNS times. Prints {name: {"median_ms", "min_ms", "rows"}} as JSON.
Results are fetched as Arrow tables, as spanlake produces them (and without Python objects per row).
"""
import json
import statistics
import sys
import time

import duckdb

glob, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
spans = f"read_parquet('{glob}')"
report = {}
for query in json.load(sys.stdin):
    sql = query["sql"].replace("{spans}", spans)
    rows = con.sql(sql).to_arrow_table()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = con.sql(sql).to_arrow_table()
        times.append((time.perf_counter() - started) * 1000)
    report[query["name"]] = {"median_ms": statistics.median(times), "min_ms": min(times), "rows": rows.num_rows}
json.dump(report, sys.stdout)
