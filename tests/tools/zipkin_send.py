#!/usr/bin/env python3
"""Sends traces with the OpenTelemetry Python SDK's Zipkin exporters (JSON or protobuf) and prints what
it sent.

Usage: zipkin_send.py --encoding json|proto --endpoint URL [--tenant T] [--header NAME=VALUE ...]
                      [--traces N] [--local-ipv4 IP] [--local-port PORT]

Runs in the virtualenv of requirements-zipkin-proto.txt (the protobuf exporter needs protobuf<4). The
spans are recorded in memory first, then exported in one call, so the exporter's own result (SUCCESS or
FAILURE: it succeeds on 200 or 202 only) is reported. Output: one JSON object with the result, every span
as the SDK recorded it (`spans`), and every span as the exporter put it on the wire (`wire`: the Zipkin
fields, decoded back from the exporter's own encoding).
"""
import argparse
import json
import sys

import requests
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

# Attributes a span may keep; the "crowded" span has more, so its dropped count reaches the wire.
MAX_ATTRIBUTES = 12


def record_traces(count):
    memory = InMemorySpanExporter()
    resource = Resource.create({
        "service.name": "inventory",
        "service.version": "2.4.1",
        "host.name": "inventory-7f9c",
        "deployment.environment.name": "test",
        "team": "stock",
    })
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_span_attributes=MAX_ATTRIBUTES))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("spanlake.zipkin.tests", "0.9.0")
    for index in range(count):
        with tracer.start_as_current_span(
            "GET /items/{id}",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/items/{id}", "http.response.status_code": 200 + index, "ratio": 0.5,
                        "cached": True, "sizes": [1, 2, 3], "labels": ["a", "b|c"]},
        ) as root:
            root.add_event("cache miss", {"key": "item:%d" % index, "attempt": 2, "weight": 1.5, "hot": False,
                                          "shards": ["s1", "s2"]})
            root.set_status(Status(StatusCode.OK))
            with tracer.start_as_current_span("SELECT items", kind=SpanKind.CLIENT,
                                              links=[Link(root.get_span_context(), {"why": "retry"})]) as query:
                query.set_attribute("db.system", "postgresql")
                if index % 2 == 1:
                    query.set_status(Status(StatusCode.ERROR, "deadlock detected"))
            with tracer.start_as_current_span("render", kind=SpanKind.INTERNAL) as render:
                render.add_event("template loaded")
                for number in range(MAX_ATTRIBUTES + 3):
                    render.set_attribute("field.%d" % number, number)
            with tracer.start_as_current_span("publish item.viewed", kind=SpanKind.PRODUCER) as publish:
                publish.set_status(Status(StatusCode.ERROR))
    provider.shutdown()
    return memory.get_finished_spans()


def plain(value):
    return list(value) if isinstance(value, tuple) else value


def describe(span):
    return {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "attributes": {key: plain(value) for key, value in span.attributes.items()},
        "resource": {key: plain(value) for key, value in span.resource.attributes.items()},
        "scope": [span.instrumentation_scope.name, span.instrumentation_scope.version],
        "events": [{"name": event.name, "attributes": {k: plain(v) for k, v in event.attributes.items()}}
                   for event in span.events],
        "links": len(span.links),
        "dropped_attributes": span.dropped_attributes,
        "status": span.status.status_code.name.lower(),
        "status_message": span.status.description or "",
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
    }


def wire_from_json(body):
    return json.loads(body)


def wire_from_proto(body):
    """The protobuf body in the JSON form's field names, so the tests read one shape."""
    from opentelemetry.exporter.zipkin.proto.http.v2.gen import zipkin_pb2
    import ipaddress
    listed = zipkin_pb2.ListOfSpans()
    listed.ParseFromString(body)
    kinds = {0: None, 1: "CLIENT", 2: "SERVER", 3: "PRODUCER", 4: "CONSUMER"}
    spans = []
    for span in listed.spans:
        endpoint = {"serviceName": span.local_endpoint.service_name}
        if span.local_endpoint.ipv4:
            endpoint["ipv4"] = str(ipaddress.IPv4Address(span.local_endpoint.ipv4))
        if span.local_endpoint.port:
            endpoint["port"] = span.local_endpoint.port
        encoded = {
            "traceId": span.trace_id.hex(),
            "id": span.id.hex(),
            "name": span.name,
            "timestamp": span.timestamp,
            "duration": span.duration,
            "kind": kinds[span.kind],
            "localEndpoint": endpoint,
            "tags": dict(span.tags),
            "annotations": [{"timestamp": a.timestamp, "value": a.value} for a in span.annotations],
            "debug": span.debug,
        }
        if span.parent_id:
            encoded["parentId"] = span.parent_id.hex()
        spans.append(encoded)
    return spans


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoding", choices=["json", "proto"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--tenant")
    parser.add_argument("--traces", type=int, default=2)
    parser.add_argument("--local-ipv4")
    parser.add_argument("--local-port", type=int)
    parser.add_argument("--header", action="append", default=[], help="extra header, e.g. authorization=Bearer x")
    args = parser.parse_args()
    # The exporters take no headers of their own; a session carries the tenant and credentials.
    session = requests.Session()
    if args.tenant:
        session.headers["X-Scope-OrgID"] = args.tenant
    for header in args.header:
        name, _, value = header.partition("=")
        session.headers[name] = value
    options = dict(endpoint=args.endpoint, session=session, local_node_ipv4=args.local_ipv4,
                   local_node_port=args.local_port)
    if args.encoding == "json":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter
        exporter = ZipkinExporter(**options)
    else:
        from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter
        exporter = ZipkinExporter(**options)
    spans = record_traces(args.traces)
    result = exporter.export(spans)
    # The exporter's own encoding of the batch it just sent (its local endpoint now carries the service).
    body = exporter.encoder.serialize(spans, exporter.local_node)
    wire = wire_from_json(body) if args.encoding == "json" else wire_from_proto(body)
    exporter.shutdown()
    json.dump({"result": result.name, "spans": [describe(span) for span in spans], "wire": wire}, sys.stdout)


if __name__ == "__main__":
    main()
