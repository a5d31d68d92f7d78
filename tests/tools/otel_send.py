#!/usr/bin/env python3
"""Sends traces with the official OpenTelemetry Python SDK's OTLP exporter and prints what it sent.

Usage: otel_send.py --protocol grpc|http --endpoint URL [--tenant T] [--header NAME=VALUE ...] [--traces N] [--gzip]

The spans are recorded in memory first, then exported in one call so the exporter's own result
(SUCCESS or FAILURE) is reported. Output: one JSON object with the result, every span as sent, and
`request_hex`: the ExportTraceServiceRequest the exporter put on the wire, encoded by the SDK's own
OTLP encoder (hex of the protobuf bytes).
"""
import argparse
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def record_traces(count):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout", "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("spanlake.tests", "1.2.3")
    for index in range(count):
        with tracer.start_as_current_span(
            "POST /orders",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/orders", "http.status_code": 200 + index, "ratio": 0.25, "cached": False,
                        "tags": ["a", "b"]},
        ) as root:
            with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT,
                                              links=[Link(root.get_span_context(), {"why": "retry"})]) as child:
                child.add_event("rows fetched", {"rows": 3})
                if index % 2 == 1:
                    child.set_status(Status(StatusCode.ERROR, "deadlock"))
    provider.shutdown()
    return memory.get_finished_spans()


def describe(span):
    return {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "attributes": {key: (list(value) if isinstance(value, tuple) else value) for key, value in span.attributes.items()},
        "events": [event.name for event in span.events],
        "links": len(span.links),
        "status": span.status.status_code.name.lower(),
        "status_message": span.status.description or "",
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--tenant")
    parser.add_argument("--traces", type=int, default=3)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--header", action="append", default=[],
                        help="extra header (gRPC metadata), e.g. authorization=Bearer x; repeatable")
    args = parser.parse_args()
    # gRPC metadata keys must be lowercase; HTTP headers are case-insensitive.
    headers = {"x-scope-orgid": args.tenant} if args.tenant else {}
    for header in args.header:
        name, _, value = header.partition("=")
        headers[name.lower()] = value
    headers = headers or None
    spans = record_traces(args.traces)
    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from grpc import Compression
        compression = Compression.Gzip if args.gzip else None
        # An https:// endpoint: TLS, with the CA and client certificate from the SDK's standard variables
        # (OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE).
        insecure = not args.endpoint.startswith("https://")
        exporter = OTLPSpanExporter(endpoint=args.endpoint, insecure=insecure, headers=headers, compression=compression)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http import Compression
        compression = Compression.Gzip if args.gzip else Compression.NoCompression
        exporter = OTLPSpanExporter(endpoint=args.endpoint, headers=headers, compression=compression)
    result = exporter.export(spans)
    exporter.shutdown()
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    request_hex = encode_spans(spans).SerializeToString().hex()
    json.dump({"result": result.name, "spans": [describe(span) for span in spans], "request_hex": request_hex},
              sys.stdout)


if __name__ == "__main__":
    main()
