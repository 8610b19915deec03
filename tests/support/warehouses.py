"""Warehouses with a fault that is hard to cause on demand with a small file: the real DuckDB
warehouse, slowed, held, or given a query that never ends; and one whose file is missing.
Each is handed to the service factory (`services.service(warehouse=...)`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa

from tally.warehouse.duckdb import DuckDBWarehouse

# How long a held query waits for the test to release it before failing (a test that forgets
# to release fails instead of hanging).
HOLD_LIMIT_SECONDS = 60.0


class SlowWarehouse(DuckDBWarehouse):
    """The real DuckDB warehouse, made slow: it widens the window in which concurrent requests
    overlap. Only SQL containing `marker` is slowed (all of it when the marker is empty)."""

    def __init__(self, path: Path, seconds: float = 0.5, marker: str = "") -> None:
        super().__init__(path)
        self.seconds = seconds
        self.marker = marker

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        if self.marker in sql:
            time.sleep(self.seconds)
        return super().execute(sql, timeout_seconds)


class HeldWarehouse(DuckDBWarehouse):
    """The real DuckDB warehouse whose queries containing `marker` wait until the test calls
    release(): a query is "still running" for exactly as long as the test needs, whatever
    the machine's load (events, not wall-clock races). `started` is set when such a query
    begins; `held` counts them."""

    def __init__(self, path: Path, marker: str = "") -> None:
        super().__init__(path)
        self.marker = marker
        self.started = threading.Event()
        self._released = threading.Event()
        self._count_lock = threading.Lock()
        self.held = 0

    def release(self) -> None:
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        if self.marker in sql:
            with self._count_lock:
                self.held += 1
            self.started.set()
            if not self._released.wait(HOLD_LIMIT_SECONDS):
                raise RuntimeError("the test never released the held query")
        return super().execute(sql, timeout_seconds)


class EndlessWarehouse(DuckDBWarehouse):
    """The real DuckDB warehouse and its real timeout, given a query that takes hours when the
    SQL contains `marker`: no metric query on the small test file runs long enough to time out
    reliably."""

    ENDLESS = "select sum(i * i) as revenue from range(100000000000) t(i)"

    def __init__(self, path: Path, marker: str) -> None:
        super().__init__(path)
        self.marker = marker

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        if self.marker in sql:
            sql = self.ENDLESS
        return super().execute(sql, timeout_seconds)


def missing_warehouse(folder: Path) -> DuckDBWarehouse:
    """A DuckDB warehouse whose file does not exist (never built, or deleted)."""
    path = folder / "warehouse.duckdb"
    assert not path.exists()
    return DuckDBWarehouse(path)
