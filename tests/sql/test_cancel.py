"""A SQL session's cancel stops the warehouse query its metric query runs (the path of the
PostgreSQL endpoint's CancelRequest: session -> service -> warehouse, through the cancel scope
the session opens), on a real DuckDB warehouse given a query that runs for hours."""

from __future__ import annotations

import asyncio
import time

import pyarrow as pa

from tally.core.caller import ANONYMOUS
from tally.errors import QueryCancelled
from tally.sql.session import SqlEngine
from tally.warehouse.duckdb import DuckDBWarehouse

PROBE = "select 7 as x"
ENDLESS = "select sum(i % 1000) as revenue from range(1000000000000) t(i)"  # hours of work


class EndlessWarehouse(DuckDBWarehouse):
    """A real DuckDB warehouse that runs an endless query in place of the one it is given:
    the fault (a query too slow to wait for) cannot be caused from the demo's small data."""

    def _run(self, conn, sql: str, timeout_seconds: float | None) -> pa.Table:
        return super()._run(conn, sql if sql == PROBE else ENDLESS, timeout_seconds)


def test_cancel_stops_the_warehouse_query_of_a_metric_select(session_services, warehouse):
    dw = EndlessWarehouse(warehouse.duckdb_path)
    service = session_services.service(dw, cache_enabled=False)
    session = SqlEngine(service).session(ANONYMOUS)

    async def go() -> tuple[BaseException | None, float]:
        task = asyncio.ensure_future(session.execute("SELECT MEASURE(revenue) FROM metrics"))
        await asyncio.sleep(1.5)
        assert not task.done(), task
        started = time.perf_counter()
        session.cancel()
        try:
            await asyncio.wait_for(task, 15)
        except BaseException as e:  # the test looks at it
            return e, time.perf_counter() - started
        return None, time.perf_counter() - started

    outcome, took = asyncio.run(go())
    assert isinstance(outcome, QueryCancelled), outcome
    assert took < 10
    assert dw.execute(PROBE).to_pylist() == [{"x": 7}]  # the warehouse goes on
