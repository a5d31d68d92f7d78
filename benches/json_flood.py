"""The flood of issue 26's review (item 5): N concurrent OTLP/JSON requests of ~60 MB decompressed (gzip on
the wire) against a spanlake binary started with its defaults; prints the statuses and the server's peak RSS
(VmHWM). Usage: python3 benches/json_flood.py BINARY [N=16] (ports 23200, 24317, 24318 must be free)."""
import gzip, http.client, json, os, random, subprocess, sys, tempfile, threading, time

binary = sys.argv[1]
concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
rng = random.Random(7)

def body():
    spans = []
    size = 0
    i = 0
    while size < 60_000_000:
        span = {
            "traceId": "%032x" % rng.getrandbits(128), "spanId": "%016x" % rng.getrandbits(64),
            "name": "GET /api/items/%d" % (i % 50), "kind": 2,
            "startTimeUnixNano": str(1_764_000_000_000_000_000 + i), "endTimeUnixNano": str(1_764_000_000_000_500_000 + i),
            "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}},
                           {"key": "http.route", "value": {"stringValue": "/api/items/{id}"}},
                           {"key": "http.status_code", "value": {"intValue": "200"}},
                           {"key": "note", "value": {"stringValue": "x" * 200}}],
        }
        text = json.dumps(span)
        size += len(text) + 1
        spans.append(span)
        i += 1
    request = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "flood"}}]},
                                  "scopeSpans": [{"spans": spans}]}]}
    raw = json.dumps(request).encode()
    return raw, gzip.compress(raw, 6)

raw, zipped = body()
print(f"body: {len(raw)/1e6:.1f} MB JSON, {len(zipped)/1e6:.1f} MB gzip, {len(json.loads(raw)['resourceSpans'][0]['scopeSpans'][0]['spans'])} spans", flush=True)
data = tempfile.mkdtemp()
port = 24318
proc = subprocess.Popen([binary, "serve", "--data-dir", data, "--http-addr", "127.0.0.1:23200",
                         "--otlp-grpc-addr", "127.0.0.1:24317", "--otlp-http-addr", f"127.0.0.1:{port}"],
                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(data, "log"), "w"))
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", 23200, timeout=2); c.request("GET", "/ready")
        if c.getresponse().status == 200: break
    except Exception: pass
    time.sleep(0.1)
statuses = []
def send():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/traces", zipped, {"content-type": "application/json", "content-encoding": "gzip"})
    r = c.getresponse(); r.read(); statuses.append(r.status)
threads = [threading.Thread(target=send) for _ in range(concurrency)]
started = time.time()
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.time() - started
hwm = [l for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmHWM")][0].split()[1]
print(f"{binary}: statuses {sorted(statuses)}; peak RSS {int(hwm)/1024:.0f} MiB; {elapsed:.1f} s", flush=True)
proc.terminate(); proc.wait()
