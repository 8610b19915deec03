"""Interrupting a warehouse query that would run for a long time (DuckDB and PostgreSQL)."""

from __future__ import annotations

import threading
import time

from tally.errors import WarehouseUnavailable


def assert_interrupt_stops(warehouse, long_sql: str) -> None:
    """Start `long_sql` in a thread, call interrupt(): the query stops within seconds with
    WarehouseUnavailable("... shutting down")."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            warehouse.execute(long_sql, timeout_seconds=120)
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)
    started = time.perf_counter()
    warehouse.interrupt()
    thread.join(10)
    assert not thread.is_alive() and time.perf_counter() - started < 5
    assert isinstance(outcome[0], WarehouseUnavailable), outcome
    assert "shutting down" in outcome[0].message
