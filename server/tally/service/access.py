"""The caller's grant applied to requests and to the catalog, before anything is compiled: the
scope a call needs, every metric and dimension it names (group-bys, filters, a saved query's
contents) checked against the member rules, and the row filters AND-ed in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from tally.core.access import Grant
from tally.core.caller import Caller
from tally.core.catalog import DimensionInfo, EntityInfo, MetricInfo
from tally.core.compiler import Compiler
from tally.core.filters import check_where
from tally.core.grains import split_grain
from tally.core.group_bys import GroupByIndex
from tally.core.request import QueryRequest
from tally.core.resolve import expand
from tally.errors import (
    CallerError,
    Forbidden,
    Unauthorized,
    UnknownMetric,
    UnknownName,
    UnknownSavedQuery,
)

SCOPE_NEEDS = {
    "meta": "see the catalog",
    "query": "run queries",
    "sql": "see compiled SQL",
    "admin": "administer the server",
    "embed": "mint embed tokens",
}


def require(caller: Caller, scope: str) -> None:
    """Forbidden (403) for a known caller without the scope; Unauthorized (401) for an
    anonymous one (credentials with the scope would help)."""
    if not caller.has(scope):
        need = SCOPE_NEEDS.get(scope, scope)
        if caller.subject is None:
            raise Unauthorized(
                f"To {need}, send `Authorization: Bearer <token>` with the '{scope}' scope.",
                scope=scope,
            )
        raise Forbidden(
            f"Your credentials lack the '{scope}' scope, needed to {need}.", scope=scope
        )


def authorize(compiler: Compiler, request: QueryRequest, caller: Caller) -> QueryRequest:
    """The request as this caller may run it: every name it uses allowed, the caller's row
    filters added. (A saved query is expanded first, so its contents are checked too.)"""
    require(caller, "query")
    grant = caller.grant
    if grant is None:
        return request
    expanded = expand(compiler, request)
    check_members(compiler, expanded, grant)
    _check_row_filters_apply(compiler, expanded, grant)
    return replace(expanded, where=(*expanded.where, *grant.row_filters))


def _check_row_filters_apply(compiler: Compiler, expanded: QueryRequest, grant: Grant) -> None:
    """Forbidden (403), saying why, when a metric asked for cannot be filtered by a dimension
    the caller's row filters use (the filter could not hold back any row: refused, not
    answered, and not reported as the caller's own unknown dimension)."""
    metrics = tuple(compiler.metric(m).name for m in expanded.metrics)
    index = compiler.index(metrics)
    for clause in grant.row_filters:
        text = clause if isinstance(clause, str) else clause.to_where(compiler.dialect)
        for ref in check_where(text, compiler.dialect).references:
            if ref.kind != "Metric" and index.resolve(ref.group_by_name()) is None:
                raise Forbidden(
                    f"Your access policy filters rows by {ref.name}, which "
                    f"{', '.join(metrics) or 'this question'} cannot be filtered by: you may "
                    "not query it."
                )


def may_see(compiler: Compiler, request: QueryRequest, caller: Caller) -> bool:
    """Whether every metric and dimension the request names is visible to the caller (its
    scopes aside): a dashboard shows only the tiles its viewer may query."""
    if caller.grant is None:
        return True
    try:
        expanded = expand(compiler, request)
        check_members(compiler, expanded, caller.grant)
        _check_row_filters_apply(compiler, expanded, caller.grant)
    except Forbidden:
        return False
    return True


def check_members(compiler: Compiler, expanded: QueryRequest, grant: Grant) -> None:
    """Forbidden (403) for the first metric or dimension of the (expanded) request, in its
    metrics, group-bys or filters, that the grant does not allow."""
    if grant.row_filters:
        _refuse_metric_filters(compiler, expanded)
    for name in expanded.metrics:
        grant.check_metric(compiler.metric(name).name)
    index = compiler.index(tuple(compiler.metric(m).name for m in expanded.metrics))
    names = list(expanded.group_by)
    for clause in expanded.where:
        text = clause if isinstance(clause, str) else clause.to_where(compiler.dialect)
        for ref in check_where(text, compiler.dialect).references:
            if ref.kind == "Metric":
                grant.check_metric(ref.name)
            else:
                names.append(ref.group_by_name())
    for name in names:
        grant.check_dimension(*_dimension_identity(index, name))


def _refuse_metric_filters(compiler: Compiler, expanded: QueryRequest) -> None:
    """A caller limited to some rows may not filter by a metric: MetricFlow computes a
    `{{ Metric(...) }}` condition (in a filter, or in a metric's own definition) in a subquery
    of its own, over every row, before the caller's row filters apply, so the condition would
    answer questions about other tenants' rows."""
    refused = Forbidden(
        "Filters on a metric ({{ Metric(...) }}, in a filter or in a metric's definition) are "
        "computed over every row, outside your access policy's row filters, so they are not "
        "available to you. Filter on dimensions instead."
    )
    for clause in expanded.where:
        text = clause if isinstance(clause, str) else clause.to_where(compiler.dialect)
        if any(r.kind == "Metric" for r in check_where(text, compiler.dialect).references):
            raise refused
    seen: set[str] = set()
    todo = list(expanded.metrics)
    while todo:
        name = todo.pop()
        if name in seen or name not in compiler.metrics:
            continue
        seen.add(name)
        metric = compiler.metrics[name]
        if metric.filters_by_metric:
            raise refused
        todo += [i for i in metric.inputs if i in compiler.metrics]


def check_dimensions(compiler: Compiler, names: tuple[str, ...], caller: Caller) -> None:
    """Forbidden (403) for a group-by name the caller may not see (an unknown one passes:
    it is unknown to every caller alike)."""
    grant = caller.grant
    if grant is None:
        return
    index = compiler.index(())
    for name in names:
        grant.check_dimension(*_dimension_identity(index, name))


def _dimension_identity(index: GroupByIndex, name: str) -> tuple[str, str]:
    """(last entity link and element, base name) of a group-by name, as member rules name
    dimensions; for a name the index does not know, read from its spelling."""
    item = index.resolve(name)
    if item is not None:
        return "__".join((*item.links[-1:], item.element)), item.base
    base = split_grain(name)[0]
    parts = base.split("__")
    return "__".join(parts[-2:]), base


@contextmanager
def visible_errors(caller: Caller, compiler: Callable[[], Compiler]) -> Iterator[None]:
    """Inside: an unknown name's suggestion (did you mean...) names only what the caller may
    see; a denied metric, dimension or saved query is never suggested. `compiler` is called
    only when there is an error to narrow."""
    try:
        yield
    except UnknownName as e:
        if caller.grant is None:
            raise
        raise e.narrowed(_visibility(compiler(), caller, e)) from None


def _visibility(compiler: Compiler, caller: Caller, e: UnknownName) -> Callable[[str], bool]:
    grant = caller.grant
    assert grant is not None
    if isinstance(e, UnknownMetric):
        return grant.may_see_metric
    if isinstance(e, UnknownSavedQuery):
        return lambda name: _may_run_saved(compiler, name, caller)
    index = compiler.index(())
    return lambda name: grant.may_see_dimension(*_dimension_identity(index, name))


def may_run_saved(compiler: Compiler, name: str, caller: Caller) -> bool:
    """Whether the caller may run the saved query (every member it names visible)."""
    return _may_run_saved(compiler, name, caller)


def visible_filter(compiler: Compiler, metric: MetricInfo, caller: Caller) -> MetricInfo:
    """The metric with its filter shown only when every dimension the filter names is visible
    to the caller (a filter's text would otherwise name a denied dimension)."""
    grant = caller.grant
    if grant is None or not metric.filter:
        return metric
    index = compiler.index(())
    try:
        refs = check_where(metric.filter, compiler.dialect).references
    except CallerError:
        return replace(metric, filter=None)
    for ref in refs:
        if ref.kind == "Metric":
            visible = grant.may_see_metric(ref.name)
        else:
            visible = grant.may_see_dimension(*_dimension_identity(index, ref.group_by_name()))
        if not visible:
            return replace(metric, filter=None)
    return metric


def _may_run_saved(compiler: Compiler, name: str, caller: Caller) -> bool:
    try:
        authorize(compiler, QueryRequest(saved_query=name), caller)
    except (Forbidden, UnknownName):
        return False
    return True


def visible_metrics(metrics: tuple[MetricInfo, ...], caller: Caller) -> tuple[MetricInfo, ...]:
    grant = caller.grant
    return metrics if grant is None else tuple(m for m in metrics if grant.may_see_metric(m.name))


def visible_dimensions(
    dims: tuple[DimensionInfo, ...], caller: Caller
) -> tuple[DimensionInfo, ...]:
    grant = caller.grant
    if grant is None:
        return dims
    return tuple(d for d in dims if grant.may_see_dimension(_identity(d), d.name))


def _identity(d: DimensionInfo) -> str:
    """A dimension's last entity link and name (customer__country), whatever the path."""
    return "__".join((*d.entity_path[-1:], d.name.split("__")[-1]))


def visible_entities(entities: tuple[EntityInfo, ...], caller: Caller) -> tuple[EntityInfo, ...]:
    grant = caller.grant
    if grant is None:
        return entities
    return tuple(e for e in entities if grant.may_see_dimension(e.name.split("__")[-1], e.name))
