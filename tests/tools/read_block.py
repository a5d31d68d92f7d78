"""Opens a spanlake block's Parquet file with pyarrow and DuckDB, unchanged, and reports every value they read.

Usage: read_block.py DATA_PARQUET [TRACE_ID_HEX ...]
Prints one JSON object with, per reader: the row count, the column names and Arrow types, every column's
values in file order, each row's `attributes['http.route']` as the reader's own map lookup finds it, and,
for each trace ID given, every column of the rows a `trace_id = …` filter returns, and each row's end time
as docs/storage-format.md tells users of each reader to compute it (blocks store start and duration). Values are in one
canonical JSON form for both readers (see `canonical`), so the Rust test compares them with what was
written, value for value.
"""
import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

path = sys.argv[1]
trace_ids = sys.argv[2:]

NANOS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def canonical(array):
    """One column's values as plain JSON: bytes as lowercase hex, timestamps as integer nanoseconds since
    the epoch, maps as [[key, value], ...] in stored order, lists as lists, structs as objects, null as null."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], array.type)
    kind = array.type
    if pa.types.is_timestamp(kind):
        scale = NANOS_PER_UNIT[kind.unit]
        return [None if v is None else v * scale for v in array.cast(pa.int64()).to_pylist()]
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return [None if v is None else v.hex() for v in array.to_pylist()]
    valid = array.is_valid().to_pylist()
    if pa.types.is_map(kind):
        # The keys and items of every entry the array's buffers hold; the offsets index into them.
        keys, items, offsets = canonical(array.keys), canonical(array.items), array.offsets.to_pylist()
        return [
            [[keys[i], items[i]] for i in range(offsets[row], offsets[row + 1])] if valid[row] else None
            for row in range(len(array))
        ]
    if pa.types.is_list(kind):
        # flatten() honours the array's own offset, so its elements start at the first offset.
        elements, offsets = canonical(array.flatten()), array.offsets.to_pylist()
        return [
            elements[offsets[row] - offsets[0] : offsets[row + 1] - offsets[0]] if valid[row] else None
            for row in range(len(array))
        ]
    if pa.types.is_struct(kind):
        names = [kind.field(i).name for i in range(kind.num_fields)]
        fields = [canonical(child) for child in array.flatten()]
        return [
            {name: field[row] for name, field in zip(names, fields)} if valid[row] else None
            for row in range(len(array))
        ]
    return array.to_pylist()


def values(table):
    """Every column of `table`: {name: [canonical value per row]}."""
    return {name: canonical(table.column(name)) for name in table.column_names}


def report(whole, routes, filtered, end_times):
    """What one reader saw: `whole` is the table it read, `routes` its own lookup of `http.route` in each
    row's attributes, `filtered` the table it read for each trace ID, `end_times` each row's end."""
    return {
        "end_times": canonical(end_times),
        "rows": whole.num_rows,
        "columns": whole.column_names,
        "types": {field.name: str(field.type) for field in whole.schema},
        "values": values(whole),
        "routes": canonical(routes),
        "filtered": {trace_id: values(table) for trace_id, table in filtered.items()},
    }


def thrift(data, at):
    """Decodes one Thrift compact-protocol struct of `data` starting at byte `at`: ({field id: value}, end).
    Structs become dicts, lists lists, binaries bytes. Enough of the protocol to read Parquet's footer, page
    index and page headers without Parquet's own code."""

    def varint():
        nonlocal at
        shift = result = 0
        while True:
            byte = data[at]
            at += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    def zigzag():
        n = varint()
        return (n >> 1) ^ -(n & 1)

    def value(kind):
        nonlocal at
        if kind in (1, 2):  # a boolean inside a list is one byte
            at += 1
            return data[at - 1] == 1
        if kind == 3:
            at += 1
            return data[at - 1]
        if kind in (4, 5, 6):
            return zigzag()
        if kind == 7:
            at += 8
            return data[at - 8 : at]
        if kind == 8:
            length = varint()
            at += length
            return bytes(data[at - length : at])
        if kind in (9, 10):
            header = data[at]
            at += 1
            size = header >> 4 if header >> 4 != 15 else varint()
            return [value(header & 0x0F) for _ in range(size)]
        if kind == 11:
            size = varint()
            if size == 0:
                return {}
            kinds = data[at]
            at += 1
            return {value(kinds >> 4): value(kinds & 0x0F) for _ in range(size)}
        if kind == 12:
            fields, field = {}, 0
            while True:
                header = data[at]
                at += 1
                if header == 0:
                    return fields
                field = field + (header >> 4) if header >> 4 else zigzag()
                if header & 0x0F in (1, 2):  # a boolean field carries its value in its type
                    fields[field] = header & 0x0F == 1
                else:
                    fields[field] = value(header & 0x0F)
        raise ValueError(f"Thrift type {kind} at byte {at}")

    return value(12), at


def page_index_read(trace_id):
    """The rows of `trace_id` as a reader that skips pages through the page index finds them: in each row
    group, the `trace_id` column index names the pages whose min/max admit the ID and the offset index where
    those pages' rows start; only those rows are taken (and then filtered, as a reader must). Spanlake's
    page index is decoded here with `thrift` and checked against the pages it points at (each a data page
    header whose value count is the page's row count), so a wrong index fails the read."""
    data = open(path, "rb").read()
    footer_length = int.from_bytes(data[-8:-4], "little")
    footer, _ = thrift(data, len(data) - 8 - footer_length)
    wanted = bytes.fromhex(trace_id)
    parquet = pq.ParquetFile(path)
    parts, pages_read, pages = [], 0, 0
    for group_number, group in enumerate(footer[4]):
        rows_in_group = group[3]
        chunk = next(c for c in group[1] if c[3][3] == [b"trace_id"])
        offsets, _ = thrift(data, chunk[4])
        column_index, _ = thrift(data, chunk[6])
        starts = [page[3] for page in offsets[1]] + [rows_in_group]
        for page, location in enumerate(offsets[1]):
            header, header_end = thrift(data, location[1])
            assert header[1] == 0, f"row group {group_number} page {page}: page type {header[1]}, not a data page"
            assert header_end - location[1] + header[3] == location[2], f"page {page}: size in the offset index"
            assert header[5][1] == starts[page + 1] - starts[page], f"page {page}: values and rows disagree"
        admitted = [
            page
            for page, (is_null, low, high) in enumerate(zip(column_index[1], column_index[2], column_index[3]))
            if not is_null and low <= wanted <= high
        ]
        pages, pages_read = pages + len(offsets[1]), pages_read + len(admitted)
        selected = [row for page in admitted for row in range(starts[page], starts[page + 1])]
        if selected:
            rows = parquet.read_row_group(group_number).take(pa.array(selected, pa.int64()))
            parts.append(rows.filter(pc.equal(rows.column("trace_id"), pa.scalar(wanted, rows.schema.field("trace_id").type))))
    table = pa.concat_tables(parts) if parts else parquet.schema_arrow.empty_table()
    return table, {"pages_read": pages_read, "pages": pages}


def read_with_pyarrow():
    whole = pq.read_table(path)
    routes = pc.map_lookup(whole.column("attributes"), pa.scalar("http.route"), "first")
    filtered = {}
    for trace_id in trace_ids:
        wanted = pa.scalar(bytes.fromhex(trace_id), whole.schema.field("trace_id").type)
        filtered[trace_id] = pq.read_table(path, filters=pc.field("trace_id") == wanted)
    # docs/storage-format.md, "Reading blocks with pyarrow".
    end_times = pc.add(whole.column("start_time"), whole.column("duration_ns").cast(pa.duration("ns")))
    seen = report(whole, routes, filtered, end_times)
    seen["page_index_reads"] = {}
    for trace_id in trace_ids:
        table, pages = page_index_read(trace_id)
        seen["page_index_reads"][trace_id] = {"values": values(table), **pages}
    return seen


def read_with_duckdb():
    con = duckdb.connect()

    def table(sql, *parameters):
        return con.sql(sql, params=list(parameters)).to_arrow_table()

    source = "read_parquet(?)"
    whole = table(f"SELECT * FROM {source}", path)
    routes = table(f"SELECT attributes['http.route'] AS route FROM {source}", path).column("route")
    filtered = {
        trace_id: table(f"SELECT * FROM {source} WHERE trace_id = unhex(?)", path, trace_id) for trace_id in trace_ids
    }
    # docs/storage-format.md, "Reading blocks with DuckDB".
    end_times = table(
        f"SELECT make_timestamp_ns(epoch_ns(start_time) + duration_ns) AS end_time FROM {source}", path
    ).column("end_time")
    return report(whole, routes, filtered, end_times)


json.dump({"pyarrow": read_with_pyarrow(), "duckdb": read_with_duckdb()}, sys.stdout)
