"""Cancelling one query (tally.core.cancel): a transport's CancelScope stops the warehouse
query its call runs (what the PostgreSQL endpoint's CancelRequest does), on DuckDB and on a
real PostgreSQL; other queries and the warehouse go on."""

from __future__ import annotations

import contextvars
import os
import threading
import time

import pytest

from tally.core.cancel import CancelScope, cancel_scope
from tally.errors import QueryCancelled
from tally.warehouse.duckdb import DuckDBWarehouse
from tally.warehouse.postgres import PostgresWarehouse
from tests.support.postgres import postgres_or_skip

ENDLESS_DUCKDB = "select sum(i * i) from range(100000000000) t(i)"  # hours of work
PG = {"host": os.environ.get("PGHOST", "127.0.0.1"),
      "port": int(os.environ.get("PGPORT", "5432")),
      "user": os.environ.get("PGUSER", "postgres"),
      "dbname": os.environ.get("PGDATABASE", "test")}


def cancelled_in_time(warehouse, sql: str) -> BaseException | None:
    """Run `sql` under a scope in a thread, cancel the scope: the query's outcome."""
    scope = CancelScope()
    outcome: list[BaseException | None] = []

    def run() -> None:
        with cancel_scope(scope):
            try:
                warehouse.execute(sql, timeout_seconds=120)
                outcome.append(None)
            except BaseException as e:  # the test looks at it
                outcome.append(e)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,))
    thread.start()
    time.sleep(0.7)
    assert thread.is_alive(), f"the query ended by itself: {outcome}"
    started = time.perf_counter()
    scope.cancel()
    thread.join(15)
    assert not thread.is_alive() and time.perf_counter() - started < 10
    return outcome[0]


def test_a_scope_stops_its_duckdb_query_and_the_warehouse_goes_on(warehouse):
    dw = DuckDBWarehouse(warehouse.duckdb_path)
    try:
        outcome = cancelled_in_time(dw, ENDLESS_DUCKDB)
        assert isinstance(outcome, QueryCancelled), outcome
        assert dw.execute("select 42 as x").to_pylist() == [{"x": 42}]
    finally:
        dw.close()


def test_a_scope_stops_its_postgresql_query_and_the_warehouse_goes_on():
    postgres_or_skip()
    pw = PostgresWarehouse(**PG)
    try:
        outcome = cancelled_in_time(pw, "select pg_sleep(30)")
        assert isinstance(outcome, QueryCancelled), outcome
        assert pw.execute("select 42 as x").to_pylist() == [{"x": 42}]
    finally:
        pw.close()


def test_a_cancelled_scope_refuses_its_next_query_without_running_it(warehouse):
    dw = DuckDBWarehouse(warehouse.duckdb_path)
    scope = CancelScope()
    scope.cancel()
    try:
        with cancel_scope(scope), pytest.raises(QueryCancelled):
            dw.execute("select 1")
        assert dw.execute("select 1 as x").to_pylist() == [{"x": 1}]  # outside the scope
    finally:
        dw.close()
