"""The warehouse base class as an engine's author meets it: a whole engine over SQLite (the
standard library's, a real database) in the hooks that docs/warehouses.md's "Adding a warehouse
engine" names, registered with one line, gets the time limit through the watchdog, interrupt(),
the error ladder, a pool, ping() and stream() from the base."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tally.core.engine import EngineSpec
from tally.errors import QueryDataError, QueryTimeout, WarehouseError, WarehouseUnavailable
from tally.warehouse import registry
from tally.warehouse.base import BaseWarehouse, Failure
from tally.warehouse.dbt_adapter import to_arrow
from tests.support.interrupts import assert_interrupt_stops

# Counts forever: SQLite streams a recursive CTE, so it holds no memory while it runs.
ENDLESS = ("with recursive r(i) as (select 1 union all select i + 1 from r) "
           "select count(*) as n from r")


class SQLiteWarehouse(BaseWarehouse[sqlite3.Connection]):
    name = "SQLite"
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        super().__init__(ENGINE)
        self.path = path
        self.opened = 0

    def _open(self) -> sqlite3.Connection:
        con = self._pooled()
        if con is None:
            self.opened += 1
            # Read-only, as every engine's queries are; used by one query at a time.
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                  check_same_thread=False)
        return con

    def _run(self, conn: sqlite3.Connection, sql: str, timeout_seconds: float | None
             ) -> pa.Table:
        cursor = conn.execute(sql)
        return to_arrow([d[0] for d in cursor.description], cursor.fetchall())

    def _cancel(self, conn: sqlite3.Connection) -> None:
        conn.interrupt()  # SQLite's own: from any thread

    def _close(self, conn: sqlite3.Connection, reusable: bool) -> None:
        if not (reusable and self._give_back(conn)):
            conn.close()

    def _classify(self, e: BaseException) -> Failure | None:
        return Failure.DATA if "integer overflow" in str(e) else None

    def data_version(self) -> str:
        st = os.stat(self.path)
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"


def connect(output: Mapping[str, Any], project_dir: Path) -> SQLiteWarehouse:
    return SQLiteWarehouse(project_dir / str(output["path"]))


ENGINE = EngineSpec(
    adapter_type="sqlite",
    dialect="sqlite",
    # Not compiled here: these tests run SQL written for SQLite.
    metricflow_engine="DUCKDB",
    metricflow_renderer="metricflow.sql.render.duckdb_renderer:DuckDbSqlPlanRenderer",
    connect=connect,
)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("create table orders (id integer, amount real)")
        con.executemany("insert into orders values (?, ?)", [(i, i * 1.5) for i in range(10)])
    con.close()
    return path


@pytest.fixture
def sqlite(database: Path) -> Iterator[SQLiteWarehouse]:
    warehouse = SQLiteWarehouse(database)
    yield warehouse
    warehouse.close()


def test_one_registry_line_makes_it_an_engine(monkeypatch, database: Path):
    monkeypatch.setattr(registry, "ENGINES", dict(registry.ENGINES))
    registry.register(ENGINE)
    spec, warehouse = registry.connect({"type": "sqlite", "path": database.name},
                                       database.parent)
    try:
        assert spec is ENGINE and registry.engine_of(warehouse) is ENGINE
        assert warehouse.execute("select sum(amount) as s from orders").to_pylist() == [
            {"s": 67.5}]
        warehouse.ping()
    finally:
        warehouse.close()


def test_connections_are_pooled_and_bounded(sqlite: SQLiteWarehouse):
    for i in range(5):
        assert sqlite.execute(f"select {i} as x").column("x").to_pylist() == [i]
    assert sqlite.opened == 1

    def ask(n: int) -> None:
        for _ in range(20):
            sqlite.execute(f"select {n} as x")

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(sqlite._idle) <= sqlite.pool_size and not sqlite._running
    sqlite.close()
    assert sqlite._idle == []


def test_the_time_limit_cancels_through_the_watchdog(sqlite: SQLiteWarehouse):
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"longer than 0\.2 s"):
        sqlite.execute(ENDLESS, timeout_seconds=0.2)
    assert time.monotonic() - started < 5
    assert sqlite._idle == []  # a connection a cancel was sent to is never reused
    assert sqlite.execute("select count(*) as n from orders").column("n").to_pylist() == [10]


def test_the_error_ladder(sqlite: SQLiteWarehouse):
    with pytest.raises(QueryDataError, match="SQLite refused a value: integer overflow"):
        sqlite.execute("select abs(-9223372036854775807 - 1) as v")
    with pytest.raises(WarehouseError, match="SQLite failed to run the query: no such table"):
        sqlite.execute("select * from no_such_table")
    with pytest.raises(WarehouseError, match="readonly"):  # read-only, as served
        sqlite.execute("insert into orders values (99, 1.0)")
    assert sqlite._idle == []  # a connection whose query failed is closed, not pooled
    assert sqlite.execute("select 1 as one").column("one").to_pylist() == [1]


def test_interrupt_stops_what_runs_and_refuses_what_comes(sqlite: SQLiteWarehouse):
    assert_interrupt_stops(sqlite, ENDLESS)
    with pytest.raises(WarehouseUnavailable, match="shutting down"):
        sqlite.execute("select 1")
    with pytest.raises(WarehouseUnavailable, match="shutting down"):
        next(sqlite.stream("select 1"))


def test_stream_cuts_the_whole_result_into_batches(sqlite: SQLiteWarehouse):
    batches = list(sqlite.stream("select id from orders order by id", batch_rows=4))
    assert [b.num_rows for b in batches] == [4, 4, 2]
    assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(10))
    empty = list(sqlite.stream("select id, amount from orders where false"))
    assert len(empty) == 1 and empty[0].num_rows == 0
    assert empty[0].schema.names == ["id", "amount"]
