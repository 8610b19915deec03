"""The rollup correctness cases, shared by every engine's rollup tests (tests/rollups/): for
the glossary's metrics that rollups can serve, routed answers equal the unrouted ones and the
hand-written SQL's (over the DuckDB copy of raw.*, the same data every engine's build holds),
and the rollup that answered is the smallest that fits."""

from __future__ import annotations

import math
from typing import Any

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tests.support.hand_sql import (
    FLOAT_TOL,
    ITEM_LINES,
    assert_rows_match,
    dim_filter,
    expected_rows,
    group_columns,
)

COMPLETED = "order_status = 'completed'"
CANCELLED = "order_status = 'cancelled'"
# The glossary's order metrics over enriched_orders (raw.* only; hand_sql.VALID_ORDERS).
ORDER_SQL = {
    "order_count": "count(*)",
    "completed_orders": f"count(*) filter (where {COMPLETED})",
    "revenue": f"sum(net_amount) filter (where {COMPLETED})",
    "gross_revenue": f"sum(gross_amount) filter (where {COMPLETED})",
    "discounts": f"sum(total_discount) filter (where {COMPLETED})",
    "items_sold": f"sum(total_quantity) filter (where {COMPLETED})",
    "active_customers": f"count(distinct customer_id) filter (where {COMPLETED})",
    "cancellation_rate": (
        f"cast(count(*) filter (where {CANCELLED}) as double) / nullif(count(*), 0)"),
    "average_order_value": (
        f"cast(sum(net_amount) filter (where {COMPLETED}) as double)"
        f" / nullif(count(*) filter (where {COMPLETED}), 0)"),
}
ITEM_SQL = {
    "item_revenue": "sum(line_net)",
    "cost_of_goods_sold": "sum(line_cost)",
    "gross_margin": "sum(line_net) - sum(line_cost)",
    "gross_margin_pct": "cast(sum(line_net) - sum(line_cost) as double) / nullif(sum(line_net), 0)",
}
FLOATS = {"cancellation_rate", "average_order_value", "gross_margin_pct"}

US = dim_filter("customer__country", "US")
COMPLETED_ONLY = dim_filter("order__order_status", "completed")

# (metrics, group_by, where (served, hand SQL), the rollup that must answer)
CASES: list[tuple[list[str], list[str], tuple[list[str], str], str | tuple[str, ...]]] = [
    # Additive measures and ratios re-aggregated from the daily rollup: coarser grains.
    (["revenue", "order_count", "average_order_value"], ["metric_time__week"], ([], "true"),
     "order_kpis_daily"),
    (["revenue", "cancellation_rate"], ["metric_time__day"], ([US], "customer__country = 'US'"),
     "order_kpis_daily"),
    # The monthly rollups are smaller: chosen whenever they fit.
    (["gross_revenue", "discounts", "items_sold"], ["metric_time__quarter", "customer__country"],
     ([], "true"), ("order_kpis_by_segment", "order_kpis_daily")),
    (["revenue", "completed_orders"], ["metric_time__year", "customer__country"], ([], "true"),
     "revenue_by_country_by_month"),
    (["average_order_value"], ["metric_time__month"], ([], "true"), "executive_kpis_by_month"),
    (["revenue", "average_order_value"], ["customer__customer_segment"],
     ([COMPLETED_ONLY], "order_status = 'completed'"), "order_kpis_by_segment"),
    (["cancellation_rate", "order_count"], ["order__order_status", "metric_time__year"],
     ([dim_filter("customer__customer_status", "Active")], "customer__customer_status = 'Active'"),
     "order_kpis_by_segment"),
    (["revenue"], [], ([], "true"), "executive_kpis_by_month"),
    (["revenue"], ["metric_time__quarter"],
     (["{{ TimeDimension('metric_time', 'month') }} >= '2024-01-01'"],
      "order_date >= date '2024-01-01'"), "executive_kpis_by_month"),
    # A distinct count: only at exactly its rollup's group-by and grain.
    (["active_customers", "revenue"], ["metric_time__month"], ([], "true"),
     "executive_kpis_by_month"),
    # Derived metrics from their additive parts.
    (["gross_margin", "gross_margin_pct"], ["product__category"],
     ([US], "customer__country = 'US'"), "margin_by_category"),
    (["item_revenue", "cost_of_goods_sold", "gross_margin_pct"],
     ["metric_time__year", "product__category"], ([], "true"), "margin_by_category"),
]


# Metrics that look across time or count distinct things: read from a rollup only at exactly
# its group-by and grain (the stored values are MetricFlow's own; the correctness suite checks
# those against hand SQL), and never at any other grain.
EXACT = [
    (["cumulative_revenue"], ["metric_time__month", "customer__country"], [],
     "cumulative_revenue_by_country"),
    (["cumulative_revenue"], ["metric_time__month", "customer__country"], [US],
     "cumulative_revenue_by_country"),
    (["retention_rate", "retained_customers"], ["cohort__cohort_month__month",
                                                "cohort__period_number"], [], "cohort_retention"),
    (["new_customers", "active_customers"], ["metric_time__month"], [], "executive_kpis_by_month"),
    (["repeat_purchase_rate_90d"], ["metric_time__month"], [], "repeat_purchase_by_month"),
]


# A distinct count, a cumulative or conversion metric at another group-by or grain, or a
# week from months: (metrics, group_by, the reason named).
NOT_ROUTED = [
    (["active_customers"], ["metric_time__quarter"], "non-additive"),
    (["cumulative_revenue"], ["metric_time__year", "customer__country"], "non-additive"),
    (["cumulative_revenue"], ["metric_time__month"], "non-additive"),
    (["repeat_purchase_rate_90d"], ["metric_time__quarter"], "non-additive"),
    (["average_predicted_clv"], ["metric_time__month"], "lacks metric"),
    (["revenue"], ["customer__customer_status", "metric_time__week"], "grain"),
]


def case_id(case: tuple) -> str:
    return f"{'+'.join(case[0])}-by-{'+'.join(case[1]) or 'total'}"


def rows_of(result) -> list[dict[str, Any]]:
    return result.table.to_pylist()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=FLOAT_TOL)
    return a == b and type(a) is type(b)


def assert_same_answer(routed_rows, unrouted_rows, keys) -> None:
    """Routed and unrouted results: the same rows, the same values, exact values exactly."""
    def index(rows):
        return {tuple(r[k] for k in keys): r for r in rows}

    a, b = index(routed_rows), index(unrouted_rows)
    assert len(a) == len(routed_rows) and len(b) == len(unrouted_rows), "duplicate keys"
    assert a.keys() == b.keys(), f"rows differ: {sorted(a.keys() ^ b.keys(), key=str)[:10]}"
    bad = [(k, c, a[k][c], b[k][c]) for k in a for c in a[k] if not _same(a[k][c], b[k][c])]
    assert not bad, f"{len(bad)} values differ, e.g. {bad[:5]}"


def _hand(raw, metric: str, group_by: list[str], where_sql: str):
    if metric in ITEM_SQL:
        body = (f"select {group_columns(group_by, 'order_date') or '1 as one'}, "
                f"{ITEM_SQL[metric]} as {metric} from item_lines where {where_sql} group by all")
        return expected_rows(raw, f"{ITEM_LINES} {body}")
    body = (f"select {group_columns(group_by, 'order_date') or '1 as one'}, "
            f"{ORDER_SQL[metric]} as {metric} from enriched_orders where {where_sql} group by all")
    return expected_rows(raw, body)


def check_routed(routed, unrouted, raw, metrics, group_by, where, rollup) -> None:
    """Routed == unrouted (rows, values, schema) == the hand SQL, and the rollup used."""
    request = QueryRequest.create(metrics=metrics, group_by=group_by, where=where[0])
    got = routed.query(request, ANONYMOUS)
    allowed = rollup if isinstance(rollup, tuple) else (rollup,)
    assert got.rollup is not None and got.rollup.used in allowed, got.rollup
    assert "tally_rollups." in got.sql
    base = unrouted.query(request, ANONYMOUS)
    assert base.rollup is None and "tally_rollups." not in base.sql
    assert got.table.schema == base.table.schema
    assert_same_answer(rows_of(got), rows_of(base), group_by)
    for metric in metrics:
        served = [{**r, "one": 1} for r in rows_of(got)]
        keys = group_by or ["one"]
        expected = _hand(raw, metric, group_by, where[1])
        if metric in FLOATS:
            assert_rows_match(served, expected, keys, metric, tol=FLOAT_TOL, absent="null")
        else:
            assert_rows_match(served, expected, keys, metric, absent="zero")


def check_exact(routed, unrouted, metrics, group_by, where, rollup) -> None:
    """Read at exactly a rollup's group-by and grain: the same rows as MetricFlow's SQL."""
    request = QueryRequest.create(metrics=metrics, group_by=group_by, where=where)
    got = routed.query(request, ANONYMOUS)
    assert got.rollup is not None and got.rollup.used == rollup, got.rollup
    base = unrouted.query(request, ANONYMOUS)
    assert got.table.schema == base.table.schema
    assert got.table.num_rows == base.table.num_rows > 0
    assert_same_answer(rows_of(got), rows_of(base), group_by)


def check_not_routed(routed, unrouted, metrics, group_by, reason) -> None:
    """A distinct count, a cumulative or conversion metric at another group-by or grain, or a
    week from months: the answer comes from the source tables, and the reasons say why."""
    request = QueryRequest.create(metrics=metrics, group_by=group_by)
    got = routed.query(request, ANONYMOUS)
    assert got.rollup is not None and got.rollup.used is None
    assert any(reason in why for _, why in got.rollup.misses), got.rollup.misses
    assert "tally_rollups." not in got.sql
    assert_same_answer(rows_of(got), rows_of(unrouted.query(request, ANONYMOUS)), group_by)
