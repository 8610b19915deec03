"""The conversion metric repeat_purchase_rate_90d against hand-written SQL over raw.*.

Base: valid customers with a completed order, at their first completed order date. A customer
converts when their second completed order (completed orders ordered by order_date, order_id)
falls on days 0..89 after the first: a same-day second order counts, day 90 does not."""

from __future__ import annotations

import pytest

from tests.support.hand_sql import (
    FLOAT_TOL,
    assert_rows_match,
    expected_rows,
    served_rows,
    trunc,
)

METRIC = "repeat_purchase_rate_90d"

PAIRS = """
, ranked as (
    select customer_id, order_date,
           row_number() over (partition by customer_id order by order_date, order_id) as rn
    from completed
),
pairs as (
    select
        f.customer_id,
        f.order_date as first_date,
        date_diff('day', f.order_date, s.order_date) as gap,
        d.customer__country,
        d.customer__customer_segment,
        d.customer__customer_status
    from ranked as f
    left join ranked as s on s.customer_id = f.customer_id and s.rn = 2
    join customer_dims as d on d.customer_id = f.customer_id
    where f.rn = 1
)
"""

# The documented window (days 0..89) and two neighbours used to show where the boundary lies.
WINDOW = "gap < 90"
INCLUSIVE_90 = "gap <= 90"
EXCLUSIVE_89 = "gap < 89"
NOT_SAME_DAY = "gap > 0 and gap < 90"


def expected_rate(raw, group_by, converts=WINDOW, where="true"):
    columns = ", ".join(
        f"{trunc(g.removeprefix('metric_time__'), 'first_date')} as {g}"
        if g.startswith("metric_time__") else g for g in group_by)
    return expected_rows(raw, f"""{PAIRS}
        select {columns},
               cast(count(*) filter (where {converts}) as double) / count(*) as {METRIC},
               count(*) as base
        from pairs where {where} group by all""")


@pytest.mark.parametrize("group_by", [
    ["metric_time__month"], ["metric_time__quarter"], ["metric_time__year"],
    ["metric_time__year", "customer__country"], ["metric_time__year", "customer__customer_segment"],
    ["metric_time__week"],
], ids=lambda g: "+".join(g))
def test_repeat_purchase_rate(service, raw, group_by):
    served = served_rows(service, [METRIC], group_by)
    expected = expected_rate(raw, group_by)
    assert_rows_match(served, expected, group_by, METRIC, tol=FLOAT_TOL, absent="null")


@pytest.mark.parametrize(("where_served", "where_sql"), [
    ("{{ Dimension('customer__country') }} = 'US'", "customer__country = 'US'"),
    ("{{ Dimension('customer__customer_segment') }} = 'High Value'",
     "customer__customer_segment = 'High Value'"),
    ("{{ Dimension('customer__customer_status') }} in ('Active', 'At Risk')",
     "customer__customer_status in ('Active', 'At Risk')"),
], ids=["us", "high_value", "active_or_at_risk"])
def test_repeat_purchase_rate_filtered(service, raw, where_served, where_sql):
    group_by = ["metric_time__quarter"]
    served = served_rows(service, [METRIC], group_by, [where_served])
    expected = expected_rate(raw, group_by, where=where_sql)
    assert_rows_match(served, expected, group_by, METRIC, tol=FLOAT_TOL, absent="null")


def test_boundary_customers_exist(raw):
    """Second orders exactly 89 and 90 days after the first, and on the same day, occur."""
    gaps = {r["gap"]: r["n"] for r in expected_rows(raw, f"""{PAIRS}
        select gap, count(*) as n from pairs where gap in (0, 89, 90) group by gap""")}
    assert gaps.get(89, 0) > 0, gaps
    assert gaps.get(90, 0) > 0, gaps
    assert gaps.get(0, 0) > 0, gaps


def _months_where_rules_differ(raw, rule_a, rule_b):
    a = {r["metric_time__month"]: r[METRIC] for r in expected_rate(raw, ["metric_time__month"],
                                                                   rule_a)}
    b = {r["metric_time__month"]: r[METRIC] for r in expected_rate(raw, ["metric_time__month"],
                                                                   rule_b)}
    assert a.keys() == b.keys()
    return a, b, [m for m in a if a[m] != b[m]]


def _served_by_month(service):
    return {r["metric_time__month"]: r[METRIC]
            for r in served_rows(service, [METRIC], ["metric_time__month"])}


@pytest.mark.parametrize(("other_rule", "meaning"), [
    (INCLUSIVE_90, "a second order on day 90 does not count"),
    (EXCLUSIVE_89, "a second order on day 89 counts"),
    (NOT_SAME_DAY, "a same-day second order counts"),
], ids=["day_90_out", "day_89_in", "same_day_in"])
def test_window_boundary(service, raw, other_rule, meaning):
    window, other, differing = _months_where_rules_differ(raw, WINDOW, other_rule)
    assert differing, f"no month where the rules differ: cannot show that {meaning}"
    served = _served_by_month(service)
    for month in differing:
        assert month in served, month
        assert served[month] is not None, month
        detail = (f"{meaning}: month {month}: served {served[month]!r}, hand (days 0..89) "
                  f"{window[month]!r}, hand ({other_rule}) {other[month]!r}")
        assert served[month] == pytest.approx(window[month], rel=FLOAT_TOL), detail
        assert served[month] != pytest.approx(other[month], rel=FLOAT_TOL), detail
