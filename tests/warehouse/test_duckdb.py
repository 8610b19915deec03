"""The DuckDB warehouse on a real file: stopping the queries that still run at shutdown, time
limits, and cursors kept between queries without holding the file."""

from __future__ import annotations

import shutil
import threading
import time

import duckdb
import pytest

from tally.errors import QueryTimeout
from tally.warehouse.duckdb import DuckDBWarehouse
from tests.support.interrupts import assert_interrupt_stops

ENDLESS = "select sum(i * i) from range(100000000000) t(i)"  # hours of work


def test_interrupt_stops_a_running_query_at_once(warehouse):
    dw = DuckDBWarehouse(warehouse.duckdb_path)
    assert_interrupt_stops(dw, ENDLESS)
    dw.close()


def test_a_query_that_is_not_interrupted_still_answers(warehouse):
    dw = DuckDBWarehouse(warehouse.duckdb_path)
    assert dw.execute("select 42 as x").column("x").to_pylist() == [42]
    dw.close()


def test_a_timed_out_query_stops_and_the_next_queries_answer(warehouse):
    """After an interrupt by the time limit, the warehouse answers the next queries (that a
    late interrupt cannot reach a reused cursor is the watchdog's guarantee, tested in
    test_deadlines)."""
    dw = DuckDBWarehouse(warehouse.duckdb_path)
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"0\.2 s"):
        dw.execute(ENDLESS, timeout_seconds=0.2)
    assert time.monotonic() - started < 5
    for i in range(20):
        assert dw.execute(f"select {i} as x", timeout_seconds=30).column("x")[0].as_py() == i
    dw.close()


def test_concurrent_queries_with_kept_cursors_each_get_their_own_answer(warehouse):
    dw = DuckDBWarehouse(warehouse.duckdb_path)
    answers: dict[int, list[int]] = {}

    def ask(n: int) -> None:
        answers[n] = [dw.execute(f"select {n} * 1000 + {i} as x").column("x")[0].as_py()
                      for i in range(50)]  # fmt: skip

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == {n: [n * 1000 + i for i in range(50)] for n in range(6)}
    dw.close()


def test_kept_cursors_let_the_file_go_when_idle_and_on_close(warehouse, tmp_path):
    """DuckDB holds a file while any cursor of it is open: the idle release and close() must
    close the kept cursors too, or a writer (dbt) is locked out."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse.duckdb_path, path)
    dw = DuckDBWarehouse(path, idle_release_seconds=0.2)
    for _ in range(5):
        dw.execute("select count(*) from information_schema.tables")
    deadline = time.monotonic() + 10
    while True:
        try:
            duckdb.connect(str(path)).close()  # read-write: fails while the server holds it
            break
        except duckdb.Error:  # in this process: "already attached by database 'warehouse'"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    dw.execute("select 1")
    dw.close()
    duckdb.connect(str(path)).close()


def test_once_interrupted_it_refuses_new_queries_and_streams(warehouse):
    """After interrupt() (the server shutting down) nothing new starts: a query or an export
    begun then would outlive the shutdown."""
    from tally.errors import WarehouseUnavailable

    dw = DuckDBWarehouse(warehouse.duckdb_path)
    assert dw.execute("select 1 as x").column("x").to_pylist() == [1]
    dw.interrupt()
    with pytest.raises(WarehouseUnavailable, match="shutting down"):
        dw.execute("select 1")
    with pytest.raises(WarehouseUnavailable, match="shutting down"):
        next(dw.stream("select 1"))
    dw.close()
