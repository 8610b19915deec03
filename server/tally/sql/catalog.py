"""The tables SQL sees, for one caller: `metrics` (a column per metric and per group-by name
the caller may use, typed, with its label and description) and one table per saved query.
Built from the service's catalog, so a member policy hides from SQL what it hides everywhere,
and kept per manifest and caller access (it is rebuilt when either changes)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tally.core.caller import Caller
from tally.core.catalog import DimensionInfo
from tally.service import TallyService
from tally.sql import pgtypes
from tally.sql.pgtypes import PgType

METRICS_TABLE = "metrics"
SCHEMA = "public"
SUB_DAILY = ("hour", "minute", "second", "millisecond", "microsecond", "nanosecond")
# The SQL aggregates that equal a metric's own aggregation, by its measure's `agg`.
AGGREGATES: dict[str, tuple[str, ...]] = {
    "sum": ("sum",),
    "sum_boolean": ("sum",),
    "count": ("sum", "count"),
    "count_distinct": ("count_distinct",),
    "min": ("min",),
    "max": ("max",),
    "average": ("avg",),
}
_INTEGER_AGGS = ("count", "count_distinct", "sum_boolean")


@dataclass(frozen=True)
class Column:
    name: str
    type: PgType
    label: str = ""
    description: str = ""
    metric: bool = False  # a metric of `metrics` (else a group-by, or a saved query column)

    @property
    def comment(self) -> str:
        if self.label and self.description:
            return f"{self.label}: {self.description}"
        return self.label or self.description


@dataclass(frozen=True)
class Table:
    name: str
    comment: str
    columns: tuple[Column, ...]
    saved_query: str | None = None
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    def column(self, name: str) -> Column | None:
        return self._by_name.get(name)


@dataclass(frozen=True)
class MetricFacts:
    """What a metric column allows: the plain SQL aggregates that equal its own aggregation
    (empty for ratio, derived, cumulative and conversion metrics: MEASURE() only)."""

    name: str
    type: str
    aggregates: tuple[str, ...]


@dataclass(frozen=True)
class SqlCatalog:
    tables: tuple[Table, ...]
    metrics: dict[str, MetricFacts]
    time_dimensions: dict[str, DimensionInfo]  # base time dimension name -> its facts

    def table(self, name: str) -> Table | None:
        for table in self.tables:
            if table.name == name:
                return table
        return None


def _metric_type(agg: str | None) -> PgType:
    """Counts are integers; sums, minimums and maximums keep their exact decimals (money never
    goes through floating point); averages, ratios and derived metrics are double precision."""
    if agg in _INTEGER_AGGS:
        return pgtypes.INT8
    if agg in ("sum", "min", "max"):
        return pgtypes.NUMERIC
    return pgtypes.FLOAT8


def _dimension_columns(dimension: DimensionInfo) -> list[Column]:
    if dimension.type != "time":
        return [Column(dimension.name, pgtypes.TEXT, dimension.label, dimension.description)]
    grains = dimension.grains or ("day",)
    finest_sub_daily = grains[0] in SUB_DAILY
    columns = [Column(dimension.name, pgtypes.TIMESTAMP if finest_sub_daily else pgtypes.DATE,
                      dimension.label, dimension.description)]
    for grain in grains:
        kind = pgtypes.TIMESTAMP if grain in SUB_DAILY else pgtypes.DATE
        label = f"{dimension.label} ({grain})" if dimension.label else ""
        columns.append(Column(f"{dimension.name}__{grain}", kind, label, dimension.description))
    for part in dimension.date_parts:
        label = f"{dimension.label} ({part})" if dimension.label else ""
        columns.append(Column(f"{dimension.name}__extract_{part}", pgtypes.INT8, label,
                              dimension.description))
    return columns


def build(service: TallyService, caller: Caller) -> SqlCatalog:
    """The caller's tables, from the service's catalog (its policies applied)."""
    metrics = service.list_metrics(caller)
    names = tuple(m.name for m in metrics)
    measures = {m.name: m for m in service.list_measures(names, caller)} if names else {}
    facts: dict[str, MetricFacts] = {}
    metric_columns: list[Column] = []
    for metric in metrics:
        agg = None
        if metric.type in ("simple", "cumulative") and metric.inputs and \
                metric.inputs[0] in measures:
            agg = measures[metric.inputs[0]].agg
        facts[metric.name] = MetricFacts(metric.name, metric.type, AGGREGATES.get(agg or "", ()))
        metric_columns.append(Column(metric.name, _metric_type(agg), metric.label,
                                     metric.description, metric=True))
    dimensions = service.list_dimensions((), caller)
    group_by_columns: list[Column] = []
    for dimension in dimensions:
        group_by_columns += _dimension_columns(dimension)
    for entity in service.list_entities((), caller):
        group_by_columns.append(Column(entity.name, pgtypes.TEXT, entity.label,
                                       entity.description))
    seen: set[str] = set()
    columns = []
    for column in group_by_columns + metric_columns:
        if column.name not in seen:
            seen.add(column.name)
            columns.append(column)
    tables = [Table(METRICS_TABLE, "Every metric, by every group-by it can be asked for: "
                    "SELECT <group-bys>, MEASURE(<metric>) FROM metrics GROUP BY <group-bys>",
                    tuple(columns))]
    by_name = {c.name: c for c in columns}
    for saved in service.list_saved_queries(caller):
        if saved.name == METRICS_TABLE:
            continue
        saved_columns = [by_name.get(g) or Column(g, pgtypes.TEXT) for g in saved.group_by]
        saved_columns += [by_name.get(m) or Column(m, pgtypes.FLOAT8, metric=True)
                          for m in saved.metrics]
        tables.append(Table(saved.name, saved.label or saved.description,
                            tuple(Column(c.name, c.type, c.label, c.description)
                                  for c in saved_columns), saved_query=saved.name))
    times = {d.name: d for d in dimensions if d.type == "time"}
    return SqlCatalog(tuple(tables), facts, times)


class Catalogs:
    """The SqlCatalog of each caller's access, per manifest (a few dozen kept)."""

    def __init__(self, service: TallyService, size: int = 64) -> None:
        self.service = service
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Any, SqlCatalog] = OrderedDict()

    def key(self, caller: Caller) -> Any:
        return (self.service.manifest_version, caller.access, caller.grant,
                caller.scopes & {"meta", "query"})

    def get(self, caller: Caller) -> SqlCatalog:
        key = self.key(caller)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        catalog = build(self.service, caller)
        with self._lock:
            self._entries[key] = catalog
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return catalog
