"""Result encoders every transport shares: JSON (the DESIGN.md shape), CSV, Arrow IPC stream, a
plain-text table, and one conversion of a cell to a JSON value. Decimals stay exact in the JSON
text: they are written as JSON numbers with every digit, never through a float."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tally.core.results import QueryResult

ARROW_STREAM = "application/vnd.apache.arrow.stream"


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


def _json_rows(table: pa.Table) -> list[str]:
    keys = [json.dumps(f.name) for f in table.schema]
    rows = []
    # Batch by batch: Arrow's to_pylist holds the GIL for the whole call, so one call over a
    # large table would stall every other thread (the event loop included) until it returns.
    for batch in table.to_batches(max_chunksize=1024):
        for record in batch.to_pylist():
            cells = (f"{k}: {_value(v)}" for k, v in zip(keys, record.values(), strict=True))
            rows.append("{" + ", ".join(cells) + "}")
    return rows


def to_json(result: QueryResult, *, indent: bool = False) -> str:
    table = result.table
    columns = [{"name": f.name, "type": column_type(f.type)} for f in table.schema]
    memo = result.memo
    cached = memo.get("json_rows") if memo is not None else None
    if cached is not None and cached[0] is table:
        rows = cached[1]
    else:
        rows = _json_rows(table)
        if memo is not None:  # a cache hit of the same shape reuses the rows' text
            memo["json_rows"] = (table, rows)
            # Counted in the cache's byte bound (CPython keeps ~60 bytes per str beside its text).
            memo["memo_bytes"] = sum(map(len, rows)) + 60 * len(rows)
            grow = memo.get("on_grow")
            if grow is not None:
                grow()
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
