"""Routed answers are the unrouted answers and the hand-written SQL's, on DuckDB: the cases of
tests/support/rollup_cases.py (the same on every engine). Each case also checks WHICH rollup
answered (the smallest that fits), so a case that silently fell back to the source tables
fails."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tests.support.rollup_cases import (
    CASES,
    EXACT,
    NOT_ROUTED,
    case_id,
    check_exact,
    check_not_routed,
    check_routed,
    rows_of,
)


@pytest.mark.parametrize(("metrics", "group_by", "where", "rollup"), CASES,
                         ids=[case_id(c) for c in CASES])
def test_routed_equals_unrouted_and_hand_sql(routed, unrouted, raw, metrics, group_by, where,
                                             rollup):
    check_routed(routed, unrouted, raw, metrics, group_by, where, rollup)


@pytest.mark.parametrize(("metrics", "group_by", "where", "rollup"), EXACT,
                         ids=[f"{'+'.join(c[0])}-{len(c[2])}" for c in EXACT])
def test_exact_rollups_equal_unrouted(routed, unrouted, metrics, group_by, where, rollup):
    check_exact(routed, unrouted, metrics, group_by, where, rollup)


@pytest.mark.parametrize(("metrics", "group_by", "reason"), NOT_ROUTED)
def test_not_routed_where_it_would_be_wrong(routed, unrouted, metrics, group_by, reason):
    """A distinct count, a cumulative or conversion metric at another group-by or grain, or a
    week from months: the answer comes from the source tables, and the reasons say why."""
    check_not_routed(routed, unrouted, metrics, group_by, reason)


def test_decimals_stay_exact_through_a_rollup(routed):
    got = routed.query(QueryRequest.create(metrics=["revenue"], group_by=["metric_time__year"]),
                       ANONYMOUS)
    assert got.rollup.used
    assert all(isinstance(r["revenue"], Decimal) for r in rows_of(got))


def test_the_smallest_fitting_rollup_answers(routed, rollup_warehouse):
    """Two rollups fit (daily by country and status; monthly by country, segment, status and
    order status): the one with fewer rows answers, the other is named with the reason."""
    rows = {r.rollup: r.rows for r in rollup_warehouse.reports}
    got = routed.query(QueryRequest.create(
        metrics=["revenue"], group_by=["metric_time__year", "order__order_status"]), ANONYMOUS)
    fitting = ("order_kpis_daily", "order_kpis_by_segment")
    smallest = min(fitting, key=rows.__getitem__)
    other = max(fitting, key=rows.__getitem__)
    assert rows[smallest] < rows[other]
    assert got.rollup.used == smallest
    assert (other, f"a smaller rollup fits ({smallest})") in got.rollup.misses
