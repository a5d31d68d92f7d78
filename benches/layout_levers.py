#!/usr/bin/env python3
"""Bytes per span, lever by lever (issue 25 item 4): rewrites the rows of real spanlake blocks with pyarrow in
alternative layouts and prints the Parquet column-chunk bytes per span of each, so a format change is chosen
on measured figures before it is built. Nothing here is spanlake's writer: every layout, the baseline
included, is written by pyarrow with the block writer's main settings (ZSTD level 3, 16,384-row row
groups, no dictionary on attribute values), and each lever is read against that baseline, in the same run.

    ~/.cache/spanlake/test-tools/bin/python benches/layout_levers.py BLOCK.parquet… [--rows N]

Levers (each alone on top of the baseline, then the ones that save bytes together):
  end_time        not stored: end_time = start_time + duration_ns (readers derive it)
  parent_ref      parent_span_id as the parent's row offset within the trace (int32; -1 for a root; the
                  8-byte ID stays only for parents outside the block)
  delta_times     start_time and duration_ns with DELTA_BINARY_PACKED before ZSTD
  typed_values    attribute values that are integers or doubles stored as int64 / float64 children
  key_columns     the 16 most frequent span-attribute keys as their own columns, the rest in the map
  value_dict      dictionary encoding on attribute values
  resource_ref    resource attributes once per distinct resource (a side table) and an int32 per span
  sort_resource   rows within a trace ordered by (service, start time) instead of start time
"""
import argparse, collections, io, sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROW_GROUP = 16_384


def leaf_paths(table):
    """Every leaf column's dotted path, as Parquet names it."""
    sink = io.BytesIO()
    pq.write_table(table.slice(0, 1), sink)
    schema = pq.ParquetFile(io.BytesIO(sink.getvalue())).schema
    return [schema.column(i).path for i in range(len(schema))]


def write_sizes(table, dictionary_values=False, encodings=None):
    """Column-chunk bytes by top-level column after writing `table` the block writer's way: dictionaries
    on every column but attribute values (unless `dictionary_values`), `encodings` by leaf path."""
    encodings = encodings or {}
    values = lambda path: path.endswith("key_value.value") or ".value." in path or path.startswith("key_")
    dictionary = [p for p in leaf_paths(table) if p not in encodings and (dictionary_values or not values(p))]
    sink = io.BytesIO()
    options = dict(compression="zstd", compression_level=3, row_group_size=ROW_GROUP, use_dictionary=dictionary)
    if encodings:
        options["column_encoding"] = encodings
    pq.write_table(table, sink, **options)
    meta = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata
    sizes = collections.Counter()
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            sizes[chunk.path_in_schema.split(".")[0]] += chunk.total_compressed_size
    return sizes


def drop_end_time(t):
    return t.drop_columns(["end_time"])


def parent_ref(t):
    """Parent as a row offset within the same trace, when the parent is in the block."""
    trace = t.column("trace_id").to_pylist()
    span = t.column("span_id").to_pylist()
    parent = t.column("parent_span_id").to_pylist()
    where = {(tr, s): i for i, (tr, s) in enumerate(zip(trace, span))}
    offsets, outside = [], []
    for i, (tr, p) in enumerate(zip(trace, parent)):
        if p is None:
            offsets.append(-1)
            outside.append(None)
        elif (tr, p) in where:
            offsets.append(where[(tr, p)] - i)
            outside.append(None)
        else:
            offsets.append(None)
            outside.append(p)
    t = t.drop_columns(["parent_span_id"])
    t = t.append_column("parent_row", pa.array(offsets, pa.int32()))
    return t.append_column("parent_span_id", pa.array(outside, pa.binary(8)))


def map_parts(t, column):
    m = t.column(column).combine_chunks()
    return m.offsets, m.keys, m.items


def classify(values):
    """Per value: int64, float64 or text, by how the text parses (what `attribute_types` records)."""
    text = values.to_pylist()
    ints, doubles, rest = [], [], []
    for v in text:
        i = d = s = None
        if v is not None:
            try:
                if v.lstrip("-").isdigit() and len(v) < 19:
                    i = int(v)
                elif any(ch in v for ch in ".eE") and v.replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).replace("E", "", 1).replace("+", "", 1).isdigit():
                    d = float(v)
                else:
                    s = v
            except ValueError:
                s = v
        ints.append(i)
        doubles.append(d)
        rest.append(s)
    return pa.array(rest, pa.string()), pa.array(ints, pa.int64()), pa.array(doubles, pa.float64())


def typed_values(t, column="attributes"):
    offsets, keys, values = map_parts(t, column)
    s, i, d = classify(values)
    items = pa.StructArray.from_arrays([s, i, d], ["str", "int", "double"])
    typed = pa.MapArray.from_arrays(offsets, keys, items)
    index = t.column_names.index(column)
    return t.set_column(index, column, typed)


def key_columns(t, column="attributes", top=16):
    offsets, keys, values = map_parts(t, column)
    counts = collections.Counter(keys.to_pylist())
    chosen = [k for k, _ in counts.most_common(top)]
    rows = t.num_rows
    off = offsets.to_pylist()
    key_list, value_list = keys.to_pylist(), values.to_pylist()
    dedicated = {k: [None] * rows for k in chosen}
    rest_offsets, rest_keys, rest_values = [0], [], []
    for r in range(rows):
        for j in range(off[r], off[r + 1]):
            k = key_list[j]
            if k in dedicated:
                dedicated[k][r] = value_list[j]
            else:
                rest_keys.append(k)
                rest_values.append(value_list[j])
        rest_offsets.append(len(rest_keys))
    rest = pa.MapArray.from_arrays(pa.array(rest_offsets, pa.int32()), pa.array(rest_keys, pa.string()), pa.array(rest_values, pa.string()))
    t = t.set_column(t.column_names.index(column), column, rest)
    for k in chosen:
        t = t.append_column("key_" + k, pa.array(dedicated[k], pa.string()))
    return t


def resource_ref(t):
    resources = t.column("resource_attributes").to_pylist()
    ids, table = [], {}
    for r in resources:
        key = tuple(sorted((k, v) for k, v in r)) if r else ()
        ids.append(table.setdefault(key, len(table)))
    side = pa.table({"resource": pa.array([dict(k) and list(k) for k in table], pa.map_(pa.string(), pa.string()))})
    t = t.drop_columns(["resource_attributes"]).append_column("resource_row", pa.array(ids, pa.int32()))
    return t, side


def sort_resource(t, blocks):
    """Re-sorts each block's rows on its own (blocks never share a sort)."""
    keys = [("trace_id", "ascending"), ("service_name", "ascending"), ("start_time", "ascending")]
    return pa.concat_tables([t.slice(start, length).sort_by(keys) for start, length in blocks]).combine_chunks()


def per_span(sizes, rows, extra=0):
    return (sum(sizes.values()) + extra) / rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("blocks", nargs="+")
    parser.add_argument("--rows", type=int, default=262_144, help="rows read from the blocks (the first N)")
    args = parser.parse_args()
    parts, blocks, rows = [], [], 0
    for path in args.blocks:
        file = pq.ParquetFile(path)
        start = rows
        for g in range(file.num_row_groups):
            if rows >= args.rows:
                break
            part = file.read_row_group(g)
            parts.append(part)
            rows += part.num_rows
        if rows > start:
            blocks.append((start, min(rows, args.rows) - start))
    base = pa.concat_tables(parts).slice(0, args.rows).combine_chunks()
    rows = base.num_rows

    stored = collections.Counter()
    for path in args.blocks:
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.row_group(g).num_columns):
                chunk = meta.row_group(g).column(c)
                stored[chunk.path_in_schema.split(".")[0]] += chunk.total_compressed_size
    stored_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in args.blocks)

    baseline = write_sizes(base)
    print(f"{rows} rows; spanlake's writer stored {per_span(stored, stored_rows):.2f} B/span "
          f"({stored_rows} rows); pyarrow baseline {per_span(baseline, rows):.2f} B/span\n")
    print("| column | spanlake B/span | pyarrow baseline B/span |\n| --- | ---: | ---: |")
    for name, size in baseline.most_common():
        print(f"| {name} | {stored[name] / stored_rows:.2f} | {size / rows:.2f} |")

    results = []

    def lever(name, table, side_bytes=0, **options):
        sizes = write_sizes(table, **options)
        value = per_span(sizes, rows, side_bytes)
        results.append((name, value))
        print(f"  {name}: {value:.2f}", file=sys.stderr)
        return sizes

    lever("baseline", base)
    lever("end_time", drop_end_time(base))
    lever("parent_ref", parent_ref(base))
    lever("delta_times", base, encodings={c: "DELTA_BINARY_PACKED" for c in ["start_time", "duration_ns", "end_time"]})
    lever("typed_values", typed_values(base))
    lever("key_columns", key_columns(base))
    lever("value_dict", base, dictionary_values=True)
    with_refs, side = resource_ref(base)
    side_bytes = sum(write_sizes(side).values())
    lever("resource_ref", with_refs, side_bytes)
    lever("sort_resource", sort_resource(base, blocks))

    together, side = resource_ref(parent_ref(drop_end_time(sort_resource(base, blocks))))
    side_bytes = sum(write_sizes(side).values())
    times = {c: "DELTA_BINARY_PACKED" for c in ["start_time", "duration_ns"]}
    combined = "end_time + parent_ref + resource_ref + sort_resource + delta_times + value_dict"
    sizes = lever(combined, together, side_bytes, dictionary_values=True, encodings=times)
    print(f"\n{combined}, by column:\n\n| column | B/span |\n| --- | ---: |")
    for name, size in sizes.most_common(12):
        print(f"| {name} | {size / rows:.2f} |")
    print("\n| layout | B/span | vs baseline |\n| --- | ---: | ---: |")
    first = results[0][1]
    for name, value in results:
        print(f"| {name} | {value:.2f} | {value - first:+.2f} |")


if __name__ == "__main__":
    main()
