"""What can be asked: metrics, dimensions, entities, saved queries, as frozen dataclasses that
transports serialise as they like. Built once per manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GRAINS = ("day", "week", "month", "quarter", "year")


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


def grains_from(min_grain: str | None) -> tuple[str, ...]:
    """The standard grains at or coarser than a dimension's own grain."""
    if min_grain not in GRAINS:
        return GRAINS
    return GRAINS[GRAINS.index(min_grain) :]
