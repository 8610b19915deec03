"""The dbt Semantic Layer's query vocabulary in tally's names. Its clients (the GraphQL API, the
Jinja dialect of its Flight SQL API) name a group-by as a name plus an optional grain or date
part (`{name: "metric_time", grain: MONTH}`, `TimeDimension("metric_time", "month")`) and an
order-by as a metric or a group-by object; tally names each as one string
(`metric_time__month`, `-revenue`). Pure functions shared by both protocols, so they agree."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tally.core.grains import DATE_PARTS, EXTRACT, STANDARD_GRAINS
from tally.core.request import QueryRequest
from tally.errors import InvalidGrain, InvalidRequest, shorten

# dbt's TimeGranularity enum (GraphQL) spells the standard grains in capitals.
TIME_GRANULARITIES = tuple(g.upper() for g in STANDARD_GRAINS)
SL_DATE_PARTS = tuple(p.upper() for p in DATE_PARTS)


@dataclass(frozen=True)
class GroupBy:
    """One group-by item as the dbt Semantic Layer's clients send it."""

    name: str
    grain: str | None = None
    date_part: str | None = None

    def tally_name(self) -> str:
        """`metric_time` + `MONTH` -> `metric_time__month`; + date part `YEAR` ->
        `metric_time__extract_year`. A name that already ends in the grain is kept as is."""
        name = self.name.strip().lower()
        if self.grain and self.date_part:
            raise InvalidRequest(
                f"Group-by {shorten(self.name)}: give a grain or a date part, not both."
            )
        if self.date_part:
            part = self.date_part.strip().lower()
            if part not in DATE_PARTS:
                raise InvalidGrain(
                    f"Unknown date part {shorten(self.date_part)} for {shorten(self.name)}: "
                    f"use one of {', '.join(DATE_PARTS)}."
                )
            return f"{name}__{EXTRACT}{part}"
        if self.grain:
            grain = self.grain.strip().lower()
            if not grain or not grain.replace("_", "").isalnum():
                raise InvalidGrain(f"Invalid grain {shorten(self.grain)} for {shorten(self.name)}.")
            return name if name.endswith(f"__{grain}") else f"{name}__{grain}"
        return name


@dataclass(frozen=True)
class OrderBy:
    name: str  # a metric, or a group-by's tally name
    descending: bool = False


def resolve_order_by(entries: Iterable[OrderBy], group_bys: Sequence[str]) -> list[str]:
    """Order-by entries as tally's `[-]name`. A time dimension ordered without its grain
    (`OrderByGroupBy("metric_time")`, which the SDK writes for a string order-by) means the one
    group-by of that dimension in the query, whatever its grain."""
    out = []
    for entry in entries:
        name = entry.name.strip().lower()
        if name not in group_bys:
            same_base = [g for g in group_bys if g.startswith(f"{name}__")]
            if len(same_base) == 1:
                name = same_base[0]
        out.append(f"-{name}" if entry.descending else name)
    return out


def build_request(
    *,
    metrics: Sequence[str] | None = None,
    group_by: Sequence[GroupBy] | None = None,
    where: Sequence[str] | str | None = None,
    order_by: Sequence[OrderBy] | None = None,
    limit: Any = None,
    saved_query: str | None = None,
    saved_group_bys: Sequence[str] = (),
) -> QueryRequest:
    """The QueryRequest for a dbt Semantic Layer query. `saved_group_bys` are the saved
    query's own group-bys (order-by entries resolve against them)."""
    names = [g.tally_name() for g in group_by or ()]
    known = names or list(saved_group_bys)
    return QueryRequest.create(
        metrics=list(metrics or ()),
        group_by=names,
        where=[where] if isinstance(where, str) else list(where or ()),
        order_by=resolve_order_by(order_by or (), known),
        limit=limit,
        saved_query=saved_query,
    )


def split_group_by(name: str, custom_grains: Iterable[str] = ()) -> GroupBy:
    """`metric_time__month` -> GroupBy("metric_time", grain="month"); date parts likewise.
    The inverse of GroupBy.tally_name, for listing saved queries in dbt's shape."""
    base, _, suffix = name.rpartition("__")
    if base and suffix.startswith(EXTRACT) and suffix[len(EXTRACT) :] in DATE_PARTS:
        return GroupBy(base, date_part=suffix[len(EXTRACT) :])
    if base and (suffix in STANDARD_GRAINS or suffix in tuple(custom_grains)):
        return GroupBy(base, grain=suffix)
    return GroupBy(name)
