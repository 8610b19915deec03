"""Offset (derived) metrics against hand-written SQL over raw.*: month-over-month revenue growth
at month grain and year-over-year growth at month and year grain, including the edges of history
(no prior period: null) and a small country with months without revenue."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.hand_sql import (
    FLOAT_TOL,
    HISTORY_START,
    assert_rows_match,
    dim_filter,
    expected_rows,
    served_rows,
    trunc,
)

OFFSETS = {"revenue_growth_mom": "1 month", "revenue_growth_yoy": "1 year"}


def expected_growth(raw, metric: str, grain: str, where: str = "true", by_country=False):
    """Growth of revenue over the prior period (one month / one year before), for every period
    of history: null when the prior period has no revenue (nothing to grow from, e.g. the first
    period of history); -1 when the period itself has no completed order, whether or not it has
    other orders. Column `no_revenue` flags the latter."""
    country = "customer__country" if by_country else "'all'"
    body = f"""
    , periods as (
        select {trunc(grain, 'order_date')} as period, {country} as part,
               sum(net_amount) as revenue
        from enriched_orders
        where order_status = 'completed' and {where}
        group by all
    ),
    spine as (
        select distinct {trunc(grain, 'range')} as period
        from range(date '2022-01-01', date '2026-01-01', interval 1 day)
    ),
    parts as (select distinct {country} as part from customer_dims)
    select s.period as metric_time__{grain}, p.part as customer__country,
           cast(coalesce(cur.revenue, 0) - prev.revenue as double)
               / cast(nullif(prev.revenue, 0) as double) as {metric},
           coalesce(cur.revenue, 0) = 0 as no_revenue
    from spine as s
    cross join parts as p
    left join periods as cur on cur.period = s.period and cur.part = p.part
    left join periods as prev
      on prev.period = s.period - interval {OFFSETS[metric]} and prev.part = p.part
    """
    rows = expected_rows(raw, body)
    for row in rows:
        if not by_country:
            del row["customer__country"]
    return rows


def check(service, raw, metric, grain, where_served=(), where_sql="true", by_country=False):
    """Served values equal the hand values, -100 % months included. Only null values may be
    missing a row (a period with neither revenue nor prior revenue)."""
    group_by = [f"metric_time__{grain}"] + (["customer__country"] if by_country else [])
    served = served_rows(service, [metric], group_by, where_served)
    expected = expected_growth(raw, metric, grain, where_sql, by_country)
    assert any(row[metric] is not None for row in expected)
    assert_rows_match(served, expected, group_by, metric, tol=FLOAT_TOL, absent="null")
    return served, expected


def first_periods_are_null(served, key: str, metric: str, before: dt.date):
    early = [row for row in served if row[key] < before]
    assert all(row[metric] is None for row in early), early[:3]


def test_mom_at_month_grain(service, raw):
    served, _ = check(service, raw, "revenue_growth_mom", "month")
    first_periods_are_null(served, "metric_time__month", "revenue_growth_mom", dt.date(2022, 2, 1))
    # Every month after the first has revenue and a prior month with revenue: all non-null.
    later = [r for r in served if r["metric_time__month"] > HISTORY_START]
    assert len(later) == 47 and all(r["revenue_growth_mom"] is not None for r in later)


@pytest.mark.parametrize("grain", ["month", "year"])
def test_yoy(service, raw, grain):
    served, _ = check(service, raw, "revenue_growth_yoy", grain)
    key = f"metric_time__{grain}"
    first_periods_are_null(served, key, "revenue_growth_yoy", dt.date(2023, 1, 1))
    later = [r for r in served if r[key] >= dt.date(2023, 1, 1)]
    assert later and all(r["revenue_growth_yoy"] is not None for r in later)
    assert len(later) == (36 if grain == "month" else 3)


@pytest.mark.parametrize(("metric", "grain"), [
    ("revenue_growth_mom", "month"), ("revenue_growth_yoy", "month"),
    ("revenue_growth_yoy", "year"),
])
def test_growth_small_country(service, raw, small_country, metric, grain):
    where = f"customer__country = '{small_country}'"
    check(service, raw, metric, grain, [dim_filter("customer__country", small_country)], where)
    if metric == "revenue_growth_mom":
        # The edge case exists: a month with revenue right after a month without any.
        hand = expected_growth(raw, metric, grain, where)
        assert any(row[metric] is None and not row["no_revenue"]
                   and row["metric_time__month"] > HISTORY_START for row in hand)
        # ... and the other way round: a month without revenue after one with revenue (-100 %).
        assert any(row["no_revenue"] and row[metric] == -1 for row in hand)


@pytest.mark.parametrize(("metric", "grain"), [
    ("revenue_growth_mom", "month"), ("revenue_growth_yoy", "year"),
])
def test_growth_by_country(service, raw, metric, grain):
    check(service, raw, metric, grain, by_country=True)


def test_mom_with_time_range_uses_prior_month_outside_range(service, raw):
    """The offset reaches before `start`: March's growth uses February's revenue."""
    served = served_rows(service, ["revenue_growth_mom"], ["metric_time__month"],
                         start="2024-03-01", end="2024-05-31")
    expected = [r for r in expected_growth(raw, "revenue_growth_mom", "month")
                if dt.date(2024, 3, 1) <= r["metric_time__month"] <= dt.date(2024, 5, 1)]
    assert len(expected) == 3
    assert_rows_match(served, expected, ["metric_time__month"], "revenue_growth_mom",
                      tol=FLOAT_TOL, min_rows=3)
