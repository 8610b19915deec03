"""A request checked against the catalog before MetricFlow sees it: every metric, group-by,
filter reference and order-by resolved to what the project defines, or a typed error that
names the metric concerned and the nearest names it does have. Filters come out written the way
MetricFlow's parser needs them (multi-hop names as entity paths), so every name that works in a
group-by works in a filter too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from tally.core.catalog import MetricInfo, SavedQueryInfo
from tally.core.filters import FilterReference, check_where
from tally.core.grains import split_date_part, split_grain
from tally.core.group_bys import GroupByIndex, GroupByItem
from tally.core.request import QueryRequest
from tally.errors import (
    InvalidGrain,
    InvalidOrderBy,
    InvalidQuery,
    InvalidRequest,
    UnknownDimension,
    shorten,
    suggestion_suffix,
)


class Compiler(Protocol):
    """What resolving a request reads of the catalog (the compiler provides it; declared here
    so that the compiler imports this module, not the other way round)."""

    dialect: str
    custom_grains: tuple[str, ...]
    metrics: Mapping[str, MetricInfo]

    def metric(self, name: str) -> MetricInfo: ...

    def saved_query(self, name: str) -> SavedQueryInfo: ...

    def index(self, metrics: tuple[str, ...] = ()) -> GroupByIndex: ...


@dataclass(frozen=True)
class CheckedQuery:
    request: QueryRequest  # saved query expanded; where clauses as MetricFlow reads them
    group_by: tuple[GroupByItem, ...]  # one per request.group_by, in order


def check_request(compiler: Compiler, request: QueryRequest) -> CheckedQuery:
    request = expand(compiler, request)
    if not request.metrics and not request.group_by:
        raise InvalidRequest("Ask for at least one metric or group-by (or a saved query).")
    metrics = tuple(compiler.metric(name).name for name in request.metrics)
    index = compiler.index(metrics)
    items = tuple(_group_by_item(compiler, index, name, metrics) for name in request.group_by)
    wheres = []
    for clause in request.where:
        text = clause if isinstance(clause, str) else clause.to_where(compiler.dialect)
        checked = check_where(text, compiler.dialect)
        templates = [
            _reference_template(compiler, index, ref, metrics) for ref in checked.references
        ]
        wheres.append(checked.render(templates))
    _check_time_rules(compiler, metrics, items)
    selectable = set(metrics) | set(request.group_by)
    for entry in request.order_by:
        name = entry.lstrip("-")
        if name not in selectable:
            hint, best = suggestion_suffix(name, selectable)
            raise InvalidOrderBy(
                f"Cannot order by '{name}': order by one of the requested metrics or "
                f"group-bys ({', '.join(sorted(selectable))}).{hint}",
                suggestion=best,
            )
    return CheckedQuery(replace(request, metrics=metrics, where=tuple(wheres)), items)


def expand(compiler: Compiler, request: QueryRequest) -> QueryRequest:
    """A saved query becomes an ordinary request: its filters AND the caller's; its order and
    limit unless the caller gives their own."""
    if not request.saved_query:
        return request
    saved = compiler.saved_query(request.saved_query)
    return replace(
        request,
        metrics=saved.metrics,
        group_by=saved.group_by,
        where=(*saved.where, *request.where),
        order_by=request.order_by or saved.order_by,
        limit=request.limit if request.limit is not None else saved.limit,
        saved_query=None,
    )


def _group_by_item(
    compiler: Compiler,
    index: GroupByIndex,
    name: str,
    metrics: tuple[str, ...],
    in_filter: bool = False,
) -> GroupByItem:
    item = index.resolve(name)
    if item is not None:
        # An alias (station__city_name) resolves to the item it stands for; the compiler names
        # the result column as asked.
        return item
    base, _, grain = name.rpartition("__")
    dim = index.time_dimension(base) or (
        index.time_dimension(index.aliases[base].base) if base in index.aliases else None
    )
    if base and dim is not None:
        options = [*dim.grains, *(f"extract_{p}" for p in dim.date_parts)]
        scope = f" for {', '.join(metrics)}" if metrics else ""
        raise InvalidGrain(
            f"'{base}' cannot be asked at grain '{shorten(grain)[1:-1]}'{scope}: use one of "
            f"{', '.join(options)} (e.g. '{base}__{options[0]}').",
            dimension=base,
            grains=list(dim.grains),
        )
    known_grain = split_grain(name, compiler.custom_grains)[1] or split_date_part(name)[1]
    if known_grain and index.resolve(base) is not None:
        raise InvalidGrain(f"'{base}' is not a time dimension; it has no grain '{grain}'.")
    raise _unknown(compiler, index, name, metrics, in_filter)


def _unknown(
    compiler: Compiler,
    index: GroupByIndex,
    name: str,
    metrics: tuple[str, ...],
    in_filter: bool,
) -> UnknownDimension:
    where = " in a filter" if in_filter else ""
    shown = shorten(name)
    if len(metrics) > 1:
        lacking = [m for m in metrics if compiler.index((m,)).resolve(name) is None]
        having = [m for m in metrics if m not in lacking]
        if having:
            lacking_index = compiler.index((lacking[0],))
            names = lacking_index.names()
            bases = [d.name for d in lacking_index.dimensions] + [
                e.name for e in lacking_index.entities
            ]
            nearest = _nearest(name, bases)
            hint, best = suggestion_suffix(name, names)
            return UnknownDimension(
                f"Unknown dimension {shown}{where} for {', '.join(lacking)}: "
                f"{', '.join(having)} can be grouped by it, {', '.join(lacking)} cannot. "
                f"Nearest names {lacking[0]} has: {', '.join(nearest)}.",
                suggestion=best,
                metric=lacking[0],
                available=nearest,
                asked=name,
                candidates=names,
            )
    names = index.names()
    hint, best = suggestion_suffix(name, names)
    scope = f" for {', '.join(metrics)}" if metrics else ""
    return UnknownDimension(f"Unknown dimension {shown}{where}{scope}.{hint}", suggestion=best,
                            asked=name, candidates=names)  # fmt: skip


def _nearest(name: str, names: list[str], n: int = 5) -> list[str]:
    import difflib

    found = difflib.get_close_matches(name, names, n=n, cutoff=0.3)
    return found or sorted(names, key=len)[:n]


def _reference_template(
    compiler: Compiler, index: GroupByIndex, ref: FilterReference, metrics: tuple[str, ...]
) -> str:
    """A filter reference written the way MetricFlow's where-filter parser reads it."""
    if ref.kind == "Metric":
        compiler.metric(ref.name)
        return ref.template()
    name = ref.group_by_name()
    item = _group_by_item(compiler, index, name, metrics, in_filter=True)
    if ref.kind == "Entity" and item.kind != "entity":
        raise UnknownDimension(f"'{name}' in a filter is not an entity: use Dimension('{name}').")
    return item.template()


def _check_time_rules(
    compiler: Compiler, metrics: tuple[str, ...], items: tuple[GroupByItem, ...]
) -> None:
    times = [i for i in items if i.kind == "time_dimension" and not i.date_part]
    for name in metrics:
        info = compiler.metrics[name]
        if info.requires_metric_time and not times:
            raise InvalidQuery(
                f"'{name}' compares a period with an earlier one: group by metric_time (e.g. "
                "metric_time__month) or another time dimension of the metric."
            )
    others = [i.name for i in items if i.kind != "time_dimension"]
    if not others or not times:
        return
    grains = [i.grain or _finest(compiler, i) for i in times]
    for name in _cumulative_inputs(compiler, metrics):
        exact = compiler.metrics[name].grouped_grains
        wrong = [g for g in grains if exact is not None and g not in exact]
        if wrong:
            raise InvalidQuery(
                f"Cumulative metric '{name}' grouped by {', '.join(others)} is exact only at "
                f"grain {' or '.join(exact)}, not '{wrong[0]}': a group whose window is empty "
                f"on the last day of a {wrong[0]} would show the value of an earlier day. Ask "
                f"for {times[0].base}__{exact[-1]}, or filter instead of grouping, e.g. where "
                f"{{{{ Dimension('{others[0]}') }}}} = '...'.",
                metric=name,
                grains=list(exact),
            )


def _finest(compiler: Compiler, item: GroupByItem) -> str:
    dim = compiler.index(()).time_dimension(item.base)
    return dim.grains[0] if dim is not None and dim.grains else "day"


def _cumulative_inputs(compiler: Compiler, metrics: tuple[str, ...]) -> list[str]:
    """The cumulative metrics among `metrics` and the metrics they are derived from."""
    found: list[str] = []
    todo = list(metrics)
    while todo:
        name = todo.pop()
        info = compiler.metrics.get(name)
        if info is None or name in found:
            continue
        if info.type == "cumulative":
            found.append(name)
        todo += [i for i in info.inputs if i in compiler.metrics and i != name]
    return found
