"""The PostgreSQL warehouse against the real local server (127.0.0.1:5432). In CI a missing
server fails the suite; on a developer machine without one these tests skip, saying why."""

from __future__ import annotations

import datetime as dt
import decimal
import os

import pyarrow as pa
import pytest

from tally.errors import QueryTimeout, WarehouseError, WarehouseUnavailable
from tally.project import read_profile_target
from tally.warehouse.postgres import PostgresWarehouse
from tally.warehouse.registry import connect
from tests.support.interrupts import assert_interrupt_stops
from tests.support.paths import PROJECT_DIR
from tests.support.postgres import postgres_or_skip

PG = {"host": os.environ.get("PGHOST", "127.0.0.1"),
      "port": int(os.environ.get("PGPORT", "5432")),
      "user": os.environ.get("PGUSER", "postgres"),
      "dbname": os.environ.get("PGDATABASE", "test")}


@pytest.fixture(scope="module")
def pg() -> PostgresWarehouse:
    postgres_or_skip()  # fails in CI without a server, skips (saying why) elsewhere
    return PostgresWarehouse(**PG)


def test_types_come_back_as_arrow(pg):
    table = pg.execute("""
        select date '2025-01-01' as metric_time__month, 'US'::text as country,
               12345.67::numeric(12, 2) as revenue, 42::bigint as orders, null::text as empty
        union all
        select date '2025-02-01', 'DE', 0.10, 0, null""")
    assert table.column_names == ["metric_time__month", "country", "revenue", "orders", "empty"]
    assert pa.types.is_date(table.schema.field("metric_time__month").type)
    assert table.column("revenue").to_pylist() == [decimal.Decimal("12345.67"),
                                                   decimal.Decimal("0.10")]
    assert table.column("orders").to_pylist() == [42, 0]
    assert table.column("metric_time__month")[0].as_py() == dt.date(2025, 1, 1)


def test_empty_result_keeps_its_columns(pg):
    table = pg.execute("select 1 as a, 'x' as b where false")
    assert table.column_names == ["a", "b"] and table.num_rows == 0


@pytest.mark.parametrize("value", [
    "date '2025-01-01'", "timestamp '2025-01-01 10:00'", "timestamptz '2025-01-01 10:00+02'",
    "1::smallint", "1::int", "1::bigint", "1.5::real", "1.5::float8", "1.5::numeric(12, 2)",
    "true", "'x'::text", "'x'::varchar(5)", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "'1 day'::interval", "'ab'::bytea", "time '10:00'",
])  # fmt: skip
def test_a_column_without_values_has_the_type_of_its_values(pg, value):
    """No rows, or nulls only: the column takes PostgreSQL's declared type, the one its values
    would give, not Arrow's null type (a time column must look like one to `tally validate`)."""
    with_values = pg.execute(f"select {value} as v").schema.field("v").type
    assert not pa.types.is_null(with_values)
    nulls_only = f"select (select {value} where false) as v from generate_series(1, 3)"
    for sql in (f"select {value} as v where false", nulls_only):
        without = pg.execute(sql).schema.field("v").type
        if pa.types.is_decimal(with_values):  # values are sized to fit; the declared type is
            assert pa.types.is_decimal(without) and without.scale == with_values.scale, sql
        else:
            assert without == with_values, sql


def test_repeated_column_names_are_kept_by_position(pg):
    table = pg.execute("select 1 as a, 'x' as a, null::date as a")
    assert table.column_names == ["a", "a", "a"]
    assert [c[0].as_py() for c in table.columns] == [1, "x", None]
    assert pa.types.is_date(table.schema.field(2).type)


def test_queries_cannot_write(pg):
    with pytest.raises(WarehouseError, match="read-only"):
        pg.execute("create table tally_should_not_exist (x int)")


def test_timeout_and_errors(pg):
    with pytest.raises(QueryTimeout, match=r"0\.2 s"):
        pg.execute("select pg_sleep(3)", timeout_seconds=0.2)
    with pytest.raises(WarehouseError, match="PostgreSQL failed"):
        pg.execute("select * from no_such_table_anywhere")
    pg.ping()  # the warehouse is still fine afterwards


def test_unreachable_server_is_unavailable():
    with pytest.raises(WarehouseUnavailable, match="Cannot connect"):
        PostgresWarehouse(host="127.0.0.1", port=1, user="postgres", dbname="test").ping()


def test_profile_target_postgres_builds_this_warehouse(monkeypatch, pg):
    monkeypatch.setenv("PGDATABASE", PG["dbname"])
    output = read_profile_target(PROJECT_DIR, PROJECT_DIR, target="postgres")
    engine, warehouse = connect(output, PROJECT_DIR, "native")  # auto prefers ADBC
    assert engine.adapter_type == "postgres" and engine.execution_path == "native"
    assert isinstance(warehouse, PostgresWarehouse) and warehouse.dialect == "postgres"
    assert warehouse.execute("select 1 as one").column("one").to_pylist() == [1]


def test_the_postgres_copy_keeps_nulls_and_empty_strings_apart(pg_warehouse, raw):
    """Missing and empty e-mails are different imperfections of the raw data; the copy into
    PostgreSQL keeps them apart, and keeps every row."""
    import psycopg2


    query = ("select count(*), count(*) filter (where email is null), "
             "count(*) filter (where email = ''), sum(length(coalesce(email, ''))) "
             "from raw.customers")
    with psycopg2.connect(**pg_warehouse.conn()) as con, \
            con.cursor() as cur:
        cur.execute(query)
        copied = tuple(int(v) for v in cur.fetchone())
        cur.execute("select count(*) from raw.order_items")
        items = cur.fetchone()[0]
    original = tuple(int(v) for v in raw.execute(query).fetchone())
    assert copied == original and original[1] > 0 and original[2] > 0
    assert items == raw.execute("select count(*) from raw.order_items").fetchone()[0]


def test_tally_generate_writes_a_postgres_target(tmp_path):
    """`tally generate --target postgres` through the real CLI, into a database of its own."""
    import subprocess
    import sys

    import psycopg2


    conn = postgres_or_skip()
    dbname = f"tally_gen_{os.getpid()}"
    admin = psycopg2.connect(**conn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'create database "{dbname}"')
    try:
        tally = os.path.join(os.path.dirname(sys.executable), "tally")
        out = subprocess.run(
            [tally, "generate", "--target", "postgres", "--scale", "0.02", "--project-dir",
             str(PROJECT_DIR)],
            env={**os.environ, "PGDATABASE": dbname}, capture_output=True, text=True,
            timeout=120)
        assert out.returncode == 0, out.stderr
        assert "raw.orders" in out.stdout and "copied" in out.stdout
        with psycopg2.connect(**{**conn, "dbname": dbname}) as con, con.cursor() as cur:
            cur.execute("select count(*) from raw.customers")
            assert cur.fetchone()[0] == 200
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{dbname}" with (force)')
        admin.close()


def test_interrupt_cancels_a_running_query(pg):
    """At shutdown the server interrupts what still runs (a warehouse of its own here: once
    interrupted, a warehouse treats cancelled queries as the server shutting down)."""
    assert_interrupt_stops(PostgresWarehouse(**PG), "select pg_sleep(30)")


def test_stream_cuts_the_whole_result_into_batches(pg):
    """psycopg2 fetches the whole result (the base class's stream); an export still gets
    batches of at most batch_rows, and an empty result one batch that names its columns."""
    batches = list(pg.stream("select x, x * 2 as y from generate_series(1, 5) x", 2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert pa.Table.from_batches(batches).column("y").to_pylist() == [2, 4, 6, 8, 10]
    empty = list(pg.stream("select 1 as a, 'x' as b where false"))
    assert len(empty) == 1 and empty[0].num_rows == 0 and empty[0].schema.names == ["a", "b"]


def test_a_query_cancelled_by_someone_else_is_a_fault_not_a_timeout(pg):
    """A query another session cancels (pg_cancel_backend), with no time limit of tally's:
    PostgreSQL's message, as a warehouse error."""
    import threading

    import psycopg2

    marker = f"tally_cancel_{os.getpid()}"
    admin = psycopg2.connect(**PG)
    admin.autocommit = True
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            pg.execute(f"select pg_sleep(30) /* {marker} */")
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        with admin.cursor() as cur:
            for _ in range(100):
                cur.execute("select count(pg_cancel_backend(pid)) from pg_stat_activity "
                            "where query like %s and pid <> pg_backend_pid()",
                            (f"%{marker}%",))
                if cur.fetchone()[0]:
                    break
                thread.join(0.05)
        thread.join(10)
    finally:
        admin.close()
    assert not thread.is_alive() and len(outcome) == 1
    error = outcome[0]
    assert type(error) is WarehouseError and "canceling statement" in error.message
