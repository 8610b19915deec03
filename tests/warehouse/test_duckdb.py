"""The DuckDB warehouse on a real file: stopping the queries that still run at shutdown."""

from __future__ import annotations

import threading
import time

from server.core.errors import WarehouseUnavailable
from server.warehouse.duckdb import DuckDBWarehouse

ENDLESS = "select sum(i * i) from range(100000000000) t(i)"  # hours of work


def test_interrupt_stops_a_running_query_at_once(warehouse):
    dw = DuckDBWarehouse(warehouse.duckdb_path)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            dw.execute(ENDLESS, timeout_seconds=120)
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)
    started = time.perf_counter()
    dw.interrupt()
    thread.join(10)
    assert not thread.is_alive() and time.perf_counter() - started < 5
    assert isinstance(outcome[0], WarehouseUnavailable), outcome
    assert "shutting down" in outcome[0].message
    dw.close()


def test_a_query_that_is_not_interrupted_still_answers(warehouse):
    dw = DuckDBWarehouse(warehouse.duckdb_path)
    assert dw.execute("select 42 as x").column("x").to_pylist() == [42]
    dw.close()
