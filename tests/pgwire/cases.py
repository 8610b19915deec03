"""The questions every client asks tally's PostgreSQL endpoint, each with its answer computed by
SQL written by hand over raw.* (tests/support/hand_sql.py's CTEs; never tally's output), and the
comparison of what a client read (driver values, or text for psql, Java and Node) with it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.support.hand_sql import FLOAT_TOL, assert_rows_match, expected_rows

COMPLETED = "order_status = 'completed'"
REVENUE = f"sum(net_amount) filter (where {COMPLETED})"
ORDER_COUNT = "count(*)"
COMPLETED_ORDERS = f"count(*) filter (where {COMPLETED})"
AOV = (f"cast(sum(net_amount) filter (where {COMPLETED}) as double)"
       f" / nullif(count(*) filter (where {COMPLETED}), 0)")


@dataclass(frozen=True)
class Case:
    name: str
    sql: str  # literals only: any client runs it as it is
    template: str  # the same with %s parameters ...
    params: tuple[Any, ...]  # ... bound to these
    kinds: dict[str, str]  # column -> date | text | exact | ratio (key columns first)
    hand: str  # the expected rows, over hand_sql.VALID_ORDERS

    @property
    def keys(self) -> list[str]:
        return [c for c, k in self.kinds.items() if k in ("date", "text")]

    @property
    def columns(self) -> list[str]:
        return list(self.kinds)


MONTHLY = Case(
    "monthly",
    "SELECT DATE_TRUNC('month', metric_time) AS month, MEASURE(revenue) AS revenue, "
    "MEASURE(order_count) AS order_count, MEASURE(average_order_value) AS average_order_value "
    "FROM metrics WHERE metric_time >= '2025-01-01' AND metric_time < '2025-07-01' "
    "GROUP BY 1 ORDER BY 1",
    "SELECT DATE_TRUNC('month', metric_time) AS month, MEASURE(revenue) AS revenue, "
    "MEASURE(order_count) AS order_count, MEASURE(average_order_value) AS average_order_value "
    "FROM metrics WHERE metric_time >= %s AND metric_time < %s GROUP BY 1 ORDER BY 1",
    (dt.date(2025, 1, 1), dt.date(2025, 7, 1)),
    {"month": "date", "revenue": "exact", "order_count": "exact",
     "average_order_value": "ratio"},
    f"select cast(date_trunc('month', order_date) as date) as month, {REVENUE} as revenue, "
    f"{ORDER_COUNT} as order_count, {AOV} as average_order_value from enriched_orders "
    "where order_date >= date '2025-01-01' and order_date < date '2025-07-01' group by 1",
)
YEARLY_BY_COUNTRY = Case(
    "yearly_by_country",
    "SELECT metric_time__year, customer__country, SUM(revenue) AS revenue, "
    "SUM(order_count) AS order_count FROM metrics "
    "WHERE customer__country IN ('DE', 'FR', 'JP') GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT metric_time__year, customer__country, SUM(revenue) AS revenue, "
    "SUM(order_count) AS order_count FROM metrics "
    "WHERE customer__country IN (%s, %s, %s) GROUP BY 1, 2 ORDER BY 1, 2",
    ("DE", "FR", "JP"),
    {"metric_time__year": "date", "customer__country": "text", "revenue": "exact",
     "order_count": "exact"},
    f"select cast(date_trunc('year', order_date) as date) as metric_time__year, "
    f"customer__country, {REVENUE} as revenue, {ORDER_COUNT} as order_count "
    "from enriched_orders where customer__country in ('DE', 'FR', 'JP') group by 1, 2",
)
SAVED_QUERY = Case(
    "saved_query",
    "SELECT * FROM revenue_by_country_by_month",
    "SELECT * FROM revenue_by_country_by_month WHERE customer__country <> %s",
    ("nowhere",),
    {"metric_time__month": "date", "customer__country": "text", "revenue": "exact",
     "completed_orders": "exact"},
    f"select cast(date_trunc('month', order_date) as date) as metric_time__month, "
    f"customer__country, {REVENUE} as revenue, {COMPLETED_ORDERS} as completed_orders "
    "from enriched_orders group by 1, 2",
)
CASES = (MONTHLY, YEARLY_BY_COUNTRY, SAVED_QUERY)

# A tenant's view: the same question, its rows limited by the policy (conftest.TALLY_YML).
BY_COUNTRY = "SELECT customer__country, SUM(revenue) AS revenue FROM metrics GROUP BY 1 ORDER BY 1"


def by_country_expected(raw, countries: Sequence[str]) -> list[dict[str, Any]]:
    listed = ", ".join(f"'{c}'" for c in countries)
    return expected_rows(raw, f"select customer__country, {REVENUE} as revenue "
                              f"from enriched_orders where customer__country in ({listed}) "
                              "group by 1")


def placeholders(template: str, style: str) -> str:
    """%s parameters as `style` writes them: "%s", "$" ($1, $2 ...) or "?"."""
    if style == "%s":
        return template
    if style == "?":
        return template.replace("%s", "?")
    counter = iter(range(1, 100))
    return re.sub(r"%s", lambda _: f"${next(counter)}", template)


def _value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "date":
        if isinstance(value, dt.datetime):
            return value.date()
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    if kind == "text":
        return str(value)
    if kind == "ratio":
        return float(value)
    # exact: money and counts as decimals, never through a float
    assert not isinstance(value, float), f"an exact value came as a float: {value!r}"
    return Decimal(str(value))


def check(case: Case, raw, rows: Iterable[Sequence[Any] | dict[str, Any]],
          columns: Sequence[str] | None = None) -> int:
    """The rows a client read (tuples in the case's column order, or dicts) against the hand
    SQL; returns how many rows were compared."""
    names = list(columns) if columns is not None else case.columns
    assert names == case.columns, f"{case.name}: columns {names}, expected {case.columns}"
    served = []
    for row in rows:
        values = [row[c] for c in names] if isinstance(row, dict) else list(row)
        served.append({c: _value(v, case.kinds[c]) for c, v in zip(names, values, strict=True)})
    expected = expected_rows(raw, case.hand)
    for column, kind in case.kinds.items():
        if kind == "exact":
            assert_rows_match(served, expected, case.keys, column, absent="zero")
        elif kind == "ratio":
            assert_rows_match(served, expected, case.keys, column, tol=FLOAT_TOL, absent="null")
    return len(served)
