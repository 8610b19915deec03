"""Routing: answer a query from the smallest built rollup that gives exactly the same numbers,
or say, for each rollup, the first reason it could not.

A rollup fits when it is built for its current definition and for the data being served, and:
* every group-by of the query is one of the rollup's, at the rollup's grain or a coarser one
  that its grain rolls up into (day -> week, month, quarter, year; month -> quarter, year...);
* every filter refers only to the rollup's group-bys (a filter on group-by values keeps or
  drops whole rollup rows, exactly as it keeps or drops the source rows in them);
* every metric is stored, at exactly the rollup's group-by, or can be combined from stored
  parts otherwise (parts.py says which can).

The SQL is written here, over the rollup's table, with the columns named as MetricFlow names
them, so the rest of the service cannot tell the two answers apart, except by their speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from tally.core.compiler import CompiledQuery, Compiler
from tally.core.filters import check_where
from tally.core.group_bys import GroupByItem
from tally.core.request import QueryRequest
from tally.core.resolve import check_request
from tally.core.results import RollupStatus
from tally.core.rollup_dialect import RollupDialect
from tally.rollups.definitions import Rollup, parts_of, rollups_of
from tally.rollups.parts import NotCombinable
from tally.rollups.store import BuiltRollup

# grain -> the grains its values roll up into exactly (truncating a truncation).
_ROLLS_INTO = {
    "day": ("day", "week", "month", "quarter", "year"),
    "week": ("week",),
    "month": ("month", "quarter", "year"),
    "quarter": ("quarter", "year"),
    "year": ("year",),
}
_TIME_WINDOW_KINDS = ("cumulative", "conversion")


class Miss(Exception):
    pass


@dataclass(frozen=True)
class Route:
    status: RollupStatus
    compiled: CompiledQuery | None = None


def route(
    compiler: Compiler,
    request: QueryRequest,
    built: dict[str, BuiltRollup],
    source: str,
    limit: int | None,
) -> Route:
    """The route for an authorized request: a compiled query over the smallest fitting rollup
    (and why the others did not fit), or no rollup and every candidate's reason."""
    rollups = rollups_of(compiler)
    if not rollups:
        return Route(RollupStatus(None, ()))
    dialect = compiler.engine.rollup_dialect
    if dialect is None:
        return Route(RollupStatus(None, tuple(
            (r.name, f"rollups are not built on {compiler.engine.adapter_type}")
            for r in rollups)))
    if not built:  # nothing built here: say so without checking the query against each
        return Route(RollupStatus(None, tuple(
            (r.name, "not built (run `tally rollups build`)") for r in rollups)))
    checked = check_request(compiler, request)
    query = checked.request
    misses: list[tuple[str, str]] = []
    fits: list[tuple[int, Rollup, str]] = []
    for rollup in rollups:
        try:
            sql = _fit(compiler, dialect, rollup, query, checked.group_by, built, source, limit)
        except Miss as e:
            misses.append((rollup.name, str(e)))
            continue
        fits.append((built[rollup.name].row_count, rollup, sql))
    if not fits:
        return Route(RollupStatus(None, tuple(misses)))
    fits.sort(key=lambda f: f[0])
    _, used, sql = fits[0]
    misses += [(r.name, f"a smaller rollup fits ({used.name})") for _, r, _ in fits[1:]]
    misses.sort(key=lambda m: [r.name for r in rollups].index(m[0]))
    compiled = CompiledQuery(sql=sql, request=query)
    return Route(RollupStatus(used.name, tuple(misses)), compiled)


def _fit(
    compiler: Compiler,
    dialect: RollupDialect,
    rollup: Rollup,
    query: QueryRequest,
    items: tuple[GroupByItem, ...],
    built: dict[str, BuiltRollup],
    source: str,
    limit: int | None,
) -> str:
    state = built.get(rollup.name)
    if state is None:
        raise Miss("not built (run `tally rollups build`)")
    if state.version != rollup.version:
        raise Miss("stale: built for an older definition")
    if state.source != source:
        raise Miss("stale: built before the latest data build")
    if not query.metrics:
        raise Miss("no metric asked")
    if query.start is not None or query.end is not None:
        raise Miss("a time range (start/end) is asked")
    missing = [w for w in rollup.where if w not in query.where]
    if missing:
        raise Miss(f"the rollup is filtered ({missing[0]}) and the query is not")
    by_name = {item.name: item for item in rollup.group_by}
    selects = [(_column(dialect, by_name, rollup, item), item) for item in items]
    exact = {i.name for i in items} == set(by_name) and len(items) == len(rollup.group_by)
    wheres = []
    time_filtered = False
    for clause in query.where:
        if clause in rollup.where:
            continue
        checked = check_where(clause, compiler.dialect)
        exprs = []
        for ref in checked.references:
            if ref.kind == "Metric":
                raise Miss("a filter on a metric")
            target = _reference_item(compiler, ref, rollup)
            exprs.append(_column(dialect, by_name, rollup, target))
            time_filtered |= target.kind == "time_dimension"
        wheres.append(checked.render(exprs))
    parts = parts_of(compiler)
    metric_sql = []
    for metric in query.metrics:
        kind = parts.kind(metric)
        if exact and metric in rollup.stored:
            if time_filtered and kind in _TIME_WINDOW_KINDS:
                raise Miss(f"metric '{metric}' is a time window and the query filters on time")
            metric_sql.append((_quote(metric), metric))
            continue
        try:
            formula = parts.formula(metric)
        except NotCombinable as e:
            if metric not in rollup.stored:
                raise Miss(f"lacks metric '{metric}'") from None
            raise Miss(f"non-additive: {e}, and the query's group-by or grain differs") from None
        lacking = [p for p in formula.parts if p not in rollup.stored]
        if lacking:
            raise Miss(f"lacks metric '{lacking[0]}'" + (
                f" (a part of '{metric}')" if lacking[0] != metric else ""))
        metric_sql.append((formula.row_sql if exact else formula.sql, metric))
    return _sql(rollup, selects, metric_sql, wheres, query, exact, limit)


def _reference_item(compiler: Compiler, ref, rollup: Rollup) -> GroupByItem:
    name = ref.group_by_name()
    for item in rollup.group_by:
        if item.name == name:
            return item
    # A time dimension in a filter without a grain is at its finest: the rollup must hold that.
    base_matches = [i for i in rollup.group_by if i.base == ref.name]
    if base_matches and (ref.grain or ref.date_part):
        return GroupByItem(name, "time_dimension", base_matches[0].links,
                           base_matches[0].element, ref.grain, ref.date_part)
    if base_matches:
        raise Miss(f"a filter on '{ref.name}' at its finest grain; the rollup has "
                   f"{base_matches[0].name}")
    raise Miss(f"lacks dimension '{name}' (in a filter)")


def _column(
    dialect: RollupDialect, by_name: dict[str, GroupByItem], rollup: Rollup, item: GroupByItem
) -> str:
    """The rollup's column for a query's group-by item (truncated to a coarser grain)."""
    if item.name in by_name:
        return _quote(item.name)
    same = [r for r in rollup.group_by if r.base == item.base and r.kind == item.kind]
    if not same:
        raise Miss(f"lacks dimension '{item.name}'")
    have = same[0]
    if item.kind != "time_dimension" or item.date_part or have.date_part:
        raise Miss(f"lacks '{item.name}' (has {have.name})")
    if not have.grain or item.grain not in _ROLLS_INTO.get(have.grain, ()):
        raise Miss(f"grain: '{item.name}' is not a roll-up of {have.name}")
    return dialect.period(item.grain, _quote(have.name))


def _sql(
    rollup: Rollup,
    selects: list[tuple[str, GroupByItem]],
    metrics: list[tuple[str, str]],
    wheres: list[str],
    query: QueryRequest,
    exact: bool,
    limit: int | None,
) -> str:
    names = query.group_by
    cols = [f"{expr} AS {_quote(n)}" for (expr, _), n in zip(selects, names, strict=True)]
    cols += [f"{expr} AS {_quote(name)}" for expr, name in metrics]
    lines = ["SELECT", "  " + ",\n  ".join(cols), f"FROM {rollup.relation}"]
    if wheres:
        lines.append("WHERE " + " AND ".join(f"({w})" for w in wheres))
    if selects and not exact:
        lines.append("GROUP BY " + ", ".join(str(i + 1) for i in range(len(selects))))
    order = list(query.row_order) or list(query.group_by)
    if order:
        lines.append("ORDER BY " + ", ".join(
            f"{_quote(o.lstrip('-'))} {'DESC' if o.startswith('-') else 'ASC'} NULLS LAST"
            for o in order
        ))
    wanted = limit if limit is not None else query.limit
    if wanted is not None:
        lines.append(f"LIMIT {int(wanted)}")
    return "\n".join(lines)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
