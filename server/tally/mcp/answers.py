"""Query results shaped for an agent: compact rows (JSON records, or the text of a text format of
core/formats.py: CSV, NDJSON), each column's
type and unit, the filters and time range that were applied, and an explicit truncation flag
with the total row count, so an agent never mistakes a cut list for the whole answer."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import pyarrow as pa

from tally.core import formats
from tally.core.catalog import MeasureInfo, MetricInfo
from tally.core.encoding import column_type, json_value
from tally.core.formats import Format
from tally.core.request import QueryRequest
from tally.core.results import QueryResult

# JSON: the rows as records in `data`; a text format: its text under its name (`"csv": ...`).
FORMATS = tuple(f for f in formats.answers() if f is formats.JSON or (f.text and f.table))
_COUNT_AGGS = {"count", "count_distinct", "sum_boolean"}
# Spellings of `meta: {format: ...}` / `meta: {unit: ...}` a project may use, in one vocabulary.
_UNITS = {
    "currency": "currency", "money": "currency", "usd": "currency", "eur": "currency",
    "percent": "percentage", "percentage": "percentage", "pct": "percentage",
    "count": "count", "number": "number", "ratio": "ratio",
}  # fmt: skip


def unit_of(metric: MetricInfo, measures: Sequence[MeasureInfo]) -> str:
    """currency | percentage | count | ratio | number, from the metric's `meta` (`unit` or
    `format`, also under `meta.tally`) or else from its definition: a simple metric over a
    count is a count, a ratio metric a ratio."""
    meta = metric.meta or {}
    own = meta.get("tally") if isinstance(meta.get("tally"), Mapping) else {}
    for key in ("unit", "format"):
        for source in (own, meta):
            value = source.get(key)
            if isinstance(value, str) and value.strip().lower() in _UNITS:
                return _UNITS[value.strip().lower()]
    if metric.type == "ratio":
        return "ratio"
    if metric.type in ("simple", "cumulative") and measures and all(map(_counts, measures)):
        return "count"
    return "number"


# MetricFlow loads `agg: count` as a sum of `CASE WHEN <expr> IS NOT NULL THEN 1 ELSE 0 END`.
_ONES = re.compile(r"^\s*(1|case\s+when\s+.+\s+then\s+1\s+else\s+0\s+end)\s*$", re.I | re.S)


def _counts(measure: MeasureInfo) -> bool:
    agg = measure.agg.lower()
    return agg in _COUNT_AGGS or (agg == "sum" and bool(_ONES.match(measure.expr or "")))


def check_format(fmt: str | None) -> Format:
    return formats.find(fmt or formats.JSON.name, FORMATS)


def filter_text(clause: Any) -> Any:
    """A where clause as the agent can read it: template SQL as is, a structured filter as its
    fields."""
    return clause if isinstance(clause, str) else {
        k: v for k, v in asdict(clause).items() if v not in (None, ())
    }


def applied_filters(
    asked: QueryRequest, served: QueryRequest, saved_where: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Every filter the numbers were computed with, and where each came from: the caller's
    `where`, the saved query's own, or an access policy (row filters of the caller's token)."""
    out = [{"filter": filter_text(w), "from": "where"} for w in asked.where]
    seen = [*asked.where]
    for w in saved_where:
        out.append({"filter": w, "from": "saved_query"})
        seen.append(w)
    for w in served.where:
        if w not in seen:
            out.append({"filter": filter_text(w), "from": "access_policy"})
    return out


def _time_range(table: pa.Table, names: Sequence[str]) -> dict[str, Any] | None:
    for name in names:
        if name.split("__")[0] != "metric_time" or name not in table.column_names:
            continue
        column = table.column(name)
        if table.num_rows == 0 or column.null_count == table.num_rows:
            return None
        import pyarrow.compute as pc

        bounds = pc.min_max(column).as_py()
        return {"column": name, "min": json_value(bounds["min"]),
                "max": json_value(bounds["max"])}  # fmt: skip
    return None


def answer(
    result: QueryResult,
    asked: QueryRequest,
    *,
    units: Mapping[str, str],
    labels: Mapping[str, str],
    shown: int,
    fmt: Format,
    saved_where: Iterable[str] = (),
) -> dict[str, Any]:
    """The tool's answer: the first `shown` rows of `result` (the whole answer, in its order),
    with the row count of the whole answer and `truncated` when rows were left out."""
    table = result.table
    total = table.num_rows
    head = table.slice(0, shown)
    columns = []
    for field in table.schema:
        is_metric = field.name in units
        columns.append({
            "name": field.name,
            "type": column_type(field.type),
            "role": "metric" if is_metric else "group_by",
            **({"unit": units[field.name]} if is_metric else {}),
            **({"label": labels[field.name]} if field.name in labels else {}),
        })  # fmt: skip
    body: dict[str, Any] = {
        "columns": columns,
        "row_count": head.num_rows,
        "total_rows": total,
        "truncated": head.num_rows < total,
        "format": fmt.name,
    }
    if fmt is not formats.JSON and fmt.table is not None and fmt.charset is not None:
        body[fmt.name] = fmt.table(head).decode(fmt.charset)
    else:
        body["data"] = [{k: json_value(v) for k, v in row.items()} for row in head.to_pylist()]
    if body["truncated"]:
        body["note"] = (
            f"Only the first {head.num_rows} of {total} rows are shown: raise `limit`, add "
            "filters or use a coarser grain to see the rest."
        )
    body["filters"] = applied_filters(asked, result.request, saved_where)
    body["time_range"] = {
        "start": asked.start.isoformat() if asked.start else None,
        "end": asked.end.isoformat() if asked.end else None,
        "in_data": _time_range(table, [f.name for f in table.schema]),
    }
    body["cache"] = {"hit": result.cache.hit, "age_seconds": round(result.cache.age_seconds, 3)}
    return body
