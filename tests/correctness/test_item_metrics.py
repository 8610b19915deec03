"""Item metrics (item revenue, cost of goods sold, gross margin and its percentage) against
hand-written SQL over the lines of completed orders of valid customers, by grain, product
category and customer dimensions."""

from __future__ import annotations

import pytest

from tests.support.hand_sql import (
    FLOAT_TOL,
    GRAINS,
    ITEM_LINES,
    assert_rows_match,
    dim_filter,
    expected_rows,
    group_columns,
    scalar,
    served_rows,
)

AGGREGATES = {
    "item_revenue": "sum(line_net)",
    "cost_of_goods_sold": "sum(line_cost)",
    "gross_margin": "sum(line_net) - sum(line_cost)",
    "gross_margin_pct": (
        "cast(sum(line_net) - sum(line_cost) as double) / nullif(cast(sum(line_net) as double), 0)"
    ),
}
METRICS = list(AGGREGATES)


def expected_items(raw, metric, group_by, where="true"):
    select = group_columns(group_by, "order_date")
    body = (f"{ITEM_LINES} select {select}{', ' if select else ''}{AGGREGATES[metric]} as {metric}"
            f" from item_lines where {where} group by all")
    return expected_rows(raw, body)


def check(service, raw, metric, group_by, where_served=(), where_sql="true"):
    served = served_rows(service, [metric], group_by, where_served)
    expected = expected_items(raw, metric, group_by, where_sql)
    if metric == "gross_margin_pct":
        return assert_rows_match(served, expected, group_by, metric, tol=FLOAT_TOL, absent="null")
    return assert_rows_match(served, expected, group_by, metric, absent="zero")


@pytest.mark.parametrize("grain", GRAINS)
@pytest.mark.parametrize("metric", METRICS)
def test_item_metric_by_grain(service, raw, metric, grain):
    check(service, raw, metric, [f"metric_time__{grain}"])


@pytest.mark.parametrize("group_by", [
    [], ["product__category"], ["metric_time__month", "product__category"],
    ["metric_time__year", "product__category"], ["customer__country"],
    ["customer__customer_segment"], ["product__category", "customer__customer_status"],
], ids=lambda g: "+".join(g) or "total")
@pytest.mark.parametrize("metric", METRICS)
def test_item_metric_by_dimension(service, raw, metric, group_by):
    check(service, raw, metric, group_by)


@pytest.mark.parametrize("metric", METRICS)
def test_item_metric_filtered_to_category(service, raw, metric):
    category = scalar(raw, "select min(category) from raw.products", ctes="")
    check(service, raw, metric, ["metric_time__quarter"],
          [dim_filter("product__category", category)], f"product__category = '{category}'")


@pytest.mark.parametrize("grain", ["day", "month", "year"])
def test_item_revenue_equals_revenue(service, raw, grain):
    """Periods served with 0 (only non-completed orders that day) are dropped on both sides."""
    group_by = [f"metric_time__{grain}"]
    key = group_by[0]

    def nonzero(rows, column):
        return {r[key]: r[column] for r in rows if r[column]}

    items = nonzero(served_rows(service, ["item_revenue"], group_by), "item_revenue")
    revenue = nonzero(served_rows(service, ["revenue"], group_by), "revenue")
    hand = nonzero(expected_rows(raw, f"""
        select {group_columns(group_by, 'order_date')}, sum(net_amount) as revenue
        from completed group by all"""), "revenue")
    assert hand
    assert items == hand
    assert revenue == hand


def test_gross_margin_is_item_revenue_minus_cost(service):
    rows = served_rows(service, ["item_revenue", "cost_of_goods_sold", "gross_margin",
                                 "gross_margin_pct"], ["product__category"])
    assert len(rows) >= 2
    for row in rows:
        assert row["gross_margin"] == row["item_revenue"] - row["cost_of_goods_sold"], row
