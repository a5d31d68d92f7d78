#!/usr/bin/env python3
"""Decodes spanlake's trace-by-ID bodies with the official OpenTelemetry protobuf definitions (the
`opentelemetry-proto` package from PyPI), independently of spanlake's own code.

Usage: tempo_decode.py FORMAT FILE [FORMAT FILE ...]
FORMAT is one of v1-json, v2-json, v1-proto, v2-proto. The protobuf forms are parsed with message
types declared here from the field numbers of CONTRACTS.md §4 (v1: field 1 = repeated ResourceSpans;
v2: 1 = that trace, 2 = metrics {1 inspectedBytes, 2 backendReads, 3 backendBytes}, 3 = status enum,
4 = message); the JSON forms with protobuf's own JSON parser, which refuses anything that is not
valid proto3 JSON for OTLP. Prints one JSON list: per file, the TracesData as hex protobuf, plus the
v2 status and metrics.
"""
import base64
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from opentelemetry.proto.trace.v1 import trace_pb2

FIELD = descriptor_pb2.FieldDescriptorProto


def tempo_messages():
    file = descriptor_pb2.FileDescriptorProto(
        name="tempo_decode_test.proto", package="tempodecode", syntax="proto3",
        dependency=["opentelemetry/proto/trace/v1/trace.proto"])
    trace = file.message_type.add(name="Trace")
    trace.field.add(name="resource_spans", number=1, type=FIELD.TYPE_MESSAGE, label=FIELD.LABEL_REPEATED,
                    type_name=".opentelemetry.proto.trace.v1.ResourceSpans")
    metrics = file.message_type.add(name="Metrics")
    for number, name in [(1, "inspected_bytes"), (2, "backend_reads"), (3, "backend_bytes")]:
        metrics.field.add(name=name, number=number, type=FIELD.TYPE_UINT64, label=FIELD.LABEL_OPTIONAL)
    status = file.enum_type.add(name="PartialStatus")
    status.value.add(name="COMPLETE", number=0)
    status.value.add(name="PARTIAL", number=1)
    response = file.message_type.add(name="TraceByIDResponse")
    response.field.add(name="trace", number=1, type=FIELD.TYPE_MESSAGE, label=FIELD.LABEL_OPTIONAL,
                       type_name=".tempodecode.Trace")
    response.field.add(name="metrics", number=2, type=FIELD.TYPE_MESSAGE, label=FIELD.LABEL_OPTIONAL,
                       type_name=".tempodecode.Metrics")
    response.field.add(name="status", number=3, type=FIELD.TYPE_ENUM, label=FIELD.LABEL_OPTIONAL,
                       type_name=".tempodecode.PartialStatus")
    response.field.add(name="message", number=4, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    pool.Add(file)
    get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return get("tempodecode.Trace"), get("tempodecode.TraceByIDResponse")


ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def hex_ids_to_base64(value):
    """OTLP/JSON writes trace and span IDs as hex where proto3 JSON writes bytes as base64 (the one
    deviation the OTLP specification makes); undo it so protobuf's strict parser can check the rest."""
    if isinstance(value, dict):
        return {key: (base64.b64encode(bytes.fromhex(item)).decode() if key in ID_KEYS and isinstance(item, str)
                      else hex_ids_to_base64(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [hex_ids_to_base64(item) for item in value]
    return value


def from_json(value):
    return json_format.ParseDict(hex_ids_to_base64(value), trace_pb2.TracesData())


def decode(fmt, body, messages):
    trace_class, response_class = messages
    out = {}
    if fmt == "v1-json":
        document = json.loads(body)
        assert set(document) == {"batches"}, f"v1 JSON keys: {sorted(document)}"
        traces = from_json({"resourceSpans": document["batches"]})
    elif fmt == "v2-json":
        document = json.loads(body)
        traces = from_json(document["trace"])
        out["metrics"] = document.get("metrics")
    elif fmt == "v1-proto":
        traces = trace_pb2.TracesData.FromString(trace_class.FromString(body).SerializeToString())
    elif fmt == "v2-proto":
        response = response_class.FromString(body)
        traces = trace_pb2.TracesData.FromString(response.trace.SerializeToString())
        out["status"] = response_class.DESCRIPTOR.fields_by_name["status"].enum_type.values_by_number[
            response.status].name
        out["metrics"] = {"inspectedBytes": response.metrics.inspected_bytes,
                          "backendReads": response.metrics.backend_reads,
                          "backendBytes": response.metrics.backend_bytes}
    else:
        raise SystemExit(f"unknown format {fmt}")
    out["traces_data_hex"] = traces.SerializeToString(deterministic=True).hex()
    return out


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        raise SystemExit(__doc__)
    messages = tempo_messages()
    results = []
    for fmt, path in zip(args[::2], args[1::2]):
        with open(path, "rb") as f:
            results.append(decode(fmt, f.read(), messages))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
