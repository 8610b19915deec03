"""A cache entry as bytes for the shared tier: an Arrow IPC stream (zstd-compressed buffers, so
types stay exact and decoding is a copy), with the entry's own fields as JSON in the schema's
metadata. Ages travel as wall-clock time (replicas share no monotonic clock)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pyarrow as pa

from tally.cache.result_cache import CacheEntry

_META = b"tally.entry"
_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def encode(entry: CacheEntry, clock: Callable[[], float]) -> bytes:
    meta = {
        "sql": entry.sql,
        "stored_wall": time.time() - entry.age(clock()),
        "ttl_seconds": entry.ttl_seconds,
        "compile_ms": entry.compile_ms,
        "execute_ms": entry.execute_ms,
        "order": list(entry.extra.get("order", ())),
    }
    table = entry.table
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[_META] = json.dumps(meta).encode()
    table = table.replace_schema_metadata(schema_meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(blob: bytes, clock: Callable[[], float]) -> CacheEntry:
    table = pa.ipc.open_stream(pa.py_buffer(blob)).read_all()
    schema_meta = dict(table.schema.metadata or {})
    meta = json.loads(schema_meta.pop(_META))
    table = table.replace_schema_metadata(schema_meta or None)
    age = max(0.0, time.time() - meta["stored_wall"])
    return CacheEntry(
        table=table,
        sql=meta["sql"],
        stored_at=clock() - age,
        ttl_seconds=meta["ttl_seconds"],
        compile_ms=meta["compile_ms"],
        execute_ms=meta["execute_ms"],
        nbytes=max(int(table.nbytes), 1),
        extra={"order": tuple(meta["order"])},
    )
