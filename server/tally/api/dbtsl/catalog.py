"""tally's catalog in the dbt Semantic Layer's GraphQL shapes: metrics (with their dimensions,
measures and entities on demand), dimensions, entities, measures, saved queries, and the
paginated pages around them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Generic, TypeVar

import strawberry
from strawberry.types import Info

from tally.api.dbtsl import types as t
from tally.core import catalog
from tally.core.caller import Caller
from tally.core.grains import STANDARD_GRAINS
from tally.core.semantic_layer import split_group_by
from tally.errors import InvalidRequest

Item = TypeVar("Item")


def grains(d: catalog.DimensionInfo | None) -> tuple[list[t.TimeGranularity], list[str]]:
    """(the standard grains as dbt's enum, every grain by name incl. custom ones)."""
    if d is None or d.type != "time":
        return [], []
    order = {g: i for i, g in enumerate(STANDARD_GRAINS)}
    every = sorted(d.grains, key=lambda g: order.get(g, len(order)))  # finest first, custom last
    standard = [t.TimeGranularity[g.upper()] for g in every if g in order]
    return standard, every


def dimension(d: catalog.DimensionInfo) -> t.Dimension:
    standard, every = grains(d)
    return t.Dimension(
        name=d.name,
        qualified_name=d.name,
        description=d.description or None,
        type=t.DimensionType.TIME if d.type == "time" else t.DimensionType.CATEGORICAL,
        label=d.label or None,
        is_partition=False,
        expr=None,
        queryable_granularities=standard,
        queryable_time_granularities=every,
    )


def entity(e: catalog.EntityInfo) -> t.Entity:
    return t.Entity(
        name=e.name,
        description=e.description or None,
        type=t.EntityType[e.type.upper()] if e.type.upper() in t.EntityType.__members__
        else t.EntityType.FOREIGN,
        role=e.name,
        expr=e.name.rpartition("__")[2],
        label=e.label or None,
    )


def group_by(item: catalog.DimensionInfo | catalog.EntityInfo) -> t.EntityDimension:
    if isinstance(item, catalog.EntityInfo):
        return t.EntityDimension(
            name=item.name, qualified_name=item.name, description=item.description or None,
            type="ENTITY", label=item.label or None, queryable_granularities=[],
            queryable_time_granularities=[],
        )
    d = dimension(item)
    return t.EntityDimension(
        name=d.name, qualified_name=d.qualified_name, description=d.description,
        type=d.type.value, label=d.label, queryable_granularities=d.queryable_granularities,
        queryable_time_granularities=d.queryable_time_granularities,
    )


def measure(m: catalog.MeasureInfo, show_sql: bool) -> t.Measure:
    agg = m.agg.upper()
    return t.Measure(
        name=m.name,
        agg_time_dimension=m.agg_time_dimension,
        agg=t.AggregationType[agg] if agg in t.AggregationType.__members__
        else t.AggregationType.SUM,
        # A measure's expression is SQL over the warehouse's columns: shown with the `sql`
        # scope only, empty otherwise (as a result's `sql`; the SDK wants a string here).
        expr=m.expr if show_sql else "",
    )


def measures(found: Sequence[catalog.MeasureInfo], caller: Caller) -> list[t.Measure]:
    return [measure(m, caller.has("sql")) for m in found]


@strawberry.type
class Metric:
    name: str
    description: str | None
    type: t.MetricType
    label: str
    requires_metric_time: bool
    queryable_granularities: list[t.TimeGranularity]
    queryable_time_granularities: list[str]
    filter: t.WhereFilter | None
    config: t.Config | None
    type_params: t.MetricTypeParams

    @strawberry.field
    async def dimensions(self, info: Info) -> list[t.Dimension]:
        from tally.api.dbtsl.context import call

        return [dimension(d) for d in await call(info, "list_dimensions", (self.name,))]

    @strawberry.field
    async def measures(self, info: Info) -> list[t.Measure]:
        from tally.api.dbtsl.context import call, info_caller

        return measures(await call(info, "list_measures", (self.name,)), info_caller(info))

    @strawberry.field
    async def entities(self, info: Info) -> list[t.Entity]:
        from tally.api.dbtsl.context import call

        return [entity(e) for e in await call(info, "list_entities", (self.name,))]


def metric(m: catalog.MetricInfo, metric_time: catalog.DimensionInfo | None,
           measures: Sequence[catalog.MeasureInfo]) -> Metric:
    standard, every = grains(metric_time)
    inputs = [i for i in m.inputs if i not in {x.name for x in measures}]
    return Metric(
        name=m.name,
        description=m.description or None,
        type=t.MetricType[m.type.upper()],
        label=m.label,
        requires_metric_time=m.requires_metric_time,
        queryable_granularities=standard,
        queryable_time_granularities=every,
        filter=t.WhereFilter(where_sql_template=m.filter) if m.filter else None,
        config=t.Config(meta=m.meta or None),
        type_params=t.MetricTypeParams(
            measure=t.MetricReference(name=measures[0].name)
            if m.type == "simple" and measures else None,
            input_measures=[t.MetricReference(name=x.name) for x in measures],
            metrics=[t.MetricReference(name=i) for i in inputs] or None,
        ),
    )


def saved_query(q: catalog.SavedQueryInfo, custom_grains: Sequence[str]) -> t.SavedQuery:
    group_bys = []
    for name in q.group_by:
        g = split_group_by(name, custom_grains)
        standard = g.grain.upper() if g.grain and g.grain in STANDARD_GRAINS else None
        group_bys.append(
            t.SavedQueryGroupByParam(
                name=g.name,
                grain=t.TimeGranularity[standard] if standard else None,
                time_granularity=g.grain,
                date_part=t.DatePart[g.date_part.upper()] if g.date_part else None,
            )
        )
    where = " AND ".join(f"({w})" if len(q.where) > 1 else w for w in q.where)
    return t.SavedQuery(
        name=q.name,
        description=q.description or None,
        label=q.label or None,
        query_params=t.SavedQueryQueryParams(
            metrics=[t.SavedQueryMetricParam(name=m) for m in q.metrics],
            group_by=group_bys,
            where=t.WhereFilter(where_sql_template=where) if where else None,
            order_by=list(q.order_by),
            limit=q.limit,
        ),
        exports=[],
    )


@strawberry.type
class ResultPage(Generic[Item]):
    items: list[Item]
    page_num: int
    page_size: int | None
    total_items: int
    total_pages: int


def page(
    items: Sequence[Item], page_num: int, page_size: int | None, search: str | None = None
) -> ResultPage[Item]:
    """One page of `items` (1-based; no page size: all of them), after a case-insensitive
    substring search over each item's name and label."""
    if search:
        needle = search.strip().lower()
        items = [i for i in items if needle in _searchable(i)]
    if page_num < 1:
        raise InvalidRequest(f"pageNum starts at 1, got {page_num}.")
    if page_size is not None and page_size < 1:
        raise InvalidRequest(f"pageSize must be 1 or more, got {page_size}.")
    total = len(items)
    size = page_size or max(total, 1)
    pages = max(1, math.ceil(total / size))
    start = (page_num - 1) * size
    return ResultPage(
        items=list(items[start : start + size]),
        page_num=page_num,
        page_size=page_size,
        total_items=total,
        total_pages=pages,
    )


def _searchable(item: object) -> str:
    return f"{getattr(item, 'name', '')} {getattr(item, 'label', '') or ''}".lower()

