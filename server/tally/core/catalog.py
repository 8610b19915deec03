"""What can be asked: metrics, dimensions, entities, saved queries, as frozen dataclasses that
transports serialise as they like. Built once per manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tally.errors import CompileFault


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    description: str
    type: str  # simple | ratio | cumulative | derived | conversion
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    requires_metric_time: bool = False
    inputs: tuple[str, ...] = ()
    filter: str | None = None
    # Cumulative metrics: the metric_time grains at which the metric stays exact when also
    # grouped by another dimension (None: every grain, e.g. an all-history accumulation).
    grouped_grains: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DimensionInfo:
    name: str  # the group-by name: customer__country, metric_time, customer__signup_date
    label: str
    description: str
    type: str  # categorical | time
    grains: tuple[str, ...] = ()  # for time dimensions: the grains it can be asked at
    semantic_model: str | None = None

    def group_by_names(self) -> tuple[str, ...]:
        if self.type == "time":
            return (self.name, *(f"{self.name}__{g}" for g in self.grains))
        return (self.name,)


@dataclass(frozen=True)
class EntityInfo:
    name: str
    label: str
    description: str
    type: str  # primary | foreign | unique | natural


@dataclass(frozen=True)
class SavedQueryInfo:
    name: str
    label: str
    description: str
    metrics: tuple[str, ...]
    group_by: tuple[str, ...]
    where: tuple[str, ...]
    cache_ttl_seconds: float | None = None


# From MetricFlow's manifest objects --------------------------------------------------

_SAVED_GROUP_BY = re.compile(
    r"^\s*(?P<kind>Dimension|TimeDimension|Entity)\(\s*'(?P<name>[\w]+)'"
    r"(?:\s*,\s*'(?P<grain>\w+)')?\s*\)(?:\.grain\(\s*'(?P<grain2>\w+)'\s*\))?\s*$"
)


def metric_info(m: Any, extra_meta: dict[str, Any]) -> MetricInfo:
    tp = m.type_params
    inputs: list[str] = []
    if tp.numerator:
        inputs += [tp.numerator.name, tp.denominator.name]
    inputs += [i.name for i in tp.metrics or []]
    if tp.measure:
        inputs.append(tp.measure.name)
    meta = {**(dict(m.config.meta) if m.config and m.config.meta else {}), **extra_meta}
    metric_filter = (
        " AND ".join(f.where_sql_template for f in m.filter.where_filters) if m.filter else None
    )
    requires_time = any(
        getattr(i, "offset_window", None) or getattr(i, "offset_to_grain", None)
        for i in tp.metrics or []
    )
    grouped_grains = None
    if m.type.value == "cumulative":
        params = tp.cumulative_type_params
        window = (params.window if params else None) or tp.window
        to_date = (params.grain_to_date if params else None) or tp.grain_to_date
        if window is not None:
            grouped_grains = ("day",)
        elif to_date is not None:
            # Periods that nest in the to-date period: a week straddles months, a month does not.
            nests = {"week": ("week",), "month": ("month",), "quarter": ("month", "quarter"),
                     "year": ("month", "quarter", "year")}
            grain = to_date.value if hasattr(to_date, "value") else str(to_date)
            grouped_grains = ("day", *nests.get(grain, ()))
    return MetricInfo(
        name=m.name,
        label=m.label or title(m.name),
        description=m.description or "",
        type=m.type.value,
        meta=meta,
        requires_metric_time=bool(requires_time),
        grouped_grains=grouped_grains,
        inputs=tuple(dict.fromkeys(inputs)),
        filter=metric_filter,
    )


def saved_query_info(q: Any, meta: dict[str, Any]) -> SavedQueryInfo:
    group_by = []
    for item in q.query_params.group_by:
        match = _SAVED_GROUP_BY.match(item)
        if not match:
            raise CompileFault(f"Saved query {q.name!r} has a group-by tally cannot read: {item!r}")
        grain = match.group("grain") or match.group("grain2")
        group_by.append(f"{match.group('name')}__{grain}" if grain else match.group("name"))
    where = (
        tuple(f.where_sql_template for f in q.query_params.where.where_filters)
        if q.query_params.where
        else ()
    )
    ttl = meta.get("cache_ttl_seconds")
    return SavedQueryInfo(
        name=q.name,
        label=q.label or title(q.name),
        description=q.description or "",
        metrics=tuple(q.query_params.metrics),
        group_by=tuple(group_by),
        where=where,
        cache_ttl_seconds=float(ttl) if ttl is not None else None,
    )


def title(name: str) -> str:
    return name.replace("__", " ").replace("_", " ").strip().capitalize()
