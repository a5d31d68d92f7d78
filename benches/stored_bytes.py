#!/usr/bin/env python3
"""Bytes per span as stored: for each folder of blocks given, the `data.parquet` files' bytes per span and
their column-chunk bytes per span by top-level column (issue 25 item 4), read from the Parquet footers.

    ~/.cache/spanlake/test-tools/bin/python benches/stored_bytes.py FOLDER…
"""
import collections, glob, os, sys

import pyarrow.parquet as pq

for folder in sys.argv[1:]:
    files = glob.glob(f"{folder}/**/data.parquet", recursive=True)
    spans, file_bytes, columns = 0, 0, collections.Counter()
    for path in files:
        meta = pq.ParquetFile(path).metadata
        spans += meta.num_rows
        file_bytes += os.path.getsize(path)
        for group in range(meta.num_row_groups):
            for column in range(meta.row_group(group).num_columns):
                chunk = meta.row_group(group).column(column)
                columns[chunk.path_in_schema.split(".")[0]] += chunk.total_compressed_size
    if not spans:
        sys.exit(f"{folder}: no blocks")
    print(f"{folder}: {len(files)} blocks, {spans:,} spans, {file_bytes / spans:.2f} B/span in files, "
          f"{sum(columns.values()) / spans:.2f} in column chunks")
    print("    " + ", ".join(f"{name} {size / spans:.2f}" for name, size in columns.most_common(12)))
