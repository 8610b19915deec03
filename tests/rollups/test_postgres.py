"""Rollups on PostgreSQL, end to end: built in place through the engine's writer, read back
through the read-only warehouse, routed, and refreshed per partition after new data.

The warehouse is a private database of this module (the session's raw data, built by dbt:
tests/support/postgres.py), never the shared `pg_warehouse`; its tests share one worker
(tests/support/scheduling.py). The correctness cases are the DuckDB suite's
(tests/support/rollup_cases.py), against the same hand SQL."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import psycopg2
import pytest

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tally.rollups.build import BuildReport
from tally.warehouse.postgres import PostgresWarehouse
from tests.support.paths import PROJECT_DIR, TALLY
from tests.support.postgres import (
    BuiltPostgres,
    clone_postgres,
    postgres_or_skip,
    private_postgres,
)
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
from tests.support.rollups import build_postgres
from tests.support.services import ServiceFactory

NEW_ORDER_DAY = dt.date(2025, 12, 20)
ORDERS_BY_MONTH = QueryRequest.create(
    metrics=["order_count", "average_order_value"], group_by=["metric_time__month"]
)
ORDER_ROLLUPS = ("order_kpis_daily", "executive_kpis_by_month")


@dataclass
class PgRollups:
    db: BuiltPostgres
    reports: list[BuildReport]
    progress: list[str]


@pytest.fixture(scope="module")
def pg_rollups(request, warehouse, tmp_path_factory) -> PgRollups:
    postgres_or_skip()
    db = private_postgres(request.config, warehouse, tmp_path_factory.mktemp("pg-rollups"))
    progress: list[str] = []
    reports = build_postgres(db.conn(), db.target_dir, progress=progress.append)
    return PgRollups(db, reports, progress)


def _factory(engines, db: BuiltPostgres) -> ServiceFactory:
    return ServiceFactory(engines, db.manifest_path, lambda: PostgresWarehouse(**db.conn()),
                          target="postgres")  # fmt: skip


@pytest.fixture(scope="module")
def pg_services(engines, pg_rollups) -> Iterator[ServiceFactory]:
    factory = _factory(engines, pg_rollups.db)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def routed(pg_services):
    return pg_services.service(cache_enabled=False)


@pytest.fixture(scope="module")
def unrouted(pg_services):
    return pg_services.service(cache_enabled=False, rollups_enabled=False)


def test_the_build_reports_progress_and_a_second_build_is_up_to_date(pg_rollups):
    names = [r.rollup for r in pg_rollups.reports]
    assert len(names) >= 5 and all(r.action == "built" and r.rows > 0 for r in pg_rollups.reports)
    assert f"[1/{len(names)}] {names[0]} ..." in pg_rollups.progress
    assert any(line.startswith(f"[1/{len(names)}] {names[0]}: built, ")
               for line in pg_rollups.progress)  # fmt: skip
    again = build_postgres(pg_rollups.db.conn(), pg_rollups.db.target_dir)
    assert {r.action for r in again} == {"up to date"}
    with psycopg2.connect(**pg_rollups.db.conn()) as con, con.cursor() as cur:
        cur.execute("select rollup, relation from tally_rollups.registry order by 1")
        registry = dict(cur.fetchall())
        cur.execute("select table_name from information_schema.tables "
                    "where table_schema = 'tally_rollups' and table_name <> 'registry'")
        tables = {r[0] for r in cur.fetchall()}
    con.close()
    assert sorted(registry) == sorted(names)
    assert {v.split(".", 1)[1].strip('"') for v in registry.values()} == tables


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
    check_not_routed(routed, unrouted, metrics, group_by, reason)


def test_decimals_stay_exact_through_a_rollup(routed):
    got = routed.query(QueryRequest.create(metrics=["revenue"], group_by=["metric_time__year"]),
                       ANONYMOUS)
    assert got.rollup.used
    assert all(isinstance(r["revenue"], Decimal) for r in rows_of(got))


def _add_cancelled_order(db: BuiltPostgres) -> None:
    """A cancelled order (and its line) in the last month of history, in raw.*: it changes
    no customer attribute, so only that month's partitions of the order rollups change."""
    con = psycopg2.connect(**db.conn())
    try:
        with con, con.cursor() as cur:
            cur.execute(
                "select o.customer_id from raw.orders o join raw.customers c using (customer_id) "
                "where o.order_status = 'completed' and position('@' in lower(trim(c.email))) > 0 "
                "and trim(c.first_name) <> '' and trim(c.last_name) <> '' limit 1")
            customer = cur.fetchone()[0]
            cur.execute("select max(order_id) + 1 from raw.orders")
            order_id = cur.fetchone()[0]
            cur.execute("select max(order_item_id) + 1 from raw.order_items")
            item_id = cur.fetchone()[0]
            cur.execute("insert into raw.orders values (%s, %s, %s, 'cancelled', %s)",
                        (order_id, customer, NEW_ORDER_DAY, dt.datetime(2025, 12, 20, 12)))
            cur.execute("insert into raw.order_items values (%s, %s, 1, 2, 10.00, 0.00)",
                        (item_id, order_id))
    finally:
        con.close()


def _dbt_run(db: BuiltPostgres) -> None:
    from tests.support.builds import run_dbt

    env = {**db.env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    run = run_dbt(["run", "--log-path", str(db.target_dir.parent / "logs")], db.target_dir, env)
    assert run.returncode == 0, run.stdout[-3000:]


def test_a_stale_rollup_is_never_used_and_a_refresh_recomputes_only_changed_partitions(
    request, engines, pg_rollups, tmp_path
):
    """On a clone of the module's database, its order rollups built: new data, `dbt run`;
    the rollups are stale until refreshed, then only December is recomputed."""
    db = clone_postgres(request.config, pg_rollups.db, tmp_path)
    first = build_postgres(db.conn(), db.target_dir, only=ORDER_ROLLUPS)
    factory = _factory(engines, db)
    try:
        before = factory.service(cache_enabled=False, shared_engine=False)
        old = before.query(ORDERS_BY_MONTH, ANONYMOUS)
        assert old.rollup.used == "executive_kpis_by_month"

        _add_cancelled_order(db)
        _dbt_run(db)
        # The same service, still running: a new data build makes its rollups stale.
        fresh = before.query(ORDERS_BY_MONTH, ANONYMOUS)
        assert fresh.rollup.used is None
        reasons = dict(fresh.rollup.misses)
        for name in ORDER_ROLLUPS:
            assert reasons[name] == "stale: built before the latest data build"
        assert "tally_rollups." not in fresh.sql
        counts = {r["metric_time__month"]: r["order_count"] for r in rows_of(fresh)}
        old_counts = {r["metric_time__month"]: r["order_count"] for r in rows_of(old)}
        december = next(k for k in counts if (k.year, k.month) == (2025, 12))
        assert counts[december] == old_counts[december] + 1
        assert {k: v for k, v in counts.items() if k != december} == {
            k: v for k, v in old_counts.items() if k != december}

        second = build_postgres(db.conn(), db.target_dir, only=ORDER_ROLLUPS)
        by_name = {r.rollup: r for r in second}
        for name in ORDER_ROLLUPS:
            assert by_name[name].action == "refreshed"
            assert by_name[name].partitions == ["2025-12-01"]
        assert by_name["order_kpis_daily"].rows >= {r.rollup: r for r in first}[
            "order_kpis_daily"].rows

        # The running service reads the new registry (an in-place build changes no file the
        # data version sees; the rollups marker does) and routes again.
        routed = before.query(ORDERS_BY_MONTH, ANONYMOUS)
        assert routed.rollup.used == "executive_kpis_by_month"
        unrouted = factory.service(cache_enabled=False, rollups_enabled=False,
                                   shared_engine=False)  # fmt: skip
        whole = unrouted.query(ORDERS_BY_MONTH, ANONYMOUS)
        assert whole.table.sort_by("metric_time__month").equals(
            routed.table.sort_by("metric_time__month"))
        # The refreshed daily rollup equals MetricFlow's SQL over the new data.
        daily = before.query(QueryRequest.create(
            metrics=["order_count", "cancellation_rate"],
            group_by=["metric_time__day", "order__order_status"]), ANONYMOUS)
        assert daily.rollup.used == "order_kpis_daily"
        keys = [("metric_time__day", "ascending"), ("order__order_status", "ascending")]
        assert unrouted.query(daily.request, ANONYMOUS).table.sort_by(keys).equals(
            daily.table.sort_by(keys))
    finally:
        factory.close()


def _tally(args: list[str], env: dict[str, str], timeout: int = 600):
    return subprocess.run([str(TALLY), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_cli_rollups_build_on_postgres(request, pg_rollups, tmp_path):
    """`tally rollups build` with the profile's postgres target: progress, then up to date."""
    db = clone_postgres(request.config, pg_rollups.db, tmp_path)
    env = {**db.env(), "TALLY_MANIFEST_PATH": str(db.manifest_path),
           "TALLY_PROJECT_DIR": str(PROJECT_DIR)}
    env.pop("TALLY_DEBUG", None)
    full = _tally(["rollups", "build", "--select", "cohort_retention,revenue_by_country_by_month",
                   "--full"], env)
    assert full.returncode == 0, full.stderr
    assert "tally rollups: [1/2] cohort_retention ..." in full.stdout
    assert "revenue_by_country_by_month: built," in full.stdout
    assert "2 rollup(s), 2 built or refreshed" in full.stdout
    again = _tally(["rollups", "build", "--select", "cohort_retention"], env)
    assert again.returncode == 0 and "cohort_retention: up to date" in again.stdout
    explain = _tally(["query", "--metrics", "revenue", "--group-by",
                      "metric_time__year,customer__country", "--explain"], env, 120)
    assert explain.returncode == 0, explain.stderr
    assert explain.stdout.splitlines()[0] == "-- rollup: revenue_by_country_by_month"


def test_tally_build_builds_rollups_in_place_after_dbt(request, engines, pg_rollups, tmp_path):
    """`tally build` on the postgres target: dbt builds in place, then the rollups are brought
    up to date for the new data build before the new target folder is swapped in, and a
    service over it routes."""
    import shutil

    from tests.support.project_copies import make_copy

    db = clone_postgres(request.config, pg_rollups.db, tmp_path / "db")
    build_postgres(db.conn(), db.target_dir, only=("order_kpis_daily",))
    copy = make_copy(tmp_path / "project")
    served_target = copy.project_dir / "target"
    shutil.copytree(db.target_dir, served_target)
    env = {**db.env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for name in ("TALLY_DEBUG", "TALLY_MANIFEST_PATH", "TALLY_PROJECT_DIR", "DBT_TARGET_PATH"):
        env.pop(name, None)
    out = _tally(["build", "--project-dir", str(copy.project_dir), "--target", "postgres"], env,
                 900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "tally build: rollups..." in lines
    assert lines.index("tally build: rollups...") < lines.index("tally build: swap in...")
    # Same data, new data build: partitioned rollups keep their partitions (none changed).
    assert any("order_kpis_daily: refreshed 0 partition(s)" in line for line in lines), lines
    factory = ServiceFactory(engines, served_target / "semantic_manifest.json",
                             lambda: PostgresWarehouse(**db.conn()), target="postgres",
                             project_dir=copy.project_dir)  # fmt: skip
    try:
        service = factory.service(cache_enabled=False, shared_engine=False)
        got = service.query(ORDERS_BY_MONTH, ANONYMOUS)
        assert got.rollup.used == "executive_kpis_by_month", got.rollup
    finally:
        factory.close()
