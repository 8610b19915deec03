"""The caller's grant applied to requests and to the catalog, before anything is compiled: the
scope a call needs, every metric and dimension it names (group-bys, filters, a saved query's
contents) checked against the member rules, and the row filters AND-ed in."""

from __future__ import annotations

from dataclasses import replace

from tally.core.access import Grant
from tally.core.caller import Caller
from tally.core.catalog import DimensionInfo, EntityInfo, MetricInfo
from tally.core.compiler import Compiler
from tally.core.filters import check_where
from tally.core.group_bys import GroupByIndex
from tally.core.request import QueryRequest
from tally.core.resolve import expand
from tally.errors import Forbidden, Unauthorized

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
        _check_dimension(index, name, grant)
    return replace(expanded, where=(*expanded.where, *grant.row_filters))


def check_dimensions(compiler: Compiler, names: tuple[str, ...], caller: Caller) -> None:
    """Forbidden (403) for any of `names` (group-by names) the caller may not see, as a query
    naming it would be: a catalog call that takes dimensions (metrics for dimensions) must not
    answer about a denied one. Each is resolved among the semantic models' own dimensions, else
    read as written."""
    grant = caller.grant
    if grant is None:
        return
    index = compiler.index(())
    for name in names:
        _check_dimension(index, name, grant)


def _check_dimension(index: GroupByIndex, name: str, grant: Grant) -> None:
    item = index.resolve(name)
    base = item.base if item is not None else name
    links = item.links if item is not None else tuple(name.split("__")[:-1])
    element = item.element if item is not None else name.split("__")[-1]
    grant.check_dimension("__".join((*links[-1:], element)), base)


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
