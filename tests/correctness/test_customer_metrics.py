"""Customer metrics against hand-written SQL over raw.*: customer counts by segment, status,
country and signup period; high-value customers; new customers at their first completed order;
average and predicted customer lifetime value."""

from __future__ import annotations

import pytest

from tests.support.hand_sql import (
    FLOAT_TOL,
    GRAINS,
    assert_rows_match,
    dim_filter,
    expected_rows,
    group_columns,
    scalar,
    served_rows,
)

CUSTOMER_DIMENSIONS = ("customer__country", "customer__customer_segment",
                       "customer__customer_status")

# Per valid customer with completed orders: the predicted CLV of the brief's formula.
PREDICTED = """
, per_customer as (
    select
        customer_id,
        count(*) as n,
        avg(cast(net_amount as double)) as aov,
        date_diff('day', min(order_date), max(order_date)) as active_days
    from completed
    group by customer_id
),
predicted as (
    select
        p.customer_id,
        d.first_order_date,
        d.customer__country,
        d.customer__customer_segment,
        d.customer__customer_status,
        p.aov
        * case
            when p.n > 1 and cast(p.active_days as double) / (p.n - 1) > 0
                then 365.0::double / (cast(p.active_days as double) / (p.n - 1))
            else p.n
          end
        * case
            when p.active_days > 0 then p.active_days / 365.0::double
            else 1 / 365.0::double
          end as predicted_clv
    from per_customer as p
    join customer_dims as d on d.customer_id = p.customer_id
)
"""


def expected_customers(raw, group_by, where="true", time_column="signup_date",
                       aggregate="count(*)", name="customers", source="customer_dims"):
    select = group_columns(group_by, time_column)
    body = f"select {select}{', ' if select else ''}{aggregate} as {name} from {source} " \
           f"where {where} group by all"
    return expected_rows(raw, body)


@pytest.mark.parametrize("group_by", [
    ["customer__customer_segment"],
    ["customer__customer_status"],
    ["customer__country"],
    ["customer__customer_segment", "customer__customer_status"],
    ["customer__country", "customer__customer_segment"],
    ["metric_time__year"],
    ["metric_time__month"],
    ["metric_time__quarter", "customer__customer_segment"],
], ids=lambda g: "+".join(g))
def test_customers(service, raw, group_by):
    served = served_rows(service, ["customers"], group_by)
    expected = expected_customers(raw, group_by)
    assert_rows_match(served, expected, group_by, "customers")


def test_customers_total_counts_valid_customers_only(service, raw):
    served = served_rows(service, ["customers"])
    valid = scalar(raw, "select count(*) from valid_customers")
    everyone = scalar(raw, "select count(*) from raw.customers", ctes="")
    assert valid < everyone, "no invalid customer in the data: the edge case is missing"
    assert served == [{"customers": valid}]


def test_every_segment_and_status_occurs(raw):
    segments = {r["s"] for r in expected_rows(
        raw, "select distinct customer_segment as s from customer_attrs")}
    statuses = {r["s"] for r in expected_rows(
        raw, "select distinct customer_status as s from customer_attrs")}
    assert segments == {"High Value", "Medium Value", "Low Value", "New Customer"}
    assert statuses == {"Active", "At Risk", "Dormant", "Churned", "Prospect"}


@pytest.mark.parametrize("status", ["Prospect", "Active", "Churned"])
def test_customers_filtered_by_status(service, raw, status):
    group_by = ["customer__country"]
    served = served_rows(service, ["customers"], group_by,
                         [dim_filter("customer__customer_status", status)])
    expected = expected_customers(raw, group_by, f"customer__customer_status = '{status}'")
    assert_rows_match(served, expected, group_by, "customers")


@pytest.mark.parametrize("group_by", [
    [], ["metric_time__year"], ["customer__country"], ["customer__customer_status"],
    ["metric_time__quarter", "customer__country"],
], ids=lambda g: "+".join(g) or "total")
def test_high_value_customers(service, raw, group_by):
    served = served_rows(service, ["high_value_customers"], group_by)
    expected = expected_customers(raw, group_by, "customer__customer_segment = 'High Value'",
                                  name="high_value_customers")
    assert_rows_match(served, expected, group_by, "high_value_customers", absent="zero")


@pytest.mark.parametrize("grain", GRAINS)
def test_new_customers_by_grain(service, raw, grain):
    group_by = [f"metric_time__{grain}"]
    served = served_rows(service, ["new_customers"], group_by)
    expected = expected_customers(raw, group_by, "first_order_date is not null",
                                  time_column="first_order_date", name="new_customers")
    assert_rows_match(served, expected, group_by, "new_customers", absent="zero")


@pytest.mark.parametrize("dimension", CUSTOMER_DIMENSIONS)
def test_new_customers_by_month_and_dimension(service, raw, dimension):
    group_by = ["metric_time__month", dimension]
    served = served_rows(service, ["new_customers"], group_by)
    expected = expected_customers(raw, group_by, "first_order_date is not null",
                                  time_column="first_order_date", name="new_customers")
    assert_rows_match(served, expected, group_by, "new_customers", absent="zero")


def test_new_customers_total_is_customers_with_a_completed_order(service, raw):
    served = served_rows(service, ["new_customers"])
    expected = scalar(raw, "select count(*) from customer_attrs where completed_order_count > 0")
    prospects = scalar(raw, "select count(*) from customer_attrs where completed_order_count = 0")
    assert prospects > 0
    assert served == [{"new_customers": expected}]


AVERAGE_CLV = "avg(cast(lifetime_value as double))"


@pytest.mark.parametrize("group_by", [
    [], ["metric_time__day"], ["metric_time__month"], ["metric_time__quarter"],
    ["metric_time__year"], ["customer__country"], ["customer__customer_segment"],
    ["customer__customer_status"], ["metric_time__year", "customer__country"],
], ids=lambda g: "+".join(g) or "total")
def test_average_clv(service, raw, group_by):
    served = served_rows(service, ["average_clv"], group_by)
    expected = expected_customers(raw, group_by, "completed_order_count > 0",
                                  time_column="first_order_date", aggregate=AVERAGE_CLV,
                                  name="average_clv")
    assert_rows_match(served, expected, group_by, "average_clv", tol=FLOAT_TOL, absent="null")


@pytest.mark.parametrize("group_by", [
    [], ["metric_time__month"], ["metric_time__quarter"], ["metric_time__year"],
    ["customer__country"], ["customer__customer_segment"], ["customer__customer_status"],
], ids=lambda g: "+".join(g) or "total")
def test_average_predicted_clv(service, raw, group_by):
    served = served_rows(service, ["average_predicted_clv"], group_by)
    select = group_columns(group_by, "first_order_date")
    body = (f"{PREDICTED} select {select}{', ' if select else ''}"
            f"avg(predicted_clv) as average_predicted_clv from predicted group by all")
    expected = expected_rows(raw, body)
    assert_rows_match(served, expected, group_by, "average_predicted_clv", tol=1e-6,
                      absent="null")


def test_predicted_clv_edge_cases_exist(raw):
    """One-order customers, same-day repeat buyers and multi-day repeat buyers all occur."""
    rows = expected_rows(raw, f"""{PREDICTED}
        select
            count(*) filter (where n = 1) as one_order,
            count(*) filter (where n > 1 and active_days = 0) as same_day_repeat,
            count(*) filter (where n > 1 and active_days > 0) as repeat
        from per_customer""")
    assert rows[0]["one_order"] > 0 and rows[0]["repeat"] > 0, rows
    assert rows[0]["same_day_repeat"] > 0, rows


CUSTOMER_FILTERS = [
    (dim_filter("customer__customer_segment", "High Value"),
     "customer__customer_segment = 'High Value'"),
    (dim_filter("customer__customer_status", "Churned"), "customer__customer_status = 'Churned'"),
    ("{{ Dimension('customer__country') }} in ('US', 'DE')", "customer__country in ('US', 'DE')"),
]


@pytest.mark.parametrize(("where_served", "where_sql"), CUSTOMER_FILTERS,
                         ids=["high_value", "churned", "us_de"])
@pytest.mark.parametrize("metric", ["new_customers", "average_clv", "average_predicted_clv"])
def test_customer_value_metrics_filtered(service, raw, metric, where_served, where_sql):
    group_by = ["metric_time__quarter"]
    served = served_rows(service, [metric], group_by, [where_served])
    select = group_columns(group_by, "first_order_date")
    aggregate = {"new_customers": "count(*)", "average_clv": AVERAGE_CLV,
                 "average_predicted_clv": "avg(predicted_clv)"}[metric]
    source = "predicted" if metric == "average_predicted_clv" else "customer_dims"
    body = (f"{PREDICTED} select {select}, {aggregate} as {metric} from {source} "
            f"where {where_sql} and first_order_date is not null group by all")
    expected = expected_rows(raw, body)
    if metric == "new_customers":
        assert_rows_match(served, expected, group_by, metric, absent="zero")
    else:
        assert_rows_match(served, expected, group_by, metric, tol=1e-6, absent="null")
