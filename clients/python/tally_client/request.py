"""Typed request building: group-bys with a grain, structured filters, descending order. Every
helper returns what the REST body takes, so plain strings and dicts work too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Op = Literal["=", "!=", "in", "not_in", ">", ">=", "<", "<=", "between", "is_null",
             "is_not_null", "contains"]  # fmt: skip
Grain = Literal["hour", "day", "week", "month", "quarter", "year"]


@dataclass(frozen=True)
class GroupBy:
    """`GroupBy("metric_time", grain="month")` -> "metric_time__month"."""

    name: str
    grain: Grain | str | None = None

    def __str__(self) -> str:
        return f"{self.name}__{self.grain}" if self.grain else self.name


@dataclass(frozen=True)
class Filter:
    """A structured filter: the server quotes the value; no SQL is written here."""

    dimension: str
    op: Op = "="
    value: Any = None
    values: Sequence[Any] | None = None
    grain: Grain | str | None = None

    @classmethod
    def eq(cls, dimension: str, value: Any) -> Filter:
        return cls(dimension, "=", value)

    @classmethod
    def isin(cls, dimension: str, values: Sequence[Any]) -> Filter:
        return cls(dimension, "in", values=list(values))

    @classmethod
    def between(cls, dimension: str, low: Any, high: Any, grain: str | None = None) -> Filter:
        return cls(dimension, "between", values=[low, high], grain=grain)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"dimension": self.dimension, "op": self.op}
        if self.values is not None:
            body["values"] = list(self.values)
        elif self.value is not None:
            body["value"] = self.value
        if self.grain:
            body["grain"] = self.grain
        return body


def desc(name: str | GroupBy) -> str:
    """Descending order by a metric or group-by."""
    return f"-{name}"


Where = str | Filter | dict[str, Any]


@dataclass(frozen=True)
class Query:
    metrics: Sequence[str] = ()
    group_by: Sequence[str | GroupBy] = ()
    where: Sequence[Where] = ()
    order_by: Sequence[str] = ()
    limit: int | None = None
    saved_query: str | None = None
    start: str | None = None
    end: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "metrics": list(self.metrics),
            "group_by": [str(g) for g in self.group_by],
            "where": [w.to_json() if isinstance(w, Filter) else w for w in self.where],
            "order_by": [str(o) for o in self.order_by],
        }
        for key in ("limit", "saved_query", "start", "end"):
            value = getattr(self, key)
            if value is not None:
                body[key] = str(value) if key in ("start", "end") else value
        return {**body, **self.extra}
