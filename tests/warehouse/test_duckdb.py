"""The DuckDB warehouse on a real file: stopping the queries that still run at shutdown."""

from __future__ import annotations

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
