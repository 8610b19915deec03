"""Reference SQL over raw.* for the demo dashboard's tiles (semantic/dashboards/overview.yml),
restating docs/data.md like hand_sql.py: revenue and orders (optionally for some countries and a
date range), revenue by a grain or by country, gross margin by product category, and the cohort
retention grid. Never the dbt models, never SQL tally generated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.support.hand_sql import (
    COHORT_GRID,
    ITEM_LINES,
    expected_rows,
    group_columns,
    trunc,
)

_AGGREGATES = {
    "revenue": ("completed_orders", "sum(net_amount)"),
    "order_count": ("enriched_orders", "count(*)"),
}


def _conditions(start: str | None, end: str | None, countries: Sequence[str] | None,
                date_column: str = "order_date") -> str:  # fmt: skip
    parts = ["true"]
    if start:
        parts.append(f"{date_column} >= date '{start}'")
    if end:
        parts.append(f"{date_column} <= date '{end}'")
    if countries:
        quoted = ", ".join(f"'{c}'" for c in countries)
        parts.append(f"customer__country in ({quoted})")
    return " and ".join(parts)


def order_metric(raw: Any, metric: str, group_by: Sequence[str] = (), start: str | None = None,
                 end: str | None = None,
                 countries: Sequence[str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """revenue or order_count, grouped by metric_time__<grain> and/or customer__country."""
    source, aggregate = _AGGREGATES[metric]
    select = group_columns(group_by, "order_date")
    # A time range covers whole periods of the grain asked (MetricFlow widens it to them): a
    # week starting before `start` counts in full.
    grains = [g.removeprefix("metric_time__") for g in group_by if g.startswith("metric_time__")]
    date_column = trunc(grains[0], "order_date") if grains else "order_date"
    if grains and start:
        start = str(expected_rows(raw, f"select {trunc(grains[0], f'date {start!r}')} as d",
                                  "")[0]["d"])  # fmt: skip
    body = (f", completed_orders as (select * from enriched_orders "
            f"where order_status = 'completed') "
            f"select {select}{', ' if select else ''}{aggregate} as {metric} from {source} "
            f"where {_conditions(start, end, countries, date_column)} group by all")  # fmt: skip
    return expected_rows(raw, body)


def margin_by_category(raw: Any, start: str | None = None,
                       end: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    body = (f"{ITEM_LINES} select product__category, sum(line_net) - sum(line_cost) "
            f"as gross_margin from item_lines where {_conditions(start, end, None)} group by all")
    return expected_rows(raw, body)


def retention(raw: Any, max_period: int) -> list[dict[str, Any]]:
    return expected_rows(raw, f"{COHORT_GRID} select cohort__cohort_month__month, "
                              "cohort__period_number, retention_rate from cells "
                              f"where cohort__period_number <= {max_period}")  # fmt: skip
