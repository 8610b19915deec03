"""Exports: a query's full result, of any size, as a stream of Arrow record batches for the
transports to encode (CSV, Arrow IPC, Parquet) as they go, in bounded memory. No row cap (that
is the point), no result cache (a result this size would evict everything else); the same
authorization, routing (rollups) and SQL as a query.

The warehouse streams when it can (`stream(sql, batch_rows)`, DuckDB); otherwise its whole
result is fetched and cut into batches (bounded by the warehouse's own result, not by tally).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from tally.core.compiler import CompiledQuery
from tally.core.results import normalize_types
from tally.errors import InvalidRequest

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
BATCH_ROWS = 65_536


@dataclass
class Export:
    compiled: CompiledQuery
    batches: Iterator[pa.RecordBatch]  # every batch in one schema (see _conform)
    release: Callable[[], None] = lambda: None  # the caller's running-query slot

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.batches.close()  # type: ignore[attr-defined]
        self.release()


def check_format(fmt: str) -> str:
    fmt = (fmt or "").strip().lower()
    if fmt not in FORMATS:
        raise InvalidRequest(
            f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}."
        )
    return fmt


def batches(warehouse, compiled: CompiledQuery) -> Iterator[pa.RecordBatch]:
    stream = getattr(warehouse, "stream", None)
    raw: Iterator[pa.RecordBatch]
    if stream is not None:
        raw = stream(compiled.sql, BATCH_ROWS)
    else:
        raw = iter(warehouse.execute(compiled.sql).to_batches(BATCH_ROWS))
    names = dict(compiled.renames)
    schema: pa.Schema | None = None
    for batch in raw:
        if names:
            batch = batch.rename_columns([names.get(n, n) for n in batch.schema.names])
        table = normalize_types(pa.Table.from_batches([batch]))
        if schema is None:  # the first batch decides the types (a later one is cast to them)
            schema = table.schema
        yield from table.cast(schema).to_batches()
