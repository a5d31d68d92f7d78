#!/usr/bin/env python3
"""Does compaction keep up with ingest (issue 25, item 5)? `spanlake serve` (local folder, compaction on with
its defaults) takes `spanlake loadgen` at a fixed rate (default 150 k spans/s, 1,000-span gRPC requests, 4 in
flight) for a while (default 10 minutes); every 15 s the server's own /metrics and the block folder are
sampled. Prints a Markdown table (BENCHMARKS.md, "Compaction keeps up with ingest").

    SPANLAKE_BIN=target/release/spanlake ~/.cache/spanlake/test-tools/bin/python benches/compaction_keeps_up.py \
        [SECONDS] [RATE] [-- EXTRA SERVE FLAGS]

Columns: spans acknowledged per second over the interval (`spanlake_spans_accepted_total`), requests
refused for backpressure, visible blocks (committed and not replaced by a compacted block) and how many of
them are still as ingest cut them (compaction level 0), the compactor's own count of blocks waiting for a
merge (`spanlake_compaction_blocks_outstanding`), server RSS and CPU share (of one core).
"""
import glob, json, os, re, subprocess, sys, tempfile, time

import requests

BIN = os.environ.get("SPANLAKE_BIN", "target/release/spanlake")
args = sys.argv[1:]
extra = args[args.index("--") + 1:] if "--" in args else []
args = args[: args.index("--")] if "--" in args else args
seconds = int(args[0]) if args else 600
rate = int(args[1]) if len(args) > 1 else 150_000
work = tempfile.mkdtemp(prefix="spanlake-compaction-keeps-up-")
log = open(f"{work}/log", "w")
server = subprocess.Popen([BIN, "serve", "--data-dir", f"{work}/data", "--http-addr", "127.0.0.1:0",
                           "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0", *extra],
                          stderr=log, stdout=subprocess.DEVNULL)


def addr(name):
    while True:
        text = open(f"{work}/log").read()
        m = re.search(name + r"=([0-9.:]+)", text)
        if m and " ready" in text:
            return m.group(1)
        if server.poll() is not None:
            sys.exit(f"server exited: {text}")
        time.sleep(0.1)


grpc, http = addr("otlp_grpc_addr"), addr(" http_addr")


def metrics():
    values = {}
    for line in requests.get(f"http://{http}/metrics").text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{")[0]
        values[base] = values.get(base, 0.0) + float(value)
    return values


def blocks():
    metas = []
    for path in glob.glob(f"{work}/data/blocks/**/meta.json", recursive=True):
        try:
            metas.append(json.load(open(path)))
        except (OSError, ValueError):
            pass  # deleted or being written between the listing and the read
    replaced = {block for meta in metas for block in meta.get("replaces", [])}
    visible = [meta for meta in metas if meta["block_id"] not in replaced]
    return len(visible), sum(1 for meta in visible if meta["compaction_level"] == 0), sum(m["span_count"] for m in visible)


def process():
    status = open(f"/proc/{server.pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
    fields = open(f"/proc/{server.pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


load = subprocess.Popen([BIN, "loadgen", "--endpoint", f"http://{grpc}", "--rate", str(rate), "--duration",
                         f"{seconds}s", "--spans-per-request", "1000", "--concurrency", "4"],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
rows, peak_rss, started = [], 0, time.time()
last = (started, metrics(), process()[1])
print(f"| s | acked spans/s | refused | visible blocks | of them level 0 | outstanding | spans stored | RSS MiB | CPU |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
while load.poll() is None:
    time.sleep(15)
    now, m, (rss, cpu) = time.time(), metrics(), process()
    peak_rss = max(peak_rss, rss)
    then, before, cpu_before = last
    acked = (m.get("spanlake_spans_accepted_total", 0) - before.get("spanlake_spans_accepted_total", 0)) / (now - then)
    refused = m.get("spanlake_requests_refused_total", 0) - before.get("spanlake_requests_refused_total", 0)
    visible, level0, stored = blocks()
    outstanding = m.get("spanlake_compaction_blocks_outstanding", 0)
    print(f"| {now - started:.0f} | {acked:,.0f} | {refused:.0f} | {visible} | {level0} | {outstanding:.0f} | "
          f"{stored:,} | {rss / 2**20:.0f} | {(cpu - cpu_before) / (now - then):.2f} |", flush=True)
    rows.append((acked, visible, level0))
    last = (now, m, cpu)
report = load.stdout.read().strip().splitlines()
print("\nloadgen: " + " / ".join(line.strip() for line in report[-3:]))
print(f"peak RSS {peak_rss / 2**20:.0f} MiB; visible blocks at the end {rows[-1][1] if rows else '-'}, "
      f"most during the run {max((r[1] for r in rows), default=0)}")
server.terminate()
server.wait()
