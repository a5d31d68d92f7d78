"""Opens a spanlake block's Parquet file with pyarrow and DuckDB, unchanged, and reports what they see.

Usage: read_block.py DATA_PARQUET
Prints one JSON object: per reader, the row count, column names and a few values the Rust test checks.
"""
import json
import sys

import duckdb
import pyarrow.parquet as pq

path = sys.argv[1]

table = pq.read_table(path)
pyarrow_report = {
    "rows": table.num_rows,
    "columns": table.column_names,
    "types": {name: str(table.schema.field(name).type) for name in ("trace_id", "start_time", "attributes", "events")},
    "first_trace_id": table.column("trace_id")[0].as_py().hex(),
    "server_spans": sum(1 for kind in table.column("kind").to_pylist() if kind == "server"),
    # Every row's maps in file order, as [[key, value], ...] (null for a null map).
    "maps": {
        name: [None if row is None else [[k, v] for k, v in row] for row in table.column(name).to_pylist()]
        for name in ("attributes", "resource_attributes")
    },
}

con = duckdb.connect()


def scalar(sql):
    return con.execute(sql).fetchall()[0][0]


relation = con.sql(f"SELECT * FROM read_parquet('{path}')")
duckdb_report = {
    "rows": scalar(f"SELECT count(*) FROM read_parquet('{path}')"),
    "columns": relation.columns,
    "server_spans": scalar(f"SELECT count(*) FROM read_parquet('{path}') WHERE kind = 'server'"),
    "first_trace_id": scalar(f"SELECT lower(hex(trace_id)) FROM read_parquet('{path}') LIMIT 1"),
    "routes": scalar(f"SELECT count(*) FROM read_parquet('{path}') WHERE attributes['http.route'] IS NOT NULL"),
    "services": scalar(f"SELECT count(DISTINCT service_name) FROM read_parquet('{path}')"),
    "maps": {
        name: [
            None if row[0] is None else [[entry["key"], entry["value"]] for entry in row[0]]
            for row in con.execute(f"SELECT map_entries({name}) FROM read_parquet('{path}')").fetchall()
        ]
        for name in ("attributes", "resource_attributes")
    },
}

json.dump({"pyarrow": pyarrow_report, "duckdb": duckdb_report}, sys.stdout)
