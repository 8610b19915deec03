"""Order metrics (simple and ratio) against hand-written SQL over raw.*: every grain, every order
dimension, filters (including a small country with months without orders) and time ranges."""

from __future__ import annotations

import pytest

from tests.support.hand_sql import (
    FLOAT_TOL,
    GRAINS,
    ORDER_DIMENSIONS,
    assert_rows_match,
    dim_filter,
    expected_rows,
    group_columns,
    scalar,
    served_rows,
)

COMPLETED = "order_status = 'completed'"
CANCELLED = "order_status = 'cancelled'"

# Hand aggregates over enriched_orders (valid customers' orders, amounts summed from lines).
SIMPLE = {
    "order_count": "count(*)",
    "completed_orders": f"count(*) filter (where {COMPLETED})",
    "cancelled_orders": f"count(*) filter (where {CANCELLED})",
    "gross_revenue": f"sum(gross_amount) filter (where {COMPLETED})",
    "discounts": f"sum(total_discount) filter (where {COMPLETED})",
    "revenue": f"sum(net_amount) filter (where {COMPLETED})",
    "items_sold": f"sum(total_quantity) filter (where {COMPLETED})",
    "active_customers": f"count(distinct customer_id) filter (where {COMPLETED})",
}
RATIOS = {
    "cancellation_rate": (
        f"cast(count(*) filter (where {CANCELLED}) as double) / nullif(count(*), 0)"),
    "average_order_value": (
        f"cast(sum(net_amount) filter (where {COMPLETED}) as double)"
        f" / nullif(count(*) filter (where {COMPLETED}), 0)"),
    "revenue_per_customer": (
        f"cast(sum(net_amount) filter (where {COMPLETED}) as double)"
        f" / nullif(count(distinct customer_id) filter (where {COMPLETED}), 0)"),
}
ALL_METRICS = {**SIMPLE, **RATIOS}


def expected_order_metric(raw, metric: str, group_by: list[str], where: str = "true"):
    body = (
        f"select {group_columns(group_by, 'order_date')}, {ALL_METRICS[metric]} as {metric}\n"
        f"from enriched_orders where {where} group by all"
    )
    return expected_rows(raw, body)


def check(service, raw, metric, group_by, where_served=(), where_sql="true", min_rows=1, **kw):
    served = served_rows(service, [metric], group_by, where_served, **kw)
    expected = expected_order_metric(raw, metric, group_by, where_sql)
    assert expected, "the hand computation is empty"
    if metric in RATIOS:
        return assert_rows_match(served, expected, group_by, metric, tol=FLOAT_TOL, absent="null",
                                 min_rows=min_rows)
    return assert_rows_match(served, expected, group_by, metric, absent="zero",
                             min_rows=min_rows)


@pytest.mark.parametrize("grain", GRAINS)
@pytest.mark.parametrize("metric", list(SIMPLE))
def test_simple_metric_by_grain(service, raw, metric, grain):
    check(service, raw, metric, [f"metric_time__{grain}"])


@pytest.mark.parametrize("grain", GRAINS)
@pytest.mark.parametrize("metric", list(RATIOS))
def test_ratio_metric_by_grain(service, raw, metric, grain):
    check(service, raw, metric, [f"metric_time__{grain}"])


@pytest.mark.parametrize("dimension", ORDER_DIMENSIONS)
@pytest.mark.parametrize("metric", list(ALL_METRICS))
def test_metric_by_dimension(service, raw, metric, dimension):
    check(service, raw, metric, [dimension])


@pytest.mark.parametrize("dimension", ORDER_DIMENSIONS)
@pytest.mark.parametrize("metric", ["order_count", "revenue", "active_customers",
                                    "cancellation_rate", "average_order_value"])
def test_metric_by_month_and_dimension(service, raw, metric, dimension):
    check(service, raw, metric, ["metric_time__month", dimension])


@pytest.mark.parametrize("metric", ["revenue", "order_count", "active_customers",
                                    "average_order_value", "cancellation_rate"])
def test_no_group_by_totals(service, raw, metric):
    served = served_rows(service, [metric])
    assert len(served) == 1
    expected = expected_rows(raw, f"select {ALL_METRICS[metric]} as {metric} from enriched_orders")
    tol = FLOAT_TOL if metric in RATIOS else None
    assert_rows_match(served, expected, [], metric, tol=tol)


def test_revenue_is_gross_minus_discounts(service, raw):
    served = served_rows(service, ["gross_revenue", "discounts", "revenue"], ["metric_time__month"])
    assert len(served) == 48
    for row in served:
        assert row["revenue"] == row["gross_revenue"] - row["discounts"], row
    total = scalar(raw, f"select sum(net_amount) from enriched_orders where {COMPLETED}")
    assert sum(row["revenue"] for row in served) == total


@pytest.mark.parametrize("grain", ["day", "week", "month", "quarter"])
@pytest.mark.parametrize("metric", ["revenue", "order_count", "active_customers",
                                    "average_order_value", "cancellation_rate"])
def test_filtered_to_small_country(service, raw, small_country, metric, grain):
    group_by = [f"metric_time__{grain}"]
    served = served_rows(service, [metric], group_by,
                         [dim_filter("customer__country", small_country)])
    expected = expected_order_metric(raw, metric, group_by,
                                     f"customer__country = '{small_country}'")
    if metric in RATIOS:
        assert_rows_match(served, expected, group_by, metric, tol=FLOAT_TOL, absent="null")
    else:
        assert_rows_match(served, expected, group_by, metric, absent="zero")
    if grain == "month" and metric == "order_count":
        # The edge case under test: months without a single order are not served as orders.
        served_months = {row["metric_time__month"] for row in served if row[metric]}
        assert len(served_months) < 48


def test_small_country_revenue_by_country_and_month(service, raw, small_country):
    group_by = ["metric_time__month", "customer__country"]
    check(service, raw, "revenue", group_by, [dim_filter("customer__country", small_country)],
          f"customer__country = '{small_country}'")


@pytest.mark.parametrize(("where_served", "where_sql"), [
    (["{{ Dimension('order__order_status') }} in ('cancelled', 'returned')"],
     "order__order_status in ('cancelled', 'returned')"),
    ([dim_filter("customer__customer_segment", "High Value"),
      dim_filter("customer__customer_status", "Active")],
     "customer__customer_segment = 'High Value' and customer__customer_status = 'Active'"),
    (["{{ Dimension('customer__country') }} in ('US', 'GB')"
      " and {{ Dimension('customer__customer_segment') }} <> 'New Customer'"],
     "customer__country in ('US', 'GB') and customer__customer_segment <> 'New Customer'"),
    ([dim_filter("customer__customer_status", "Churned")],
     "customer__customer_status = 'Churned'"),
], ids=["status_in", "high_value_active", "country_and_segment", "churned"])
@pytest.mark.parametrize("metric", list(ALL_METRICS))
def test_filters(service, raw, metric, where_served, where_sql):
    # Figures of completed orders are nothing over cancelled and returned orders: every value
    # is 0 or null there.
    nothing = "order__order_status in" in where_sql and metric not in (
        "order_count", "cancelled_orders", "cancellation_rate")
    matched = check(service, raw, metric, ["metric_time__quarter"], where_served, where_sql,
                    min_rows=0 if nothing else 1)
    if nothing:
        served = served_rows(service, [metric], ["metric_time__quarter"], where_served)
        assert all(row[metric] in (None, 0) for row in served), served[:3]
    else:
        assert matched >= 1


@pytest.mark.parametrize("metric", ["revenue", "order_count", "average_order_value"])
def test_time_range_day_grain(service, raw, metric):
    where_sql = "order_date between date '2024-02-10' and date '2024-03-10'"
    matched = check(service, raw, metric, ["metric_time__day"], (), where_sql,
                    start="2024-02-10", end="2024-03-10")
    assert matched >= 20


def test_time_range_first_and_last_days_of_history(service, raw):
    for start, end in (("2022-01-01", "2022-01-31"), ("2025-12-01", "2025-12-31")):
        where_sql = f"order_date between date '{start}' and date '{end}'"
        check(service, raw, "order_count", ["metric_time__day"], (), where_sql,
              start=start, end=end)


def test_invalid_customers_orders_are_excluded(service, raw):
    """The edge case exists (orders of invalid customers) and tally leaves those orders out."""
    all_customers = expected_rows(raw, """
        select cast(date_trunc('year', order_date) as date) as metric_time__year,
               count(*) as order_count
        from raw.orders group by all""", ctes="")
    valid = expected_order_metric(raw, "order_count", ["metric_time__year"])
    assert sorted(r["order_count"] for r in all_customers) != sorted(
        r["order_count"] for r in valid), "no order of an invalid customer in the data"
    invalid_customers = scalar(raw, """
        select count(*) from raw.customers
        where customer_id not in (select customer_id from valid_customers)""")
    assert invalid_customers > 0
    served = served_rows(service, ["order_count"], ["metric_time__year"])
    assert_rows_match(served, valid, ["metric_time__year"], "order_count")


def test_cancelled_and_returned_orders_exist_and_are_not_revenue(service, raw):
    statuses = {r["order_status"]: r["n"] for r in expected_rows(
        raw, "select order_status, count(*) as n from valid_orders group by 1")}
    assert statuses.get("cancelled", 0) > 0 and statuses.get("returned", 0) > 0
    served = served_rows(service, ["revenue", "order_count"], ["order__order_status"])
    by_status = {r["order__order_status"]: r for r in served}
    assert set(by_status) == set(statuses)
    for status, count in statuses.items():
        assert by_status[status]["order_count"] == count
        if status != "completed":
            assert by_status[status]["revenue"] in (None, 0), by_status[status]
    assert by_status["completed"]["revenue"] == scalar(
        raw, f"select sum(net_amount) from valid_orders where {COMPLETED}")


def test_week_starts_on_monday(service, raw):
    served = served_rows(service, ["order_count"], ["metric_time__week"])
    assert served and all(row["metric_time__week"].weekday() == 0 for row in served)


@pytest.mark.parametrize("group_by", [["metric_time__week"],
                                      ["metric_time__month", "customer__country"],
                                      ["customer__customer_segment", "metric_time__quarter"]],
                         ids=lambda g: "+".join(g))
def test_rows_are_ordered_by_the_group_bys(service, raw, group_by):
    served = served_rows(service, ["revenue"], group_by)
    keys = [tuple(row[k] for k in group_by) for row in served]
    assert len(keys) > 10
    assert keys == sorted(keys)
    check(service, raw, "revenue", group_by)


def test_by_the_order_entity_a_sql_keyword(service, raw):
    """`order` is an entity and a SQL keyword: one row per order, quoted where it matters."""
    where = ["{{ Entity('order') }} <= 300"]
    served = served_rows(service, ["order_count", "revenue"], ["order"], where)
    expected = expected_rows(raw, f"""
        select order_id as "order", count(*) as order_count, {SIMPLE['revenue']} as revenue
        from enriched_orders where order_id <= 300 group by order_id""")
    assert len(expected) > 100
    assert_rows_match(served, expected, ["order"], "order_count")
    assert_rows_match(served, expected, ["order"], "revenue", absent="zero")
