"""The one request model every transport builds: metrics, group_by, where, order_by, limit,
saved_query, plus an optional time range. Construction validates shape and spelling (names,
limits, the shape of structured filters); whether the names exist is the catalog's business.
A filter is either MetricFlow's template SQL or a structured filter; the compiler turns the
latter into SQL for its warehouse's dialect, so no transport ever writes SQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tally.core.filters import StructuredFilter
from tally.errors import InvalidFilter, InvalidOrderBy, InvalidRequest, shorten

Where = str | StructuredFilter

# Semantic names are snake_case; group-bys add `__` links and an optional grain.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_ITEMS = 64
_MAX_NAME_LENGTH = 128
_MAX_WHERE_LENGTH = 4_000
_MAX_LIMIT = 2**62  # anything larger is not a row count (and would overflow the warehouse)


@dataclass(frozen=True)
class QueryRequest:
    metrics: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    where: tuple[Where, ...] = ()
    order_by: tuple[str, ...] = ()
    limit: int | None = None
    saved_query: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @classmethod
    def create(
        cls,
        metrics: Iterable[str] | str | None = None,
        group_by: Iterable[str] | str | None = None,
        where: Iterable[str | Mapping[str, Any] | StructuredFilter] | str | None = None,
        order_by: Iterable[str] | str | None = None,
        limit: Any = None,
        saved_query: str | None = None,
        start: Any = None,
        end: Any = None,
    ) -> QueryRequest:
        metric_names = _names(metrics, "metrics")
        saved = saved_query.strip() if isinstance(saved_query, str) else saved_query
        if saved is not None and (
            not isinstance(saved, str) or len(saved) > _MAX_NAME_LENGTH or not _NAME.match(saved)
        ):
            raise InvalidRequest(f"Invalid saved query name {shorten(saved_query)}.")
        group_names = _names(group_by, "group_by")
        if not metric_names and not saved and not group_names:
            raise InvalidRequest(
                "Ask for at least one metric (or a saved_query), or group-bys alone for the "
                "distinct combinations of their values."
            )
        if saved and (metric_names or group_names):
            raise InvalidRequest(
                f"Saved query '{saved}' brings its own metrics and group-bys: send either "
                "saved_query (with where, order_by, limit, start, end) or metrics and group_by, "
                "not both."
            )
        order_names = tuple(_order_item(o) for o in _strings(order_by, "order_by"))
        wheres = _wheres(where)
        start_dt, end_dt = _instant(start, "start"), _instant(end, "end")
        if start_dt and end_dt and start_dt > end_dt:
            raise InvalidRequest(f"start ({start_dt.date()}) is after end ({end_dt.date()}).")
        return cls(
            metrics=metric_names,
            group_by=group_names,
            where=wheres,
            order_by=order_names,
            limit=_limit(limit),
            saved_query=saved or None,
            start=start_dt,
            end=end_dt,
        )

    @property
    def row_order(self) -> tuple[str, ...]:
        """The order rows come in: order_by, else the group-bys (time ascending first)."""
        return self.order_by or self.group_by

    def normalized(self) -> QueryRequest:
        """The same question in one canonical spelling: the order of metrics, group-bys and
        filters does not matter. (The order of order_by does.) Filters are kept exactly as
        written: text rewritten around literals could make two different filters one key
        (`'At Risk'` and `'At  Risk'`); spellings that mean the same are found by
        `tally.cache.keys.canonical_where`, which parses them."""
        return replace(
            self,
            metrics=tuple(sorted(self.metrics)),
            group_by=tuple(sorted(self.group_by)),
            where=tuple(sorted(self.where, key=repr)),
        )


def _strings(value: Iterable[str] | str | None, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    items = list(value)
    if len(items) > _MAX_ITEMS:
        raise InvalidRequest(f"Too many {what}: {len(items)} (at most {_MAX_ITEMS}).")
    for item in items:
        if not isinstance(item, str):
            raise InvalidRequest(f"Each item of {what} must be a string, got {shorten(item)}.")
    return tuple(s.strip() for s in items if s.strip())


def _names(value: Iterable[str] | str | None, what: str) -> tuple[str, ...]:
    """Comma-split, trimmed, lower-cased, de-duplicated names in first-seen order."""
    raw = _strings(value, what)
    out: list[str] = []
    for chunk in raw:
        for name in chunk.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if len(name) > _MAX_NAME_LENGTH:
                raise InvalidRequest(
                    f"Name {shorten(name)} in {what} is too long "
                    f"({len(name)} characters, at most {_MAX_NAME_LENGTH})."
                )
            if not _NAME.match(name):
                raise InvalidRequest(
                    f"Invalid name {shorten(name)} in {what}: names are snake_case "
                    "(letters, digits, underscores), e.g. 'entity__dimension'."
                )
            if name not in out:
                out.append(name)
    return tuple(out)


def _order_item(item: str) -> str:
    descending = item.startswith("-")
    name = item[1:].strip().lower() if descending else item.strip().lower()
    if len(name) > _MAX_NAME_LENGTH or not _NAME.match(name):
        raise InvalidOrderBy(
            f"Invalid order_by item {shorten(item)}: use a metric or group-by name, "
            "'-' for descending."
        )
    return f"-{name}" if descending else name


def _wheres(value: Iterable[Any] | str | None) -> tuple[Where, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str | Mapping | StructuredFilter) else list(value)
    if len(items) > _MAX_ITEMS:
        raise InvalidRequest(f"Too many where: {len(items)} (at most {_MAX_ITEMS}).")
    out: list[Where] = []
    for index, item in enumerate(items):
        if isinstance(item, StructuredFilter):
            out.append(item)
        elif isinstance(item, Mapping):
            try:
                out.append(StructuredFilter.parse(item))
            except InvalidFilter as e:
                raise InvalidFilter(f"Invalid filter #{index + 1}: {e.message}") from None
        elif isinstance(item, str):
            if len(item) > _MAX_WHERE_LENGTH:
                raise InvalidFilter(f"Filter is too long ({len(item)} characters).")
            check_text(item, f"Filter #{index + 1}")
            if item.strip():
                out.append(item.strip())
        else:
            raise InvalidRequest(
                f"Each item of where must be a filter string or object, got {shorten(item)}."
            )
    return tuple(out)


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, what: str) -> None:
    """InvalidRequest for text no UTF-8 can carry (a lone surrogate, as JSON's "\\ud800"
    can spell): it could reach neither the warehouse nor a response."""
    if _SURROGATE.search(text):
        raise InvalidRequest(f"{what} holds a character that is not valid Unicode (a lone "
                             "surrogate); send text as UTF-8.")  # fmt: skip


def _limit(value: Any) -> int | None:
    if value is None or value == "":
        return None
    wrong = InvalidRequest(f"limit must be a whole number, got {shorten(value)}.")
    if isinstance(value, bool):
        raise wrong
    try:
        limit = int(value)  # float('inf') raises OverflowError, nan ValueError
    except (TypeError, ValueError, OverflowError):
        raise wrong from None
    if isinstance(value, float) and value != limit:
        raise wrong
    if limit < 0:
        raise InvalidRequest(f"limit must be 0 or more, got {limit}.")
    if limit > _MAX_LIMIT:
        raise InvalidRequest(f"limit must be at most {_MAX_LIMIT}, got {limit}.")
    return limit


def _instant(value: Any, what: str) -> dt.datetime | None:
    """A naive date-time. Metric time is naive in the warehouse (order dates), so a value with
    a time zone is converted to UTC and its zone dropped: 2025-01-01T00:00+02:00 is
    2024-12-31T22:00."""
    if value is None or value == "":
        return None
    instant: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        instant = value
    elif isinstance(value, dt.date):
        instant = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and len(value) <= 64:
        with contextlib.suppress(ValueError):
            instant = dt.datetime.fromisoformat(value.strip())
    if instant is None:
        raise InvalidRequest(
            f"{what} must be an ISO date or date-time (2025-01-31), got {shorten(value)}."
        )
    if instant.tzinfo is not None:
        try:
            instant = instant.astimezone(dt.UTC).replace(tzinfo=None)
        except (OverflowError, ValueError):  # 0001-01-01T00:00+14:00 is before year 1 in UTC
            raise InvalidRequest(
                f"{what} {shorten(value)} is out of range once read in UTC."
            ) from None
    return instant


def split_csv(values: Sequence[str] | None) -> list[str]:
    """CLI helper: ['a,b', 'c'] -> ['a', 'b', 'c']."""
    return [v.strip() for chunk in values or [] for v in chunk.split(",") if v.strip()]
