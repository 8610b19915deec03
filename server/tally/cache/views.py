"""A cached table as one request sees it. An entry is shared by every spelling of a question
(and, without a limit, by requests that differ only in order), so each caller gets the rows in
its own column and row order, and its own validator (ETag) for that representation."""

from __future__ import annotations

import functools
import hashlib
import json

import pyarrow as pa

from tally.core.request import QueryRequest


def shape(table: pa.Table, request: QueryRequest, resort: bool) -> pa.Table:
    """Columns in the order asked (group-bys, then metrics); on a hit from a differently spelt
    request (without a limit), rows sorted into this request's order: its order_by, else its
    group-bys. Nulls last, as the warehouse sorts them."""
    names = tuple(table.column_names)
    ordered = _column_order(names, (*request.group_by, *request.metrics))
    if ordered != names:
        table = table.select(list(ordered))
    if resort and request.limit is None and table.num_rows > 1:
        keys = _sort_keys(names, request.row_order)
        if keys:
            table = table.sort_by(list(keys))  # arrow puts nulls at the end by default
    return table


def _column(names: tuple[str, ...], item: str, taken: list[str]) -> str | None:
    return next(
        (n for n in names if n not in taken and (n == item or n.startswith(item + "__"))), None
    )


# Every hit shapes its table: the same columns and the same request give the same answer, so
# the matching of names is remembered.
@functools.lru_cache(maxsize=4096)
def _column_order(names: tuple[str, ...], items: tuple[str, ...]) -> tuple[str, ...]:
    ordered: list[str] = []
    for item in items:
        match = _column(names, item, ordered)
        if match:
            ordered.append(match)
    return (*ordered, *(n for n in names if n not in ordered))


@functools.lru_cache(maxsize=4096)
def _sort_keys(names: tuple[str, ...], row_order: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    keys: list[tuple[str, str]] = []
    for item in row_order:
        name = _column(names, item.lstrip("-"), [k for k, _ in keys])
        if name:
            keys.append((name, "descending" if item.startswith("-") else "ascending"))
    return tuple(keys)


@functools.lru_cache(maxsize=4096)
def variant(key: str, request: QueryRequest) -> str:
    raw = json.dumps([key, request.group_by, request.metrics, request.row_order])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
