"""The correctness suite's reference helpers: served rows from tally, expected rows from SQL written
by hand over raw.* ONLY (never the dbt models), and a strict row-by-row comparison.

Every expected value comes from the CTEs below, which restate docs/data.md over the raw tables:
valid customers, order totals from lines, customer attributes (lifetime value, segment, status)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest

GRAINS = ("day", "week", "month", "quarter", "year")
AS_OF = dt.date(2025, 12, 31)
HISTORY_START = dt.date(2022, 1, 1)
HISTORY_END = AS_OF

FLOAT_TOL = 1e-9

# Dimensions of the order metrics and the column of `enriched_orders` that holds each one.
ORDER_DIMENSIONS = (
    "customer__country",
    "customer__customer_segment",
    "customer__customer_status",
    "order__order_status",
)

# The cleaning rules and the customer attributes of docs/data.md, restated over raw.* only.
# Columns of enriched_orders are named like tally's group-by items so the tests can group by them.
VALID_ORDERS = """
valid_customers as (
    select
        customer_id,
        country,
        cast(created_at as date) as signup_date
    from raw.customers
    where lower(trim(email)) is not null
      and lower(trim(email)) <> ''
      and contains(lower(trim(email)), '@')
      and lower(trim(first_name)) is not null
      and lower(trim(first_name)) <> ''
      and lower(trim(last_name)) is not null
      and lower(trim(last_name)) <> ''
),
order_lines as (
    select
        order_id,
        sum(unit_price * quantity) as gross_amount,
        sum(discount_amount) as total_discount,
        sum(unit_price * quantity - discount_amount) as net_amount,
        sum(quantity) as total_quantity
    from raw.order_items
    group by order_id
),
valid_orders as (
    select
        o.order_id,
        o.customer_id,
        o.order_date,
        o.order_status,
        l.gross_amount,
        l.total_discount,
        l.net_amount,
        l.total_quantity
    from raw.orders as o
    join valid_customers as c on c.customer_id = o.customer_id
    join order_lines as l on l.order_id = o.order_id
),
completed as (
    select * from valid_orders where order_status = 'completed'
),
customer_attrs as (
    select
        c.customer_id,
        c.country,
        c.signup_date,
        coalesce(sum(o.net_amount), 0) as lifetime_value,
        count(o.order_id) as completed_order_count,
        min(o.order_date) as first_order_date,
        max(o.order_date) as last_order_date,
        case
            when coalesce(sum(o.net_amount), 0) >= 1000 then 'High Value'
            when coalesce(sum(o.net_amount), 0) >= 500 then 'Medium Value'
            when coalesce(sum(o.net_amount), 0) >= 100 then 'Low Value'
            else 'New Customer'
        end as customer_segment,
        case
            when max(o.order_date) is null then 'Prospect'
            when max(o.order_date) >= date '2025-12-31' - interval 30 day then 'Active'
            when max(o.order_date) >= date '2025-12-31' - interval 90 day then 'At Risk'
            when max(o.order_date) >= date '2025-12-31' - interval 365 day then 'Dormant'
            else 'Churned'
        end as customer_status
    from valid_customers as c
    left join completed as o on o.customer_id = c.customer_id
    group by c.customer_id, c.country, c.signup_date
),
customer_dims as (
    select
        a.*,
        a.country as customer__country,
        a.customer_segment as customer__customer_segment,
        a.customer_status as customer__customer_status
    from customer_attrs as a
),
enriched_orders as (
    select
        o.*,
        a.country as customer__country,
        a.customer_segment as customer__customer_segment,
        a.customer_status as customer__customer_status,
        o.order_status as order__order_status
    from valid_orders as o
    join customer_attrs as a on a.customer_id = o.customer_id
)
"""

# Lines of completed orders with their product (the item metrics of docs/data.md), after
# VALID_ORDERS: `expected_rows(raw, f"{ITEM_LINES} select ... from item_lines")`.
ITEM_LINES = """
, item_lines as (
    select
        o.order_date,
        o.customer__country,
        o.customer__customer_segment,
        o.customer__customer_status,
        p.category as product__category,
        i.unit_price * i.quantity - i.discount_amount as line_net,
        i.quantity * p.unit_cost as line_cost
    from raw.order_items as i
    join enriched_orders as o on o.order_id = i.order_id
    join raw.products as p on p.product_id = i.product_id
    where o.order_status = 'completed'
)
"""

# The cohort retention grid (docs/data.md): cohort = month of a valid customer's first completed
# order; period p = months from it to a completed order's month; every cohort has periods
# 0 .. (months to 2025-12). `select * from cells` after it.
COHORT_GRID = """
, firsts as (
    select customer_id, cast(date_trunc('month', first_order_date) as date) as cohort_month
    from customer_attrs
    where first_order_date is not null
),
activity as (
    select distinct
        f.customer_id,
        f.cohort_month,
        date_diff('month', f.cohort_month, cast(date_trunc('month', c.order_date) as date)) as p
    from completed as c
    join firsts as f on f.customer_id = c.customer_id
),
sizes as (
    select cohort_month, count(*) as n from firsts group by cohort_month
),
grid as (
    select cohort_month, n,
           unnest(range(0, date_diff('month', cohort_month, date '2025-12-01') + 1)) as p
    from sizes
),
cells as (
    select
        g.cohort_month as cohort__cohort_month__month,
        g.p as cohort__period_number,
        g.n as cohort_customers,
        count(a.customer_id) as retained_customers,
        cast(count(a.customer_id) as double) / g.n as retention_rate,
        case when g.p = 0 then g.n end as cohort_size
    from grid as g
    left join activity as a on a.cohort_month = g.cohort_month and a.p = g.p
    group by g.cohort_month, g.p, g.n
)
"""


def trunc(grain: str, column: str) -> str:
    """The period a date falls in, as a date (weeks start on Monday)."""
    assert grain in GRAINS, grain
    return f"cast(date_trunc('{grain}', {column}) as date)"


def dim_filter(dimension: str, value: str) -> str:
    """A tally where-clause `dimension = 'value'`."""
    return f"{{{{ Dimension('{dimension}') }}}} = '{value}'"


def served_rows(
    service: Any,
    metrics: Sequence[str],
    group_by: Sequence[str] = (),
    where: Sequence[str] = (),
    start: str | None = None,
    end: str | None = None,
) -> list[dict[str, Any]]:
    """Run a query through tally and return its rows as dicts (column name -> Python value)."""
    request = QueryRequest.create(
        metrics=list(metrics), group_by=list(group_by), where=list(where),
        order_by=None, limit=None, start=start, end=end,
    )
    result = service.query(request, ANONYMOUS)
    names = result.table.column_names
    expected_names = [*group_by, *metrics]
    assert names == expected_names, f"served columns {names}, expected {expected_names}"
    return result.table.to_pylist()


def expected_rows(raw: Any, body: str, ctes: str = VALID_ORDERS) -> list[dict[str, Any]]:
    """Run hand-written SQL (prefixed with the raw.* CTEs) and return rows as dicts."""
    sql = f"with {ctes}\n{body}" if ctes else body
    cursor = raw.execute(sql)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def scalar(raw: Any, body: str, ctes: str = VALID_ORDERS) -> Any:
    rows = expected_rows(raw, body, ctes)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return next(iter(rows[0].values()))


_MUST_BE_PRESENT = object()


def _is_zero_or_null(value: Any) -> bool:
    return value is None or (not isinstance(value, float) and value == 0)


def _values_equal(served: Any, expected: Any, tol: float | None, null_is_zero: bool) -> bool:
    if null_is_zero and (served is None or expected is None):
        return _is_zero_or_null(served) and _is_zero_or_null(expected)
    if served is None or expected is None:
        return served is None and expected is None
    if tol is not None:
        if isinstance(served, bool) or isinstance(expected, bool):
            return False
        return math.isclose(float(served), float(expected), rel_tol=tol, abs_tol=tol * 1e-3)
    # Exact comparison: money and counts must not have gone through floating point.
    if isinstance(served, float) or isinstance(expected, float):
        return False
    if isinstance(served, Decimal | int) and isinstance(expected, Decimal | int):
        return Decimal(served) == Decimal(expected)
    return served == expected


def assert_rows_match(
    served: Iterable[dict[str, Any]],
    expected: Iterable[dict[str, Any]],
    keys: Sequence[str],
    metric: str,
    tol: float | None = None,
    absent: str = "forbidden",
    expected_metric: str | None = None,
    min_rows: int = 1,
) -> int:
    """Compare served and expected rows key by key; return the number of non-null matches.

    tol: None compares exactly (Decimal / int, no float allowed); otherwise math.isclose.
    absent: what a key present on one side only means.
      "forbidden": never allowed (every row must be on both sides).
      "zero": allowed when the other side's value is 0 or null (simple metrics: MetricFlow
              serves no row for a period without events, a hand GROUP BY has none either);
              in this mode a null on one side also equals a 0 on the other (a sum over no
              completed orders, e.g. revenue of the cancelled orders, is 0 or null).
      "null": allowed when the other side's value is null (ratios and derived metrics).
    """
    assert absent in ("forbidden", "zero", "null"), absent
    expected_metric = expected_metric or metric
    served_by_key: dict[tuple, Any] = {}
    for row in served:
        key = tuple(row[k] for k in keys)
        assert key not in served_by_key, f"{metric}: duplicate served row for {key}"
        served_by_key[key] = row[metric]
    expected_by_key: dict[tuple, Any] = {}
    for row in expected:
        key = tuple(row[k] for k in keys)
        assert key not in expected_by_key, f"{metric}: duplicate expected row for {key}"
        expected_by_key[key] = row[expected_metric]
    assert len(expected_by_key) >= min_rows, (
        f"{metric}: the hand computation has {len(expected_by_key)} rows (< {min_rows}); "
        "the test would be vacuous")

    problems: list[str] = []
    matched = 0
    for key in sorted(set(served_by_key) | set(expected_by_key), key=_sort_key):
        in_served, in_expected = key in served_by_key, key in expected_by_key
        s = served_by_key.get(key)
        e = expected_by_key.get(key)
        if in_served and in_expected:
            if _values_equal(s, e, tol, absent == "zero"):
                matched += e is not None
            else:
                where = dict(zip(keys, key, strict=True))
                problems.append(f"{where}: expected {e!r}, served {s!r}")
            continue
        other = s if in_served else e
        side = "served only" if in_served else "expected only (absent from served)"
        ok = (absent == "zero" and _is_zero_or_null(other)) or (absent == "null" and other is None)
        if not ok:
            problems.append(f"{dict(zip(keys, key, strict=True))}: {side}, value {other!r}")
    assert not problems, (
        f"{metric}: {len(problems)} mismatching rows of {len(expected_by_key)} expected "
        f"({len(served_by_key)} served); first ones:\n  " + "\n  ".join(problems[:15]))
    assert matched >= min_rows, f"{metric}: only {matched} non-null values compared"
    return matched


def _sort_key(key: tuple) -> tuple:
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in key)


def group_columns(group_by: Sequence[str], time_column: str) -> str:
    """The select list of a hand query: metric_time__<grain> is the truncated time column, any
    other group-by item is a column of the same name in the CTE queried."""
    columns = []
    for item in group_by:
        if item.startswith("metric_time__"):
            columns.append(f"{trunc(item.removeprefix('metric_time__'), time_column)} as {item}")
        else:
            columns.append(item)
    return ", ".join(columns)


def months_between(start: dt.date, end: dt.date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month
