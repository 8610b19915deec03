"""The data version: a token that changes whenever the served numbers may have changed.

It combines the warehouse's own signal (for DuckDB: the file's inode, size and mtime, so the
atomic swap of `tally build` changes it), dbt's run_results.json (a `dbt build` or `dbt run`
on any warehouse rewrites it) and an explicit generation bumped by POST /api/v1/cache/invalidate.
Reading it costs two stat() calls.

With a shared cache (several replicas, tally.cache.tiered) the generation is the one in Redis,
read on every query (one round trip on loopback-class networks), so an invalidation or rebuild
announced by any replica changes every replica's keys at once. While Redis is unavailable the
cache is bypassed, and the version says so.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from tally.cache.redis_store import RedisStore, Unavailable


class DataVersion:
    def __init__(
        self,
        warehouse_version: Callable[[], str],
        run_results: Path,
        shared: RedisStore | None = None,
    ) -> None:
        self._warehouse_version = warehouse_version
        self._run_results = run_results
        self._shared = shared
        self._generation = 0
        self._lock = threading.Lock()

    def bump(self) -> int:
        with self._lock:
            self._generation += 1
            generation = self._generation
        if self._shared is not None:
            # While Redis is down this replica's cache is bypassed anyway.
            with contextlib.suppress(Unavailable):
                self._shared.bump()
        return generation

    def current(self) -> str:
        try:
            st = os.stat(self._run_results)
            dbt_stamp = f"{st.st_mtime_ns}-{st.st_size}"
        except FileNotFoundError:
            dbt_stamp = "none"
        if self._shared is None:
            return f"{self._warehouse_version()}|{dbt_stamp}|{self._generation}"
        try:
            shared = f"shared-{self._shared.generation()}"
        except Unavailable:
            shared = "unshared"
        return f"{self._warehouse_version()}|{dbt_stamp}|{shared}"
