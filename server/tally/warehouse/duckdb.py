"""DuckDB: a read-only connection per version of the file, one cursor per query.

Opening a DuckDB file costs ~30 ms, a cursor on an open connection ~0.4 ms, so the connection
is kept while the file is unchanged. `tally build` builds a new file elsewhere and renames it
over this one: the inode changes, the next query opens the new file, and the old connection
is closed once its last query finishes. The server never writes, so it never blocks the build.
(Running dbt directly on the served file instead is refused by DuckDB's lock while the server
holds its read-only connection; the message names `tally build`.)
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from tally.core.engine import DemoTarget, EngineSpec, RollupWriter
from tally.core.reserved import STANDARD_RESERVED
from tally.core.rollup_dialect import RollupDialect
from tally.errors import ConfigurationError, WarehouseUnavailable
from tally.warehouse.base import BaseWarehouse

# Errors about the values and types in a query (as opposed to the warehouse failing).
_DATA_ERRORS = (
    duckdb.ConversionException,
    duckdb.BinderException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
)


# Idle cursors kept per connection: a new cursor and its USE cost about 0.2 ms per query.
_IDLE_CURSORS = 8


class _Handle:
    def __init__(self, con: duckdb.DuckDBPyConnection, version: str) -> None:
        self.con = con
        self.version = version
        self.users = 0
        self.retired = False
        self.idle_since = time.monotonic()
        self.idle: list[duckdb.DuckDBPyConnection] = []

    def close(self) -> None:
        """The cursors first: DuckDB keeps the file open while any cursor of it is."""
        for cursor in self.idle:
            cursor.close()
        self.idle.clear()
        self.con.close()


class _Use:
    """One query's cursor and the connection (file version) it belongs to."""

    __slots__ = ("cursor", "handle")

    def __init__(self, handle: _Handle, cursor: duckdb.DuckDBPyConnection) -> None:
        self.handle = handle
        self.cursor = cursor


class DuckDBWarehouse(BaseWarehouse[_Use]):
    name = "DuckDB"
    driver_errors = (duckdb.Error,)

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        idle_release_seconds: float = 2.0,
        memory_limit: str | None = None,
    ) -> None:
        super().__init__(ENGINE)
        self.path = Path(path)
        self.threads = threads
        # The profile output's `settings: memory_limit` (dbt-duckdb's spelling): bounded
        # memory for big queries and exports; DuckDB spills to disk past it.
        self.memory_limit = memory_limit
        # The file is let go after this long without a query, so a `dbt build` run on it
        # directly while the server is idle gets DuckDB's write lock (and the server opens the
        # rebuilt file on its next query).
        self.idle_release_seconds = idle_release_seconds
        self._handle: _Handle | None = None
        self._use = 'USE "{}"'.format(self.path.stem.replace('"', '""'))
        self._reaper: threading.Thread | None = None
        self._closed = threading.Event()

    # The file: one connection per version of it ----------------------------------------------

    def _open_file(self) -> duckdb.DuckDBPyConnection:
        if not self.path.exists():
            raise WarehouseUnavailable(
                f"DuckDB file {self.path} does not exist: build it with `tally build` (dbt build "
                "and parse, then the file is swapped in)."
            )
        config: dict[str, Any] = {"threads": self.threads} if self.threads else {}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        # An in-memory database that ATTACHes the file, rather than duckdb.connect(path):
        # DuckDB caches database instances by path within a process, so connect(path) after a
        # swap would hand back the old file. The alias is the file's stem, the catalog name dbt
        # and MetricFlow's SQL use ("warehouse"."analytics_marts"...).
        alias = self.path.stem.replace('"', '""')
        target = str(self.path).replace("'", "''")
        try:
            con = duckdb.connect(":memory:", config=config)
            con.execute(f"ATTACH '{target}' AS \"{alias}\" (READ_ONLY)")
            con.execute(f'USE "{alias}"')
            return con
        except duckdb.IOException as e:
            raise WarehouseUnavailable(
                f"DuckDB file {self.path} is locked by a writer (is dbt running on it?). "
                f"Rebuild with `tally build`, which builds beside the served file and swaps it "
                f"in without stopping the server: {e}"
            ) from e
        except duckdb.Error as e:
            raise WarehouseUnavailable(f"Cannot open DuckDB file {self.path}: {e}") from e

    def _acquire(self) -> _Handle:
        version = self.data_version()
        with self._lock:
            handle = self._handle
            if handle is None or handle.version != version:
                new = _Handle(self._open_file(), version)
                if handle is not None:
                    handle.retired = True
                    if handle.users == 0:
                        handle.close()
                self._handle = handle = new
            handle.users += 1
            return handle

    def _release(self, handle: _Handle) -> None:
        with self._lock:
            handle.users -= 1
            if handle.users == 0:
                if handle.retired:
                    handle.close()
                    return
                handle.idle_since = time.monotonic()
                if self._reaper is None and self.idle_release_seconds > 0:
                    self._reaper = threading.Thread(
                        target=self._reap, name="tally-duckdb-idle", daemon=True
                    )
                    self._reaper.start()

    def _reap(self) -> None:
        """One thread per warehouse: closes the connection once it has been idle long enough.
        Stopped before the interpreter exits (a daemon thread killed inside DuckDB aborts the
        process)."""
        _LIVE.add(self)
        while not self._closed.wait(self.idle_release_seconds / 2):
            with self._lock:
                handle = self._handle
                if (
                    handle is not None
                    and handle.users == 0
                    and time.monotonic() - handle.idle_since >= self.idle_release_seconds
                ):
                    handle.close()
                    self._handle = None

    # Queries: a cursor each, kept for the next ones --------------------------------------------

    def _open(self) -> _Use:
        """An idle cursor of the current file's connection, else a new one."""
        handle = self._acquire()
        try:
            with self._lock:
                cursor = handle.idle.pop() if handle.idle else None
            if cursor is None:
                cursor = handle.con.cursor()
                # A cursor starts in the in-memory catalog: without this, SQL naming relations
                # without a database (a manifest written by hand or another tool) finds nothing.
                cursor.execute(self._use)
        except BaseException:
            self._release(handle)
            raise
        return _Use(handle, cursor)

    def _run(self, conn: _Use, sql: str, timeout_seconds: float | None) -> pa.Table:
        return conn.cursor.sql(sql).to_arrow_table()

    def _cancel(self, conn: _Use) -> None:
        conn.cursor.interrupt()

    def _close(self, conn: _Use, reusable: bool) -> None:
        """The cursor back to the handle's idle ones, or closed; then the handle released."""
        handle, cursor = conn.handle, conn.cursor
        try:
            with self._lock:
                keep = (
                    reusable
                    and not self._stopping.is_set()
                    and not handle.retired
                    and len(handle.idle) < _IDLE_CURSORS
                )
                if keep:
                    handle.idle.append(cursor)
            if not keep:
                cursor.close()
        finally:
            self._release(handle)

    def stream(self, sql: str, batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The rows of one read-only query as record batches of at most `batch_rows`, fetched
        as they are consumed (exports of any size in bounded memory); an empty result is one
        batch of no rows, so its columns are known. The connection is held until the iterator
        is exhausted or closed."""
        conn = self._begin()
        try:
            try:
                # A relation's reader hands DuckDB's result over chunk by chunk (measured: an
                # execute()'d connection's reader held 3x the memory).
                reader = conn.cursor.sql(sql).to_arrow_reader(batch_rows)
                empty = True
                for batch in reader:
                    empty = False
                    yield batch
                if empty:
                    yield pa.RecordBatch.from_pylist([], schema=reader.schema)
            except duckdb.Error as e:
                raise self._error(e) from e
        finally:
            # Never pooled: a reader closed half-way may leave its result pending on the cursor.
            self._end(conn, reusable=False)

    def data_version(self) -> str:
        """Changes when the file is replaced or rewritten: inode, size, mtime."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "missing"
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"

    def close(self) -> None:
        self._closed.set()
        reaper = self._reaper
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(timeout=5)
        with self._lock:
            if self._handle is not None:
                self._handle.retired = True
                if self._handle.users == 0:
                    self._handle.close()
                self._handle = None


_LIVE: weakref.WeakSet[DuckDBWarehouse] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for warehouse in list(_LIVE):
        warehouse.close()


def data_file(output: Mapping[str, Any], project_dir: Path) -> Path | None:
    """The file a dbt-duckdb output writes. dbt resolves a relative path from the folder it
    runs in: the project folder. In-memory and MotherDuck databases have no local file."""
    raw = str(output.get("path", ":memory:"))
    if raw.startswith((":memory:", "md:", "motherduck:")):
        return None
    path = Path(raw).expanduser()
    return path if path.is_absolute() else project_dir / path


def _local_file(output: Mapping[str, Any], project_dir: Path, why: str) -> Path:
    path = data_file(output, project_dir)
    if path is None:
        raise ConfigurationError(
            f"DuckDB path {output.get('path')!r} is not a local file: {why}."
        )
    return path


def connect(output: Mapping[str, Any], project_dir: Path) -> DuckDBWarehouse:
    path = _local_file(output, project_dir, "tally serves a DuckDB file that dbt built (set "
                       "`path:` in the profile's output)")
    settings = output.get("settings") or {}
    return DuckDBWarehouse(path, memory_limit=settings.get("memory_limit"))


def rollup_writer(output: Mapping[str, Any], project_dir: Path) -> RollupWriter:
    """The output's file, opened read-write for building rollups (tally.rollups.build)."""
    from tally.warehouse.duckdb_writer import DuckDBWriter

    return DuckDBWriter(_local_file(output, project_dir,
                                    "rollups are built in the DuckDB file tally serves"))


def demo_target(output: Mapping[str, Any], project_dir: Path) -> DemoTarget:
    """The demo's raw data is generated straight into the output's file."""
    path = _local_file(output, project_dir, "the demo data is generated into a local file")
    return DemoTarget(where=str(path), file=path)


ENGINE = EngineSpec(
    adapter_type="duckdb",
    dialect="duckdb",
    metricflow_engine="DUCKDB",
    metricflow_renderer="metricflow.sql.render.duckdb_renderer:DuckDbSqlPlanRenderer",
    connect=connect,
    reserved_words=STANDARD_RESERVED,
    data_errors=_DATA_ERRORS,
    data_file=data_file,
    rollup_writer=rollup_writer,
    rollup_dialect=RollupDialect(
        "duckdb", row_hash="hash({})", double="DOUBLE", trunc_keeps_date=True,
        create_or_replace=True,
    ),
    semantic_layer_engine="DUCKDB",
    demo_target=demo_target,
)
