"""Every encoder of results, the one home of encoding (core/formats.py names them and says which
format is which): a whole result or table at once (JSON in the shape docs/api.md, "The JSON
result", describes; CSV, Arrow IPC stream, NDJSON, the CLI's plain-text table), and stream
writers over record batches (CSV, Arrow IPC, Parquet, NDJSON) that yield bytes as each batch
arrives, so memory stays bounded by one batch whatever the result's size. Decimals stay exact
in JSON and NDJSON text: written as JSON numbers with every digit, never through a float."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tally.core.results import QueryResult

# A stream writer: the schema and the batches in, the file's bytes out as they are made. An
# empty result (one batch of no rows) is still a whole file: a CSV header, an Arrow/Parquet schema.
StreamWriter = Callable[[pa.Schema, Iterable[pa.RecordBatch]], Iterator[bytes]]


def column_type(t: pa.DataType) -> str:
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    return str(t)


def json_value(v: Any) -> Any:
    """A cell as a plain JSON value: dates and times as ISO text, decimals as numbers (whole
    ones as integers), non-finite numbers (inf, NaN) as null."""
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            return None
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, dt.date | dt.datetime | dt.time):
        return v.isoformat()
    return str(v)


def _value(v: Any) -> str:
    """A cell as JSON text. Decimals keep every digit (never through a float)."""
    if isinstance(v, decimal.Decimal) and v.is_finite():
        return format(v, "f")
    if isinstance(v, float) and math.isfinite(v):
        return repr(v)
    return json.dumps(json_value(v), ensure_ascii=False)


def result_meta(result: QueryResult) -> dict[str, Any]:
    return {
        "row_count": result.table.num_rows,
        "sql": result.sql,
        "cache": {
            "hit": result.cache.hit,
            "age_seconds": round(result.cache.age_seconds, 3),
            # Only on an older answer served because the warehouse failed (stale-if-error).
            **({"stale": True} if result.cache.stale else {}),
        },
        "timing_ms": {
            "compile": result.timing.compile_ms,
            "execute": result.timing.execute_ms,
            "total": result.timing.total_ms,
        },
        "rollup": result.rollup.as_dict() if result.rollup else {"used": None, "misses": []},
    }


def _json_rows(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[str]:
    """Each row as a JSON object's text: the rows of JSON's `data` and NDJSON's lines alike."""
    keys = [json.dumps(f.name) for f in schema]
    for batch in batches:
        # 1024 rows at a time: Arrow's to_pylist holds the GIL for the whole call, so one call
        # over a large batch would stall every other thread (the event loop included).
        for offset in range(0, batch.num_rows, 1024):
            for record in batch.slice(offset, 1024).to_pylist():
                cells = (f"{k}: {_value(v)}" for k, v in zip(keys, record.values(), strict=True))
                yield "{" + ", ".join(cells) + "}"


def json_rows(result: QueryResult) -> list[str]:
    """The result's rows as JSON text, kept in the cache entry's memo: the next hit of the same
    shape (in JSON or NDJSON) reuses the text instead of encoding again."""
    table = result.table
    memo = result.memo
    cached = memo.get("json_rows") if memo is not None else None
    if cached is not None and cached[0] is table:
        return cached[1]
    rows = list(_json_rows(table.schema, table.to_batches()))
    if memo is not None:
        memo["json_rows"] = (table, rows)
        # Counted in the cache's byte bound (CPython keeps ~60 bytes per str beside its text).
        memo["memo_bytes"] = sum(map(len, rows)) + 60 * len(rows)
        grow = memo.get("on_grow")
        if grow is not None:
            grow()
    return rows


def to_json(result: QueryResult, *, indent: bool = False) -> str:
    table = result.table
    columns = [{"name": f.name, "type": column_type(f.type)} for f in table.schema]
    rows = json_rows(result)
    meta = result_meta(result)
    sep = ",\n  " if indent else ", "
    head = "{" + ("\n  " if indent else "")
    parts = [
        f'"columns": {json.dumps(columns)}',
        '"data": ['
        + ("\n    " if indent and rows else "")
        + ("," + ("\n    " if indent else " ")).join(rows)
        + ("\n  " if indent and rows else "")
        + "]",
        *(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items()),
    ]
    return head + sep.join(parts) + ("\n" if indent else "") + "}"


def json_answer(result: QueryResult) -> bytes:
    return to_json(result).encode()


# A spreadsheet opening a CSV runs a cell that starts with one of these as a formula
# (=HYPERLINK(...), +cmd|...); OWASP's advice: prefix such text cells with a quote.
_FORMULA_START = r"^[=+\-@\t\r]"


def neutralize_formulas(table: pa.Table) -> pa.Table:
    """Text cells that a spreadsheet would run as a formula, prefixed with `'`."""
    for i, f in enumerate(table.schema):
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            continue
        column = table.column(i)
        risky = pc.match_substring_regex(column, _FORMULA_START)
        if pc.any(risky).as_py():
            quoted = pc.binary_join_element_wise("'", column, "")
            table = table.set_column(i, f.name, pc.if_else(risky, quoted, column))
    return table


def to_csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(neutralize_formulas(table), sink)
    return sink.getvalue()


def to_arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# NDJSON: one JSON object per row, each line as the row is in JSON's `data` (decimals exact,
# dates ISO), every line ends with a newline; no envelope, so an empty result is an empty body.


def result_ndjson(result: QueryResult) -> bytes:
    """A whole result as NDJSON, from the rows' JSON text (memoized with JSON's)."""
    rows = json_rows(result)
    return ("\n".join(rows) + "\n").encode() if rows else b""


def to_ndjson(table: pa.Table) -> bytes:
    return b"".join(stream_ndjson(table.schema, table.to_batches()))


def stream_ndjson(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    for batch in batches:
        lines = "".join(row + "\n" for row in _json_rows(schema, [batch]))
        if lines:
            yield lines.encode()


# Stream writers through pyarrow's own (CSV, Arrow IPC, Parquet: one row group per batch).


class _Sink:
    """A write-only file that hands over what was written since the last `take()`."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.closed = False
        self._pos = 0

    def write(self, data) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _through(
    open_writer: Callable[[Any, pa.Schema], Any],
    prepare: Callable[[pa.Table], pa.Table] | None = None,
) -> StreamWriter:
    """A stream writer over a pyarrow writer (`open_writer(file, schema)`); `prepare`: applied to
    each batch (as a table) before it is written."""

    def write(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
        sink = _Sink()
        writer = open_writer(pa.PythonFile(sink, mode="w"), schema)
        try:
            for batch in batches:
                if prepare is not None:
                    writer.write_table(prepare(pa.Table.from_batches([batch])))
                else:
                    writer.write_batch(batch)
                data = sink.take()
                if data:
                    yield data
        finally:
            writer.close()
        tail = sink.take()
        if tail:
            yield tail

    return write


stream_csv = _through(pacsv.CSVWriter, prepare=neutralize_formulas)
stream_arrow = _through(pa.ipc.new_stream)
stream_parquet = _through(pq.ParquetWriter)


def to_text_table(table: pa.Table, max_rows: int = 200) -> str:
    names = table.column_names
    rows = [
        ["" if v is None else _plain(v) for v in r.values()]
        for r in table.slice(0, max_rows).to_pylist()
    ]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    numeric = [column_type(f.type) in ("decimal", "integer", "float") for f in table.schema]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(names), line(["-" * w for w in widths])] + [line(r) for r in rows]
    if table.num_rows > max_rows:
        out.append(f"... {table.num_rows - max_rows} more rows (use --limit or --format csv)")
    out.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(out)


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e-3 or abs(v) >= 1e9 else f"{v:.4f}".rstrip("0").rstrip(".")
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    return str(v)
