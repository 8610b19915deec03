"""Cumulative metrics against a hand-built daily series over raw.*: revenue since the start of
history, month to date and over a trailing 30-day window (the day and the 29 before it). At a
grain coarser than a day the value is the one on the last day of the period, and the last
period ends with the time spine on 2025-12-31."""

from __future__ import annotations

import datetime as dt

import pytest

from tally.core.caller import ANONYMOUS
from tests.support.hand_sql import (
    GRAINS,
    assert_rows_match,
    dim_filter,
    expected_rows,
    served_rows,
    trunc,
)

WINDOWS = {
    "cumulative_revenue": "rows between unbounded preceding and current row",
    "revenue_trailing_30d": "rows between 29 preceding and current row",
    # Month to date: the window restarts every month (partitioned by month below).
    "revenue_mtd": "rows between unbounded preceding and current row",
}
METRICS = list(WINDOWS)


def expected_cumulative(raw, metric: str, grain: str, where: str = "true",
                        by_country: bool = False):
    """One row per period: the window's revenue on the period's last day (null when the window
    holds no completed order). The day series is dense, so `rows` windows are day windows."""
    country = "customer__country" if by_country else "'all'"
    partition = ["p.part"] + (["date_trunc('month', s.day)"] if metric == "revenue_mtd" else [])
    body = f"""
    , daily as (
        select order_date as day, {country} as part, sum(net_amount) as revenue
        from enriched_orders
        where order_status = 'completed' and {where}
        group by all
    ),
    parts as (select distinct {country} as part from customer_dims),
    spine as (
        select cast(range as date) as day
        from range(date '2021-12-01', date '2026-01-01', interval 1 day)
    ),
    series as (
        select s.day, p.part,
               sum(d.revenue) over (
                   partition by {", ".join(partition)} order by s.day {WINDOWS[metric]}
               ) as value
        from spine as s
        cross join parts as p
        left join daily as d on d.day = s.day and d.part = p.part
    ),
    periods as (
        select {trunc(grain, 'day')} as period, part, value,
               row_number() over (partition by {trunc(grain, 'day')}, part
                                  order by day desc) as from_end,
               count(*) over (partition by {trunc(grain, 'day')}, part) as days
        from series
    )
    select period as metric_time__{grain}, part as customer__country, value as {metric}
    from periods where from_end = 1
    """
    return expected_rows(raw, body)


def completed_periods(raw, grain: str, where: str = "true", by_country: bool = False):
    country = ", customer__country" if by_country else ""
    return {tuple(r.values()) for r in expected_rows(raw, f"""
        select distinct {trunc(grain, 'order_date')} as period{country}
        from enriched_orders where order_status = 'completed' and {where}""")}


def check(service, raw, metric, grain, where_served=(), where_sql="true", by_country=False):
    group_by = [f"metric_time__{grain}"] + (["customer__country"] if by_country else [])
    served = served_rows(service, [metric], group_by, where_served)
    expected = expected_cumulative(raw, metric, grain, where_sql, by_country)
    if not by_country:
        for row in expected:
            del row["customer__country"]
    # A period is absent only when its window holds no order (expected null); otherwise the
    # served value must be the hand value on the period's last day.
    # A window holding only orders that are not completed sums to 0 (served) or null (hand).
    assert_rows_match(served, expected, group_by, metric, absent="zero")
    # Every period containing a completed order is served.
    served_keys = {tuple(r[k] for k in group_by) for r in served}
    missing = completed_periods(raw, grain, where_sql, by_country) - served_keys
    assert not missing, f"{metric}: periods with completed orders not served: {sorted(missing)[:5]}"
    return served


@pytest.mark.parametrize("grain", GRAINS)
@pytest.mark.parametrize("metric", METRICS)
def test_cumulative_metric_by_grain(service, raw, metric, grain):
    served = check(service, raw, metric, grain)
    last = served[-1][f"metric_time__{grain}"]
    assert last.year == 2025 and last <= dt.date(2025, 12, 31)


@pytest.mark.parametrize("grain", ["day", "week", "month"])
@pytest.mark.parametrize("metric", METRICS)
def test_cumulative_metric_small_country(service, raw, small_country, metric, grain):
    """A small country: days (and at day grain, whole windows) without orders exist."""
    check(service, raw, metric, grain, [dim_filter("customer__country", small_country)],
          f"customer__country = '{small_country}'")


# Grouped by a dimension, MetricFlow fills the time spine per day, not per (day, group), and
# reports a period by its last day that has a row. Exact where the window on a period's last
# day covers the whole period; those grains are served, the others refused.
EXACT_GROUPED = {
    "cumulative_revenue": GRAINS,
    "revenue_mtd": ("day", "month"),
    "revenue_trailing_30d": ("day",),
}


@pytest.mark.parametrize(("metric", "grain"), [
    (metric, grain) for metric, grains in EXACT_GROUPED.items() for grain in grains
])
def test_cumulative_metric_by_country(service, raw, metric, grain):
    check(service, raw, metric, grain, by_country=True)


INEXACT_GROUPED = [
    (metric, grain) for metric, grains in EXACT_GROUPED.items()
    for grain in GRAINS if grain not in grains
]


@pytest.mark.parametrize(("metric", "grain"), INEXACT_GROUPED)
def test_cumulative_metric_by_country_at_an_inexact_grain_is_refused(service, metric, grain):
    from tally.core.request import QueryRequest
    from tally.errors import InvalidQuery

    with pytest.raises(InvalidQuery, match="filter instead of grouping"):
        service.query(QueryRequest.create(
            metrics=[metric], group_by=[f"metric_time__{grain}", "customer__country"]), ANONYMOUS)


@pytest.mark.parametrize("metric", ["revenue_mtd", "revenue_trailing_30d"])
def test_what_is_refused_would_be_wrong(core_service, raw, metric):
    """The refusal is not caution for its own sake: compiled by MetricFlow without tally's
    check and run on the same warehouse, some (period, country) of a refused grain differs from
    the hand value on the period's last day."""
    from metricflow.engine.metricflow_engine import MetricFlowQueryRequest

    def day(value):
        return value.date() if isinstance(value, dt.datetime) else value

    wrong = []
    for grain in [g for m, g in INEXACT_GROUPED if m == metric]:
        key = f"metric_time__{grain}"
        request = MetricFlowQueryRequest.create(
            metric_names=[metric], group_by_names=[key, "customer__country"])
        sql = core_service.compiler._engine.explain(request).sql_statement.sql
        hand = {(r[key], r["customer__country"]): r[metric] or 0
                for r in expected_cumulative(raw, metric, grain, by_country=True)}
        wrong += [row for row in core_service.warehouse.execute(sql).to_pylist()
                  if row[metric] != hand.get((day(row[key]), row["customer__country"]), 0)]
    assert wrong, f"{metric}: MetricFlow answers every refused grain right; allow them"


@pytest.mark.parametrize("metric", ["revenue_mtd", "revenue_trailing_30d"])
def test_cumulative_metric_by_country_alone_is_refused(service, metric):
    from tally.core.request import QueryRequest
    from tally.errors import InvalidQuery

    with pytest.raises(InvalidQuery, match="metric_time"):
        service.query(QueryRequest.create(metrics=[metric], group_by=["customer__country"]),
                      ANONYMOUS)


def test_cumulative_revenue_by_country_alone_is_the_revenue_to_date(service, raw):
    served = served_rows(service, ["cumulative_revenue"], ["customer__country"])
    expected = expected_rows(raw, """
        select customer__country, sum(net_amount) as cumulative_revenue
        from enriched_orders where order_status = 'completed' group by 1""")
    assert_rows_match(served, expected, ["customer__country"], "cumulative_revenue",
                      min_rows=5)


def test_trailing_window_is_30_days_inclusive(raw):
    """The hand window itself covers exactly the day and the 29 before it: the value on a day
    equals a direct sum over [day - 29, day]."""
    rows = expected_cumulative(raw, "revenue_trailing_30d", "day")
    by_day = {r["metric_time__day"]: r["revenue_trailing_30d"] for r in rows}
    direct = expected_rows(raw, """
        select sum(net_amount) as v from completed
        where order_date between date '2024-03-31' - interval 29 day and date '2024-03-31'""")
    assert by_day[dt.date(2024, 3, 31)] == direct[0]["v"]
