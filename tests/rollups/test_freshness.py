"""Rollups never answer for data they were not built from, and a refresh recomputes only the
partitions whose source rows changed.

A real data change on a private copy of the warehouse: a cancelled order (with its line) is
added to raw.* in the last month of history and `dbt run` rebuilds the models. A cancelled
order changes no customer attribute (lifetime value, segment and status count completed orders
only), so only that month's partitions of the order rollups change."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tally.warehouse.duckdb import DuckDBWarehouse
from tests.support.builds import copy_of, run_dbt
from tests.support.hand_sql import FLOAT_TOL, assert_rows_match, expected_rows, group_columns
from tests.support.rollups import build_duckdb
from tests.support.services import ServiceFactory

NEW_ORDER_DAY = dt.date(2025, 12, 20)
QUERY = QueryRequest.create(
    metrics=["order_count", "average_order_value"], group_by=["metric_time__month"]
)


def _hand(raw_con: duckdb.DuckDBPyConnection, metric: str):
    sql = {
        "order_count": "count(*)",
        "average_order_value": "cast(sum(net_amount) filter (where order_status = 'completed')"
                               " as double) / nullif(count(*) filter (where order_status = "
                               "'completed'), 0)",
    }[metric]
    return expected_rows(raw_con, f"select {group_columns(['metric_time__month'], 'order_date')}, "
                                  f"{sql} as {metric} from enriched_orders group by all")


def _check(result, db) -> None:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = result.table.to_pylist()
        assert_rows_match(rows, _hand(con, "order_count"), ["metric_time__month"], "order_count")
        assert_rows_match(rows, _hand(con, "average_order_value"), ["metric_time__month"],
                          "average_order_value", tol=FLOAT_TOL, absent="null")
    finally:
        con.close()


@pytest.fixture(scope="module")
def changed(warehouse, engines, tmp_path_factory):
    """A copy with rollups built, then new data: (db, target, factory, reports before)."""
    db, target = copy_of(warehouse, tmp_path_factory.mktemp("fresh"))
    manifest = target / "semantic_manifest.json"
    first = build_duckdb(db, target, only=("order_kpis_daily", "executive_kpis_by_month"))
    factory = ServiceFactory(engines, manifest, lambda: DuckDBWarehouse(db))
    yield db, target, factory, first
    factory.close()


def test_a_rollup_built_before_new_data_is_never_used_after(changed, warehouse):
    db, target, factory, first = changed
    before = factory.service(cache_enabled=False, shared_engine=False)
    old = before.query(QUERY, ANONYMOUS)
    assert old.rollup.used == "executive_kpis_by_month"
    before.shutdown()

    con = duckdb.connect(str(db))
    try:
        customer = con.execute(
            "select o.customer_id from raw.orders o join raw.customers c using (customer_id) "
            "where o.order_status = 'completed' and contains(lower(trim(c.email)), '@') "
            "and trim(c.first_name) <> '' and trim(c.last_name) <> '' limit 1").fetchone()[0]
        order_id = con.execute("select max(order_id) + 1 from raw.orders").fetchone()[0]
        item_id = con.execute("select max(order_item_id) + 1 from raw.order_items").fetchone()[0]
        con.execute("insert into raw.orders values (?, ?, ?, 'cancelled', ?)",
                    [order_id, customer, NEW_ORDER_DAY, dt.datetime(2025, 12, 20, 12)])
        con.execute("insert into raw.order_items values (?, ?, 1, 2, 10.00, 0.00)",
                    [item_id, order_id])
    finally:
        con.close()
    env = {**warehouse.env(), "TALLY_DUCKDB_PATH": str(db)}
    run = run_dbt(["run", "--log-path", str(target.parent / "logs")], target, env)
    assert run.returncode == 0, run.stdout[-3000:]

    after = factory.service(cache_enabled=False, shared_engine=False)
    fresh = after.query(QUERY, ANONYMOUS)
    # The rollups hold the old data: none may answer, and each says why.
    assert fresh.rollup.used is None
    reasons = dict(fresh.rollup.misses)
    assert reasons["executive_kpis_by_month"] == "stale: built before the latest data build"
    assert reasons["order_kpis_daily"] == "stale: built before the latest data build"
    assert "tally_rollups." not in fresh.sql
    _check(fresh, db)
    december = {r["metric_time__month"]: r["order_count"] for r in fresh.table.to_pylist()}
    before_dec = {r["metric_time__month"]: r["order_count"] for r in old.table.to_pylist()}
    assert december[dt.date(2025, 12, 1)] == before_dec[dt.date(2025, 12, 1)] + 1
    after.shutdown()

    # A refresh recomputes only the month whose source rows changed, and says so.
    second = build_duckdb(db, target, only=("order_kpis_daily", "executive_kpis_by_month"))
    by_name = {r.rollup: r for r in second}
    assert by_name["order_kpis_daily"].action == "refreshed"
    assert by_name["order_kpis_daily"].partitions == ["2025-12-01"]
    assert by_name["executive_kpis_by_month"].action == "refreshed"
    assert by_name["executive_kpis_by_month"].partitions == ["2025-12-01"]
    assert by_name["order_kpis_daily"].rows >= {r.rollup: r for r in first}[
        "order_kpis_daily"].rows

    served = factory.service(cache_enabled=False, shared_engine=False)
    routed = served.query(QUERY, ANONYMOUS)
    assert routed.rollup.used == "executive_kpis_by_month"
    _check(routed, db)
    # The refreshed daily rollup equals a rollup built whole from the new data.
    daily = served.query(QueryRequest.create(
        metrics=["order_count", "cancellation_rate"],
        group_by=["metric_time__day", "order__order_status"]), ANONYMOUS)
    assert daily.rollup.used == "order_kpis_daily"
    unrouted = factory.service(cache_enabled=False, rollups_enabled=False, shared_engine=False)
    whole = unrouted.query(QUERY, ANONYMOUS)
    assert whole.table.sort_by("metric_time__month").equals(routed.table.sort_by(
        "metric_time__month"))
    source = unrouted.query(daily.request, ANONYMOUS)
    keys = [("metric_time__day", "ascending"), ("order__order_status", "ascending")]
    assert source.table.sort_by(keys).equals(daily.table.sort_by(keys))
