"""What can be asked: metrics, dimensions, entities, saved queries, as frozen dataclasses that
transports serialise as they like. Built once per manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metricflow_semantic_interfaces.errors import InvalidQuerySyntax
from metricflow_semantic_interfaces.parsing.text_input.ti_description import QueryItemType
from metricflow_semantic_interfaces.parsing.text_input.ti_exceptions import (
    QueryItemJinjaException,
)
from metricflow_semantic_interfaces.parsing.text_input.ti_processor import (
    ObjectBuilderTextProcessor,
)
from metricflow_semantic_interfaces.parsing.text_input.valid_method import (
    ConfiguredValidMethodMapping,
)

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
    # Hidden from the catalog (`meta: {hidden: true}`): a building block of other metrics.
    # It can still be queried by name.
    hidden: bool = False
    # Its definition filters by another metric ({{ Metric(...) }} in its filter or an input's):
    # MetricFlow computes that metric in a subquery of its own, outside a caller's row filters.
    filters_by_metric: bool = False


@dataclass(frozen=True)
class DimensionInfo:
    name: str  # the group-by name: customer__country, metric_time, bike__station__city_name
    label: str
    description: str
    type: str  # categorical | time
    grains: tuple[str, ...] = ()  # time dimensions: the grains it can be asked at (+ custom)
    semantic_model: str | None = None
    date_parts: tuple[str, ...] = ()  # time dimensions: __extract_<part> names
    entity_path: tuple[str, ...] = ()  # the entities joined to reach it

    def group_by_names(self) -> tuple[str, ...]:
        """Every name this dimension can be asked by, in group-bys, filters and order-bys."""
        if self.type == "time":
            return (
                self.name,
                *(f"{self.name}__{g}" for g in self.grains),
                *(f"{self.name}__extract_{p}" for p in self.date_parts),
            )
        return (self.name,)


@dataclass(frozen=True)
class EntityInfo:
    name: str
    label: str
    description: str
    type: str  # primary | foreign | unique | natural


@dataclass(frozen=True)
class MeasureInfo:
    name: str
    agg: str  # sum | count | count_distinct | average | min | max | median | percentile ...
    agg_time_dimension: str | None
    expr: str
    semantic_model: str


@dataclass(frozen=True)
class SavedQueryInfo:
    name: str
    label: str
    description: str
    metrics: tuple[str, ...]
    group_by: tuple[str, ...]
    where: tuple[str, ...]
    cache_ttl_seconds: float | None = None
    order_by: tuple[str, ...] = ()
    limit: int | None = None


# From MetricFlow's manifest objects --------------------------------------------------

def is_hidden(meta: dict[str, Any]) -> bool:
    tally_meta = meta.get("tally") if isinstance(meta.get("tally"), dict) else {}
    return bool(meta.get("hidden") or tally_meta.get("hidden"))


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
    input_filters = [f.where_sql_template for i in tp.metrics or []
                     if getattr(i, "filter", None) for f in i.filter.where_filters]  # fmt: skip
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
        hidden=is_hidden(meta),
        filters_by_metric=any("Metric(" in t for t in [metric_filter or "", *input_filters]),
    )


def measure_infos(manifest: Any) -> dict[str, MeasureInfo]:
    """Every measure of the manifest's semantic models, by name."""
    out: dict[str, MeasureInfo] = {}
    for model in manifest.semantic_models:
        default_time = model.defaults.agg_time_dimension if model.defaults else None
        for m in model.measures:
            out[m.name] = MeasureInfo(
                name=m.name,
                agg=m.agg.value,
                agg_time_dimension=m.agg_time_dimension or default_time,
                expr=m.expr or m.name,
                semantic_model=model.name,
            )
    return out


def saved_query_info(q: Any, meta: dict[str, Any]) -> SavedQueryInfo:
    """A saved query with its group-bys and order-bys in tally's names (MetricFlow's object
    syntax, read by MetricFlow's own parser: the project's YAML is trusted text)."""
    params = q.query_params
    group_by = tuple(
        _item_name(q.name, item, ConfiguredValidMethodMapping.DEFAULT_MAPPING)[0]
        for item in params.group_by
    )
    order_by = []
    for item in getattr(params, "order_by", None) or ():
        name, descending = _item_name(
            q.name, item, ConfiguredValidMethodMapping.DEFAULT_MAPPING_FOR_ORDER_BY
        )
        order_by.append(f"-{name}" if descending else name)
    where = tuple(f.where_sql_template for f in params.where.where_filters) if params.where else ()
    ttl = meta.get("cache_ttl_seconds")
    return SavedQueryInfo(
        name=q.name,
        label=q.label or title(q.name),
        description=q.description or "",
        metrics=tuple(params.metrics),
        group_by=group_by,
        where=where,
        cache_ttl_seconds=float(ttl) if ttl is not None else None,
        order_by=tuple(order_by),
        limit=getattr(params, "limit", None),
    )


def _item_name(saved_query: str, item: str, methods: Any) -> tuple[str, bool]:
    """`Dimension('station__city_name', entity_path=['bike']).grain('month')` ->
    ('bike__station__city_name__month', descending)."""
    try:
        d = ObjectBuilderTextProcessor().get_description(item, methods)
    except (InvalidQuerySyntax, QueryItemJinjaException, ValueError) as e:
        raise CompileFault(
            f"Saved query {saved_query!r} has an item tally cannot read: {item!r} ({e})"
        ) from None
    name = "__".join((*d.entity_path, d.item_name)).lower()
    if d.item_type is QueryItemType.METRIC:
        return name, bool(d.descending)
    if d.date_part_name:
        name = f"{name}__extract_{d.date_part_name.lower()}"
    elif d.time_granularity_name:
        name = f"{name}__{d.time_granularity_name.lower()}"
    return name, bool(d.descending)


def title(name: str) -> str:
    return name.replace("__", " ").replace("_", " ").strip().capitalize()
