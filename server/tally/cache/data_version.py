"""The data version: a token that changes whenever the served numbers may have changed.

It combines the warehouse's own signal (for DuckDB: the file's inode, size and mtime, so the
atomic swap of `tally build` changes it), dbt's run_results.json (a `dbt build` or `dbt run`
on any warehouse rewrites it) and an explicit generation bumped by POST /api/v1/cache/invalidate.
Reading it costs two stat() calls.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


class DataVersion:
    def __init__(self, warehouse_version: Callable[[], str], run_results: Path) -> None:
        self._warehouse_version = warehouse_version
        self._run_results = run_results
        self._generation = 0
        self._lock = threading.Lock()

    def bump(self) -> int:
        with self._lock:
            self._generation += 1
            return self._generation

    def current(self) -> str:
        try:
            st = os.stat(self._run_results)
            dbt_stamp = f"{st.st_mtime_ns}-{st.st_size}"
        except FileNotFoundError:
            dbt_stamp = "none"
        return f"{self._warehouse_version()}|{dbt_stamp}|{self._generation}"
