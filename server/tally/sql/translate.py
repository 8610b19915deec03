"""A SELECT over `metrics` (or a saved query's table) into one metric query.

Every SELECT whose FROM is `metrics` becomes a `QueryRequest`: its group-bys from the grouped
columns (and DATE_TRUNC / EXTRACT over a time dimension, which name a grain or a date part),
its metrics from MEASURE(m) / AGG(m), from the plain aggregates that equal a metric's own
aggregation, and from bare metric columns; its filters from WHERE, structured where they can be
and otherwise a where template written from the parsed tree (never from the caller's text), which
the service checks like any other filter. The SELECT itself is rewritten to run over the query's
result (`relation`): HAVING becomes a WHERE on the result's rows, expressions over metric columns,
ORDER BY, LIMIT and OFFSET stay as written. A saved query's table is its result, over which any
SELECT is exact. Whatever surrounds these SELECTs (subqueries, CTEs, unions: the wrappers BI tools
write) runs over those results only (outer.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from tally.core.filters import FilterReference, StructuredFilter
from tally.core.grains import DATE_PARTS, split_date_part, split_grain
from tally.core.request import QueryRequest, Where
from tally.errors import did_you_mean
from tally.sql.catalog import SUB_DAILY, Column, SqlCatalog, Table
from tally.sql.errors import GroupingError, UndefinedColumn, UndefinedTable, Unsupported

EXAMPLE = ("SELECT metric_time__month, customer__country, MEASURE(revenue) FROM metrics "
           "GROUP BY 1, 2")
_AGGREGATES: dict[type[exp.Expression], str] = {
    exp.Sum: "sum", exp.Count: "count", exp.Min: "min", exp.Max: "max", exp.Avg: "avg",
}
_MEASURE_NAMES = ("measure", "agg")
_UNITS = {"millennium": None, "century": None, "decade": None, "year": "year",
          "quarter": "quarter", "month": "month", "week": "week", "day": "day", "hour": "hour",
          "minute": "minute", "second": "second"}
_PARTS = {"year": "year", "quarter": "quarter", "month": "month", "day": "day", "dow": "dow",
          "doy": "doy", "dayofweek": "dow", "dayofyear": "doy"}
_FLIP = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ,
         exp.NEQ: exp.NEQ}
_OPS = {exp.EQ: "=", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}


@dataclass(frozen=True)
class MetricSelect:
    """One SELECT over a tally table: the metric query it asks, and the relation (its result,
    typed as `columns`) that the rewritten SELECT reads."""

    request: QueryRequest
    relation: str
    columns: tuple[Column, ...]
    empty: bool = False  # LIMIT 0 or WHERE false: the shape without the rows
    null_row: bool = False  # WHERE false without GROUP BY: one row of NULL aggregates


@dataclass
class _Select:
    catalog: SqlCatalog
    table: Table
    qualifiers: set[str]
    dialect: str
    group_by: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    explicit_groups: bool = False

    def add_group(self, name: str) -> None:
        if name not in self.group_by:
            if self.explicit_groups:
                raise GroupingError(
                    f'column "{name}" must appear in the GROUP BY clause or be used in an '
                    "aggregate function."
                )
            self.group_by.append(name)

    def add_metric(self, name: str) -> None:
        if name not in self.metrics:
            self.metrics.append(name)


# Names -----------------------------------------------------------------------------------

def identifier(node: exp.Expression) -> str:
    """A name as PostgreSQL reads it: unquoted identifiers fold to lower case."""
    ident = node.this if isinstance(node, exp.Column | exp.Table) else node
    if isinstance(ident, exp.Identifier):
        return ident.this if ident.quoted else ident.this.lower()
    return node.name.lower()


def table_name(table: exp.Table) -> tuple[str, str]:
    """(schema, name) of a table reference, lower-cased as PostgreSQL would."""
    schema = ""
    if table.args.get("db") is not None:
        schema = identifier(table.args["db"])
    return schema, identifier(table)


def resolve_table(catalog: SqlCatalog, table: exp.Table) -> Table:
    schema, name = table_name(table)
    found = catalog.table(name) if schema in ("", "public") else None
    if found is None:
        names = [t.name for t in catalog.tables]
        hint = did_you_mean(name, names)
        raise UndefinedTable(
            f'relation "{".".join(p for p in (schema, name) if p)}" does not exist.'
            + (f' Did you mean "{hint}"?' if hint else "")
            + f" tally's tables: {', '.join(names[:12])}{'...' if len(names) > 12 else ''}."
        )
    return found


def _unknown_column(name: str, table: Table) -> UndefinedColumn:
    hint = did_you_mean(name, [c.name for c in table.columns])
    return UndefinedColumn(f'column "{name}" does not exist in {table.name}.'
                           + (f' Did you mean "{hint}"?' if hint else ""))


# One SELECT over a tally table ---------------------------------------------------------

def translate_select(select: exp.Select, table_node: exp.Table, catalog: SqlCatalog,
                     relation: str, dialect: str) -> tuple[MetricSelect, exp.Select]:
    """The metric query of a SELECT over a tally table, and the SELECT rewritten over its
    result."""
    table = resolve_table(catalog, table_node)
    if select.args.get("joins"):
        raise Unsupported(
            "tally answers one metric query per SELECT: a join of tally tables (or of a tally "
            "table with anything) cannot be answered exactly. Ask for every metric in one "
            f"SELECT instead, e.g. {EXAMPLE}; or join the results of two subqueries."
        )
    for node in select.find_all(exp.Subquery, exp.Select):
        if node is not select:
            raise Unsupported("A subquery inside a SELECT over a tally table is not supported; "
                              "put the metric query in the innermost SELECT.")
    alias = table_node.alias_or_name
    qualifiers = {table.name, alias.lower() if alias else table.name}
    empty = _is_empty(select)
    if table.saved_query:
        request = QueryRequest.create(saved_query=table.saved_query)
        rewritten = select.copy()
        rewritten.set("from_", exp.From(this=exp.to_table(relation).as_(alias or table.name)))
        return MetricSelect(request, relation, table.columns, empty), rewritten
    state = _Select(catalog, table, qualifiers, dialect)
    stars = [p for p in select.expressions if isinstance(p, exp.Star)
             or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))]
    if stars:
        if not empty:
            raise Unsupported(
                "SELECT * over metrics would be every metric by every group-by; name the "
                f"columns you want and group them, e.g. {EXAMPLE}."
            )
        return _shape_only(select, table, relation)
    projections = list(select.expressions)
    aliases = {p.alias.lower(): p.this for p in projections if isinstance(p, exp.Alias)}
    group = select.args.get("group")
    if group is not None:
        state.explicit_groups = True
        for item in group.expressions:
            target = _group_target(item, projections, aliases, table)
            name = _group_term(target, state)
            if name is None:
                raise Unsupported(
                    f"GROUP BY {item.sql('postgres')}: tally groups by its dimensions, and by "
                    "DATE_TRUNC or EXTRACT over a time dimension; an expression over them "
                    "cannot be answered exactly. Group by the dimension and transform it in "
                    "an outer SELECT."
                )
            if name not in state.group_by:
                state.group_by.append(name)
    where = select.args.get("where")
    filters = _filters(where.this, state) if where is not None else []
    out = exp.Select()
    for projection in projections:
        alias_name = projection.alias if isinstance(projection, exp.Alias) else None
        body = projection.this if isinstance(projection, exp.Alias) else projection
        rewritten = _rewrite(body.copy(), state)
        out = out.select(exp.alias_(rewritten, alias_name or _column_name(body, state),
                                    quoted=True), copy=False)
    having = select.args.get("having")
    if having is not None:
        out.set("where", exp.Where(this=_rewrite(having.this.copy(), state)))
    order = select.args.get("order")
    if order is not None:
        ordered = []
        for item in order.expressions:
            target = item.this
            if isinstance(target, exp.Literal) and not target.is_string:
                ordered.append(item.copy())  # a position in the SELECT list, as written
                continue
            if isinstance(target, exp.Column) and not target.table and \
                    identifier(target) in aliases and table.column(identifier(target)) is None:
                ordered.append(item.copy())
                continue
            copy = item.copy()
            copy.set("this", _rewrite(target.copy(), state))
            ordered.append(copy)
        out.set("order", exp.Order(expressions=ordered))
    for key in ("limit", "offset", "distinct"):
        if select.args.get(key) is not None:
            out.set(key, select.args[key].copy())
    out.set("from_", exp.From(this=exp.to_table(relation)))
    if not state.metrics and not state.group_by:
        raise Unsupported(f"Name at least one metric or group-by of metrics, e.g. {EXAMPLE}.")
    request = QueryRequest.create(metrics=state.metrics, group_by=state.group_by,
                                  where=filters or None)
    columns = tuple(table.column(n) or Column(n, _group_type(n, state)) for n in
                    [*state.group_by, *state.metrics])
    null_row = _never(select) and not state.group_by and group is None
    return MetricSelect(request, relation, columns, empty, null_row), out


def _shape_only(select: exp.Select, table: Table, relation: str) -> tuple[MetricSelect, exp.Select]:
    """SELECT * ... LIMIT 0: the table's columns, no rows, no query."""
    out = select.copy()
    out.set("from_", exp.From(this=exp.to_table(relation)))
    out.set("where", None)
    request = QueryRequest.create(metrics=[c.name for c in table.columns if c.metric][:1])
    return MetricSelect(request, relation, table.columns, empty=True), out


def _is_empty(select: exp.Select) -> bool:
    limit = select.args.get("limit")
    if limit is not None:
        value = limit.expression if isinstance(limit, exp.Limit) else limit
        if isinstance(value, exp.Literal) and not value.is_string and value.this in ("0", 0):
            return True
    return _never(select)


def _never(select: exp.Select) -> bool:
    """WHERE 1 = 0 (or FALSE, AND-ed with anything): no row passes."""
    where = select.args.get("where")
    return where is not None and any(_constant(c) is False for c in _conjuncts(where.this))


def _constant(node: exp.Expression) -> bool | None:
    """The value of a condition without columns that BI tools write (1 = 1, 1 = 0, TRUE,
    NOT FALSE); None for anything else."""
    if isinstance(node, exp.Paren):
        return _constant(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Not):
        inner = _constant(node.this)
        return None if inner is None else not inner
    if type(node) in (exp.EQ, exp.NEQ):
        left, right = _literal(node.this), _literal(node.expression)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool)
                      for v in (left, right))
        if not numbers and not all(isinstance(v, str) for v in (left, right)):
            return None
        same = float(left) == float(right) if numbers else left == right  # type: ignore[arg-type]
        return same if isinstance(node, exp.EQ) else not same
    return None


def _group_target(item: exp.Expression, projections: list[exp.Expression],
                  aliases: dict[str, exp.Expression], table: Table) -> exp.Expression:
    if isinstance(item, exp.Literal) and not item.is_string:
        index = int(item.this)
        if not 1 <= index <= len(projections):
            raise GroupingError(f"GROUP BY position {index} is not in select list.")
        projection = projections[index - 1]
        return projection.this if isinstance(projection, exp.Alias) else projection
    if isinstance(item, exp.Column) and not item.table:
        name = identifier(item)
        if table.column(name) is None and name in aliases:
            return aliases[name]
    return item


# Terms: what a piece of a SELECT over metrics stands for -----------------------------------

def _column(node: exp.Expression, state: _Select) -> Column | None:
    """The metrics column a Column node names (UndefinedColumn for an unknown name)."""
    if not isinstance(node, exp.Column) or isinstance(node.this, exp.Star):
        return None
    if node.table and node.table.lower() not in state.qualifiers:
        raise UndefinedColumn(f'missing FROM-clause entry for table "{node.table}".')
    name = identifier(node)
    column = state.table.column(name)
    if column is None:
        raise _unknown_column(name, state.table)
    return column


def _time_base(node: exp.Expression, state: _Select) -> tuple[str, str | None] | None:
    """(time dimension, grain) of a column of a time dimension (bare or at a grain)."""
    column = _column(node, state)
    if column is None or column.metric:
        return None
    base, grain = split_grain(column.name)
    info = state.catalog.time_dimensions.get(base)
    if info is None:
        return None
    return base, grain or (info.grains[0] if info.grains else "day")


def _group_term(node: exp.Expression, state: _Select) -> str | None:
    """The group-by name an expression stands for, or None."""
    if isinstance(node, exp.Paren):
        return _group_term(node.this, state)
    if isinstance(node, exp.Column):
        column = _column(node, state)
        return None if column is None or column.metric else column.name
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc):
        unit = node.args.get("unit")
        grain = _UNITS.get(unit.name.lower() if unit is not None else "")
        base = _time_base(node.this, state)
        if base is None:
            return None
        if grain is None:
            raise Unsupported(f"DATE_TRUNC('{unit.name.lower() if unit else ''}', ...) is not "
                              f"a grain tally serves; use one of {', '.join(g for g in _UNITS if _UNITS[g])}.")  # noqa: E501
        info = state.catalog.time_dimensions[base[0]]
        grain = _truncated(base[1], grain)
        if info.grains and grain not in info.grains:
            raise Unsupported(f"{base[0]} is not available by {grain}; its grains: "
                              f"{', '.join(info.grains)}.")
        return f"{base[0]}__{grain}"
    if isinstance(node, exp.Extract):
        part = _PARTS.get(node.this.name.lower())
        base = _time_base(node.expression, state)
        if base is None:
            return None
        if part is None or part not in DATE_PARTS:
            raise Unsupported(f"EXTRACT({node.this.name} FROM ...) is not a date part tally "
                              f"serves; use one of {', '.join(sorted(set(_PARTS.values())))}.")
        level = {"year": "year", "quarter": "quarter", "month": "month"}.get(part, "day")
        if _LEVEL.get(base[1], 0) > _LEVEL["day"] and (
                base[1] == "week" or _LEVEL[level] < _LEVEL[base[1]]):
            raise Unsupported(
                f"EXTRACT({part} FROM ...) of a column at the {base[1]} grain is not a date "
                f"part of its rows' own days; extract it from {base[0]} itself.")
        return f"{base[0]}__extract_{part}"
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.TimestampTrunc | exp.DateTrunc):
        return None  # a cast is the outer SELECT's business: group by the DATE_TRUNC itself
    return None


_LEVEL = {"nanosecond": -6, "microsecond": -5, "millisecond": -4, "second": -3, "minute": -2,
          "hour": -1, "day": 0, "week": 1, "month": 2, "quarter": 3, "year": 4}


def _truncated(column_grain: str, unit: str) -> str:
    """DATE_TRUNC(unit, a column already at column_grain): the coarser of the two where they
    nest (a month truncated to its year is the year); weeks nest with days only."""
    if column_grain == unit or _LEVEL.get(column_grain, 0) <= _LEVEL["day"]:
        return unit if _LEVEL[unit] >= _LEVEL.get(column_grain, 0) else column_grain
    if "week" in (column_grain, unit):
        raise Unsupported(f"DATE_TRUNC('{unit}', ...) of a column at the {column_grain} grain "
                          "is not one of tally's grains (weeks and months do not nest); "
                          "truncate the time dimension itself.")
    return unit if _LEVEL[unit] > _LEVEL[column_grain] else column_grain


def _metric_of(node: exp.Expression, state: _Select) -> str | None:
    """The metric an aggregate stands for (checked against the metric's own aggregation)."""
    name = None
    if isinstance(node, exp.Anonymous) and node.name.lower() in _MEASURE_NAMES:
        name = node.name.lower()
    elif type(node).__name__ == "Agg":
        name = "agg"
    if name is not None:
        args = node.expressions if isinstance(node, exp.Anonymous) else [node.this]
        column = _column(args[0], state) if len(args) == 1 else None
        if column is None or not column.metric:
            raise Unsupported(f"{name.upper()}() takes one metric column, e.g. "
                              "MEASURE(revenue).")
        return column.name
    kind = _AGGREGATES.get(type(node))
    if kind is None:
        return None
    inner = node.this
    distinct = isinstance(inner, exp.Distinct)
    if distinct:
        inner = inner.expressions[0] if len(inner.expressions) == 1 else None
    if isinstance(inner, exp.Star) or inner is None:
        raise Unsupported(
            "COUNT(*) over metrics has no meaning: its rows are not records. Count with a "
            "metric (MEASURE(order_count) or similar), e.g. " + EXAMPLE + "."
        )
    column = _column(inner, state) if isinstance(inner, exp.Column) else None
    if column is None or not column.metric:
        raise Unsupported(
            f"{node.sql('postgres')}: an aggregate over a group-by (or an expression) cannot be "
            "answered exactly from metrics; aggregate metric columns only, and transform "
            "group-bys in an outer SELECT."
        )
    facts = state.catalog.metrics[column.name]
    if distinct and kind != "count":
        raise GroupingError(f"{node.sql('postgres')}: DISTINCT over a metric's values is not "
                            f"the metric; write MEASURE({column.name}).")
    wanted = "count_distinct" if kind == "count" and distinct else kind
    if wanted not in facts.aggregates:
        allowed = ", ".join(_spell(a, column.name) for a in facts.aggregates)
        raise GroupingError(
            f"{node.sql('postgres')} is not the aggregation of metric '{column.name}' "
            f"(a {facts.type} metric){f', which is {allowed}' if allowed else ''}: re-aggregating "
            f"it would give wrong numbers. Write MEASURE({column.name}) for the metric's own "
            "aggregation."
        )
    return column.name


def _spell(aggregate: str, name: str) -> str:
    return f"COUNT(DISTINCT {name})" if aggregate == "count_distinct" else \
        f"{aggregate.upper()}({name})"


def _rewrite(node: exp.Expression, state: _Select) -> exp.Expression:
    """An expression of the SELECT list, HAVING or ORDER BY, over the result's columns."""

    def visit(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Window) and isinstance(n.this, exp.AggFunc) and \
                isinstance(n.this.this, exp.AggFunc | exp.Anonymous):
            # SUM(SUM(revenue)) OVER (...): a window over the groups' values, which the outer
            # layer computes over the result's rows (the inner aggregate is the metric).
            window = n.copy()
            window.this.set("this", _transform(window.this.this, visit))
            for key in ("partition_by", "order"):
                value = window.args.get(key)
                if isinstance(value, list):
                    window.set(key, [_transform(v, visit) for v in value])
                elif isinstance(value, exp.Expression):
                    window.set(key, _transform(value, visit))
            return window
        if isinstance(n, exp.Window | exp.Filter) and _metric_of(n.this, state) is not None:
            raise Unsupported(
                f"{n.sql('postgres')[:80]}: a window or FILTER over a metric's own aggregate "
                "is not its value; aggregate the metric first (e.g. SUM(SUM(revenue)) OVER "
                "()), or filter with WHERE.")
        metric = _metric_of(n, state)
        if metric is not None:
            state.add_metric(metric)
            return exp.column(metric, quoted=True)
        name = _group_term(n, state)
        if name is not None:
            state.add_group(name)
            return exp.column(name, quoted=True)
        column = _column(n, state) if isinstance(n, exp.Column) else None
        if column is not None and column.metric:
            state.add_metric(column.name)
            return exp.column(column.name, quoted=True)
        return n

    return _transform(node, visit)


def _transform(node: exp.Expression, visit: Callable[[exp.Expression], exp.Expression]
               ) -> exp.Expression:
    """Top-down: a node that `visit` replaces is not descended into."""
    replaced = visit(node)
    if replaced is not node:
        return replaced
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _transform(value, visit))
        elif isinstance(value, list):
            node.set(key, [_transform(v, visit) if isinstance(v, exp.Expression) else v
                           for v in value])
    return node


def pg_column_name(node: exp.Expression) -> str:
    """PostgreSQL's name for an unnamed SELECT item over any table."""
    return _column_name(node, None)


def like_escapes(tree: exp.Expression) -> exp.Expression:
    """LIKE with PostgreSQL's default escape character said out loud (DuckDB has none): a
    pattern 'order\\_%' matches order_ and nothing else on every engine."""

    def visit(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Like | exp.ILike) and not isinstance(node.parent, exp.Escape):
            return exp.Escape(this=node, expression=exp.Literal.string("\\"))
        return node

    return tree.transform(visit, copy=False)


def _column_name(node: exp.Expression, state: _Select | None) -> str:
    """PostgreSQL's name for an unnamed SELECT item (a column's name, a function's name)."""
    if isinstance(node, exp.Column):
        return identifier(node)
    if isinstance(node, exp.Anonymous) and node.name.lower() in _MEASURE_NAMES and \
            node.expressions and isinstance(node.expressions[0], exp.Column):
        return identifier(node.expressions[0])
    if type(node).__name__ == "Agg" and isinstance(node.this, exp.Column):
        return identifier(node.this)
    names = {exp.TimestampTrunc: "date_trunc", exp.DateTrunc: "date_trunc",
             exp.Extract: "extract", exp.CurrentVersion: "version",
             exp.CurrentSchema: "current_schema", exp.CurrentUser: "current_user",
             exp.CurrentDate: "current_date", exp.CurrentTimestamp: "now"}
    if type(node) in names:
        return names[type(node)]
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    if isinstance(node, exp.Cast):
        return _column_name(node.this, state)
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        return _column_name(node.expression, state)
    if isinstance(node, exp.Boolean):
        return "bool"
    return "?column?"


def _group_type(name: str, state: _Select):
    from tally.sql import pgtypes

    base, part = split_date_part(name)
    if part:
        return pgtypes.INT8
    base, grain = split_grain(name)
    if base in state.catalog.time_dimensions:
        return pgtypes.TIMESTAMP if grain in SUB_DAILY else pgtypes.DATE
    return pgtypes.TEXT


# WHERE ------------------------------------------------------------------------------------

def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _filters(node: exp.Expression, state: _Select) -> list[Where]:
    out: list[Where] = []
    for conjunct in _conjuncts(node):
        if _constant(conjunct) is not None:
            continue  # 1 = 1 (kept out) or 1 = 0 (the SELECT is known empty: _is_empty)
        _check_filter(conjunct, state)
        structured = _structured(conjunct, state)
        out.append(structured if structured is not None else _template(conjunct, state))
    return out


def _check_filter(node: exp.Expression, state: _Select) -> None:
    for n in node.walk():
        if isinstance(n, exp.AggFunc) or _is_measure_call(n):
            raise GroupingError("aggregate functions are not allowed in WHERE; filter on a "
                                "metric with HAVING, e.g. HAVING MEASURE(revenue) > 1000.")
        if isinstance(n, exp.Column):
            column = _column(n, state)
            if column is not None and column.metric:
                raise GroupingError(
                    f"WHERE {column.name} ...: a metric is a value of a group, not of a row; "
                    f"filter on it with HAVING MEASURE({column.name}) ...")


def _is_measure_call(n: exp.Expression) -> bool:
    return (isinstance(n, exp.Anonymous) and n.name.lower() in _MEASURE_NAMES) or \
        type(n).__name__ == "Agg"


def _literal(node: exp.Expression) -> str | int | float | bool | dt.date | dt.datetime | None:
    """The value of a literal (with casts and the time functions BI tools wrap dates in)."""
    if isinstance(node, exp.Paren):
        return _literal(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = str(node.this)
        return float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(node, exp.Neg):
        value = _literal(node.this)
        return -value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Cast | exp.TryCast):
        value = _literal(node.this)
        to = node.to.this if isinstance(node.to, exp.DataType) else None
        if isinstance(value, str) and to in (exp.DataType.Type.DATE,):
            return _parse_time(value, date_only=True)
        if isinstance(value, str) and to in (exp.DataType.Type.TIMESTAMP,
                                             exp.DataType.Type.TIMESTAMPTZ,
                                             exp.DataType.Type.DATETIME):
            return _parse_time(value)
        if isinstance(value, str) and to in (exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR):
            return value
        return None  # CAST(1.5 AS INT) is 2: the warehouse evaluates it (a where template)
    if isinstance(node, exp.StrToTime | exp.StrToDate | exp.TsOrDsToDate):
        value = _literal(node.this)
        return _parse_time(value) if isinstance(value, str) else None
    return None


def _parse_time(text: str, date_only: bool = False) -> dt.date | dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1)
                                          if "T" not in text else text.strip())
    except ValueError:
        raise Unsupported(f"Cannot read {text!r} as a date or time; write it as "
                          "'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.date() if date_only else value


def _structured(node: exp.Expression, state: _Select) -> StructuredFilter | None:
    negate = False
    if isinstance(node, exp.Not):
        negate, node = True, node.this
        if isinstance(node, exp.Paren):
            node = node.this
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        name = _group_term(node.this, state)
        if name is None:
            return None
        return _make(name, "is_not_null" if negate else "is_null", [], state)
    if isinstance(node, exp.In) and not node.args.get("query"):
        name = _group_term(node.this, state)
        values = [_literal(v) for v in node.expressions]
        if name is None or any(v is None for v in values) or not values:
            return None
        return _make(name, "not_in" if negate else "in", values, state)
    if negate:
        return None
    if isinstance(node, exp.Between):
        name = _group_term(node.this, state)
        low, high = _literal(node.args["low"]), _literal(node.args["high"])
        if name is None or low is None or high is None:
            return None
        if node.args.get("symmetric"):
            try:
                low, high = sorted((low, high), key=_order_key)
            except TypeError:
                return None
        return _make(name, "between", [low, high], state)
    if type(node) in _OPS:
        left, right, kind = node.this, node.expression, type(node)
        name = _group_term(left, state)
        value = _literal(right)
        if name is None:
            name, value, kind = _group_term(right, state), _literal(left), _FLIP[kind]
        if name is None or value is None:
            return None
        return _make(name, _OPS[kind], [value], state)
    return None


def _order_key(value: object) -> object:
    if isinstance(value, str):
        try:
            return _parse_time(value)
        except Unsupported:
            return value
    return value


def _make(name: str, op: str, values: list, state: _Select) -> StructuredFilter | None:
    base, part = split_date_part(name)
    if part:
        return None  # a date part: a where template says it
    base, grain = split_grain(name)
    info = state.catalog.time_dimensions.get(base)
    if info is None:
        if any(isinstance(v, dt.date) for v in values):
            values = [v.isoformat() if isinstance(v, dt.date) else v for v in values]
        return StructuredFilter.parse({"dimension": name, "op": op, "values": values})
    grain = grain or (info.grains[0] if info.grains else "day")
    times = [_time_literal(v, dates=grain not in SUB_DAILY) for v in values]
    if grain not in SUB_DAILY:
        op, times = _on_dates(op, times)
    texts = [t.isoformat(sep=" ") if isinstance(t, dt.datetime) else t.isoformat()
             for t in times]
    return StructuredFilter.parse({"dimension": base, "op": op, "values": texts,
                                   "grain": grain})


def _time_literal(value: object, dates: bool) -> dt.date | dt.datetime:
    """A compared value: typed instants stay instants (see _on_dates); an untyped string
    takes the column's type, as PostgreSQL casts it: a date column reads '2025-03-01 12:00'
    as the date 2025-03-01."""
    if isinstance(value, dt.datetime | dt.date):
        return value
    if isinstance(value, str):
        parsed = _parse_time(value)
        if isinstance(parsed, dt.datetime) and (dates or parsed.time() == dt.time()):
            return parsed.date()
        return parsed
    raise Unsupported(f"A time dimension compares with a date ('YYYY-MM-DD'), not {value!r}.")


def _on_dates(op: str, values: list[dt.date | dt.datetime]) -> tuple[str, list[dt.date]]:
    """A comparison of a date column with instants, as the same comparison with dates
    (PostgreSQL reads a date as its midnight): date >= '2025-01-01 12:00' is date >=
    2025-01-02, date < '2025-01-01 12:00' is date <= 2025-01-01."""
    within_day = [isinstance(v, dt.datetime) and v.time() != dt.time() for v in values]
    days = [v.date() if isinstance(v, dt.datetime) else v for v in values]
    if not any(within_day):
        return op, days
    if op in ("=",):
        raise Unsupported("A date never equals an instant within a day; compare with a date.")
    if op in (">", ">="):
        return ">=", [days[0] + dt.timedelta(days=1)]
    if op in ("<", "<="):
        return "<=", [days[0]]
    if op == "between":
        low = days[0] + dt.timedelta(days=1) if within_day[0] else days[0]
        return "between", [low, days[1]]
    raise Unsupported("Compare a date dimension with dates ('YYYY-MM-DD').")


def _template(node: exp.Expression, state: _Select) -> str:
    """A condition no structured filter says, as a where template written from its tree:
    every column a {{ Dimension(...) }} reference (the service checks the whole clause)."""
    references: list[FilterReference] = []

    def visit(n: exp.Expression) -> exp.Expression:
        name = _group_term(n, state)
        if name is None:
            value = _literal(n)
            if isinstance(value, dt.datetime | dt.date) and not isinstance(n, exp.Literal):
                text = value.isoformat(sep=" ") if isinstance(value, dt.datetime) \
                    else value.isoformat()
                return exp.Literal.string(text)
            return n
        references.append(_reference(name, state))
        return exp.column(f"__tally_sql_ref_{len(references) - 1}__")

    tree = like_escapes(_transform(node.copy(), visit))
    for n in tree.walk():
        if isinstance(n, exp.Column) and not n.name.startswith("__tally_sql_ref_"):
            raise Unsupported(f"Cannot filter on {n.sql('postgres')}.")
    sql = tree.sql(dialect=state.dialect, comments=False)
    for i, reference in enumerate(references):
        sql = sql.replace(f"__tally_sql_ref_{i}__", reference.template())
    return sql


def _reference(name: str, state: _Select) -> FilterReference:
    base, part = split_date_part(name)
    if part:
        return FilterReference("TimeDimension", base, date_part=part)
    base, grain = split_grain(name)
    info = state.catalog.time_dimensions.get(base)
    if info is not None:
        return FilterReference("TimeDimension", base, grain or (info.grains[0] if info.grains
                                                                  else "day"))
    if "__" not in name:  # a group-by name without a link is an entity (its key)
        return FilterReference("Entity", name)
    return FilterReference("Dimension", name)
