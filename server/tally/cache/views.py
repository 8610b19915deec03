"""A cached table as one request sees it. An entry is shared by every spelling of a question
(and, without a limit, by requests that differ only in order), so each caller gets the rows in
its own column and row order, and its own validator (ETag) for that representation."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from tally.core.request import QueryRequest


def shape(table: pa.Table, request: QueryRequest, resort: bool) -> pa.Table:
    """Columns in the order asked (group-bys, then metrics); on a hit from a differently spelt
    request (without a limit), rows sorted into this request's order: its order_by, else its
    group-bys. Nulls last, as the warehouse sorts them."""
    names = table.column_names

    def column(item: str, taken: list[str]) -> str | None:
        return next(
            (n for n in names if n not in taken and (n == item or n.startswith(item + "__"))), None
        )

    ordered: list[str] = []
    for item in (*request.group_by, *request.metrics):
        match = column(item, ordered)
        if match:
            ordered.append(match)
    ordered += [n for n in names if n not in ordered]
    if ordered != names:
        table = table.select(ordered)
    if resort and request.limit is None and table.num_rows > 1:
        keys: list[tuple[str, str]] = []
        for item in request.row_order:
            name = column(item.lstrip("-"), [k for k, _ in keys])
            if name:
                keys.append((name, "descending" if item.startswith("-") else "ascending"))
        if keys:
            table = table.sort_by(keys)  # arrow puts nulls at the end by default
    return table


def variant(key: str, request: QueryRequest) -> str:
    raw = json.dumps([key, request.group_by, request.metrics, request.row_order])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
