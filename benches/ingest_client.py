#!/usr/bin/env python3
"""An OTLP load client that is not spanlake's: the OpenTelemetry Python SDK records the spans and its OTLP
encoder encodes them; they go out through the transports its exporters use (grpcio for OTLP/gRPC, requests
for OTLP/HTTP), with the request sizes and concurrency real clients have (issue 25).

    ingest_client.py prepare DIR            records a pool of SDK spans, encodes it in every request size
    ingest_client.py run DIR --protocol grpc|http --endpoint HOST:PORT --size N --inflight K
                         [--gzip] [--spans TOTAL]

`prepare` writes, per request size, the pool cut into requests: 512 spans (the SDK's BatchSpanProcessor
default: one service per request) or 1,000-8,192 (Collector batches: many services per request). The pool
holds more spans than a block (65,536 + the largest size), so a block is cut from distinct spans even when
the run cycles through the pool. `run` keeps K requests in flight until TOTAL spans are acknowledged and
prints one JSON line: spans/s, acknowledgement latency p50/p99 (ms), requests, failures. With --gzip, HTTP
bodies are compressed beforehand (what the HTTP exporter sends), gRPC messages by grpcio as the gRPC
exporter's `compression=gzip` does (that costs the client CPU per request).
"""
import argparse
import gzip
import json
import os
import pickle
import random
import sys
import threading
import time

SIZES = [512, 1000, 2048, 8192]
POOL_SPANS = 65_536 + max(SIZES)
SERVICES = ["frontend", "checkout", "cart", "payment", "shipping", "currency", "email", "recommendation"]
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def record_pool():
    """SDK spans shaped like an instrumented HTTP service's: a server span, client and database calls."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

    rng = random.Random(25)
    by_service = {}
    per_service = POOL_SPANS // len(SERVICES) + 1
    start = time.time_ns() - 3_600 * 10**9
    for service in SERVICES:
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({
            "service.name": service, "service.version": "1.4.2", "deployment.environment": "production",
            "host.name": f"{service}-7d9f8c-{rng.randrange(10**5):05d}", "k8s.namespace.name": "shop",
            "k8s.pod.name": f"{service}-7d9f8c-x{rng.randrange(10**4):04d}", "process.runtime.name": "cpython",
        }))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("opentelemetry.instrumentation.flask", "0.56b0")
        spans = 0
        while spans < per_service:
            begin = start + rng.randrange(3_600 * 10**9)
            route = rng.choice(["/api/orders", "/api/cart/{id}", "/api/products", "/api/checkout", "/healthz"])
            status = rng.choice([200] * 18 + [404, 500])
            root = tracer.start_span(f"GET {route}", kind=SpanKind.SERVER, start_time=begin, attributes={
                "http.request.method": "GET", "http.route": route, "url.path": route.replace("{id}", str(rng.randrange(10**6))),
                "url.scheme": "http", "server.address": f"{service}.shop.svc", "server.port": 8080,
                "http.response.status_code": status, "network.protocol.version": "1.1",
                "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
                "client.address": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
            })
            context = set_span_in_context(root)
            at = begin + rng.randrange(10**5, 10**6)
            for call in range(rng.randrange(2, 7)):
                if rng.random() < 0.5:
                    child = tracer.start_span("SELECT shop.orders", context=context, kind=SpanKind.CLIENT, start_time=at,
                                              attributes={"db.system": "postgresql", "db.namespace": "shop",
                                                          "db.operation.name": "SELECT",
                                                          "db.query.text": "SELECT id, total FROM orders WHERE user_id = $1",
                                                          "server.address": "postgres.shop.svc", "server.port": 5432})
                else:
                    peer = rng.choice(SERVICES)
                    child = tracer.start_span("POST", context=context, kind=SpanKind.CLIENT, start_time=at, attributes={
                        "http.request.method": "POST", "server.address": f"{peer}.shop.svc", "server.port": 8080,
                        "url.full": f"http://{peer}.shop.svc:8080/api/{call}", "http.response.status_code": 200})
                if rng.random() < 0.1:
                    child.add_event("exception", {"exception.type": "TimeoutError", "exception.message": "deadline"},
                                    timestamp=at + 1000)
                    child.set_status(Status(StatusCode.ERROR, "deadline exceeded"))
                at += rng.randrange(10**5, 5 * 10**7)
                child.end(end_time=at)
                spans += 1
            if status >= 500:
                root.set_status(Status(StatusCode.ERROR))
            root.end(end_time=at + rng.randrange(10**5, 10**6))
            spans += 1
        provider.force_flush()
        by_service[service] = list(memory.get_finished_spans())
    return by_service


def prepare(directory):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    os.makedirs(directory, exist_ok=True)
    by_service = record_pool()
    interleaved = [span for group in zip(*by_service.values()) for span in group]
    for size in SIZES:
        requests = []
        if size == 512:
            # The SDK's batches: one process's spans.
            for spans in by_service.values():
                requests += [spans[i:i + size] for i in range(0, len(spans) - size + 1, size)]
        else:
            requests = [interleaved[i:i + size] for i in range(0, len(interleaved) - size + 1, size)]
        encoded = [encode_spans(batch).SerializeToString() for batch in requests]
        with open(os.path.join(directory, f"pool-{size}.pickle"), "wb") as out:
            pickle.dump(encoded, out)
        total = sum(len(body) for body in encoded)
        print(f"size {size}: {len(encoded)} requests, {total / (len(encoded) * size):.0f} bytes/span", file=sys.stderr)


def run(args):
    with open(os.path.join(args.dir, f"pool-{args.size}.pickle"), "rb") as pool_file:
        pool = pickle.load(pool_file)
    if args.gzip and args.protocol == "http":
        pool = [gzip.compress(body, compresslevel=6) for body in pool]
    requests_needed = -(-args.spans // args.size)
    next_request = iter(range(requests_needed)).__next__
    take = threading.Lock()
    latencies, failures = [], []

    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    if args.protocol == "grpc":
        import grpc
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        compression = grpc.Compression.Gzip if args.gzip else grpc.Compression.NoCompression
        if args.ca:
            with open(args.ca, "rb") as ca:
                credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
            channel = grpc.secure_channel(args.endpoint, credentials, options=options, compression=compression)
        else:
            channel = grpc.insecure_channel(args.endpoint, options=options, compression=compression)
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)

        def send(body):
            export(body, timeout=30, metadata=metadata)
    else:
        import requests
        url = f"{'https' if args.ca else 'http'}://{args.endpoint}/v1/traces"
        headers = {"Content-Type": "application/x-protobuf", **dict(metadata)}
        if args.gzip:
            headers["Content-Encoding"] = "gzip"
        local = threading.local()

        def send(body):
            if not hasattr(local, "session"):
                local.session = requests.Session()
            reply = local.session.post(url, data=body, headers=headers, timeout=30, verify=args.ca or True)
            if reply.status_code != 200:
                raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:200]}")

    def worker():
        while True:
            with take:
                try:
                    index = next_request()
                except StopIteration:
                    return
            body = pool[index % len(pool)]
            began = time.perf_counter()
            try:
                send(body)
            except Exception as error:  # a refused request is counted, never retried into the figure
                failures.append(str(error)[:200])
                continue
            latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=worker) for _ in range(args.inflight)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()

    def percentile(p):
        return round(latencies[min(len(latencies) - 1, int(round((len(latencies) - 1) * p)))] * 1000, 2) if latencies else None

    print(json.dumps({
        "protocol": args.protocol, "size": args.size, "inflight": args.inflight, "gzip": args.gzip,
        "acknowledged_spans": len(latencies) * args.size, "seconds": round(elapsed, 3),
        "spans_per_s": round(len(latencies) * args.size / elapsed), "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99), "requests": len(latencies), "failures": len(failures),
        "first_failure": failures[0] if failures else None,
    }))
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_parser = commands.add_parser("prepare")
    prepare_parser.add_argument("dir")
    run_parser = commands.add_parser("run")
    run_parser.add_argument("dir")
    run_parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    run_parser.add_argument("--endpoint", required=True, help="HOST:PORT of the receiver")
    run_parser.add_argument("--size", type=int, choices=SIZES, required=True)
    run_parser.add_argument("--inflight", type=int, default=4)
    run_parser.add_argument("--gzip", action="store_true")
    run_parser.add_argument("--spans", type=int, default=1_000_000)
    run_parser.add_argument("--token", help="bearer token, for a server with auth on")
    run_parser.add_argument("--ca", help="CA file: connect over TLS (https, a secure gRPC channel)")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.dir)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
