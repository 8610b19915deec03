"""Exports: a query's full result, of any size, as a stream of Arrow record batches for the
transports to encode as they go (a streamed format of core/formats.py), in bounded memory. No
row cap (that is the point), no result cache (a result this size would evict everything else);
the same authorization, routing (rollups) and SQL as a query.

The warehouse streams when it can (`stream(sql, batch_rows)`, DuckDB); otherwise its whole
result is fetched and cut into batches (bounded by the warehouse's own result, not by tally).

An export yields at least one batch, a batch of no rows when the result is empty: its schema
(the columns' names and types, as the warehouse gave them) is what makes an empty export a
valid file, a CSV header or an Arrow/Parquet schema, the same as a non-empty one's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from tally.core.compiler import CompiledQuery
from tally.core.results import normalize_types

BATCH_ROWS = 65_536


@dataclass
class Export:
    compiled: CompiledQuery
    # Every batch in one schema; at least one (of no rows when the result is empty).
    batches: Iterator[pa.RecordBatch]
    release: Callable[[], None] = lambda: None  # the caller's running-query slot

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.batches.close()  # type: ignore[attr-defined]
        self.release()


def batches(warehouse, compiled: CompiledQuery) -> Iterator[pa.RecordBatch]:
    names = dict(compiled.renames)
    schema: pa.Schema | None = None
    for batch in _raw(warehouse, compiled.sql):
        if names:
            batch = batch.rename_columns([names.get(n, n) for n in batch.schema.names])
        table = normalize_types(pa.Table.from_batches([batch]))
        first = schema is None
        if first:  # the first batch decides the types (a later one is cast to them)
            schema = table.schema
        out = table.cast(schema).to_batches()
        if first and not out:
            # A table of no rows has no batches at all; the first batch is kept anyway,
            # empty, because its schema is the file's columns.
            out = [pa.RecordBatch.from_pylist([], schema=schema)]
        yield from out


def _raw(warehouse, sql: str) -> Iterator[pa.RecordBatch]:
    """The warehouse's batches, at least one (of no rows when the result is empty)."""
    stream = getattr(warehouse, "stream", None)
    if stream is not None:
        any_batch = False
        for batch in stream(sql, BATCH_ROWS):
            any_batch = True
            yield batch
        if any_batch:
            return
        # A stream that says nothing for no rows: the (empty) result once more, for its
        # columns. DuckDB's stream gives a batch of no rows instead, so never runs this.
    table = warehouse.execute(sql)
    yield from table.to_batches(BATCH_ROWS) or [
        pa.RecordBatch.from_pylist([], schema=table.schema)]
