"""DuckDB: one read-only connection per query, opened and closed around it.

DuckDB admits one writing process per file. Holding no connection between queries means
`make warehouse` (dbt) can rebuild the file while the server runs; the next query opens the
new file. Opening a read-only connection costs well under a millisecond to a few ms, which is
small next to compiling and executing a metric query, and results are cached above this layer.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import pyarrow as pa

from server.core.errors import QueryTimeout, WarehouseError, WarehouseUnavailable


class DuckDBWarehouse:
    dialect = "duckdb"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not self.path.exists():
            raise WarehouseUnavailable(
                f"DuckDB file {self.path} does not exist: run `make warehouse` first."
            )
        config = {"threads": self.threads} if self.threads else {}
        try:
            return duckdb.connect(str(self.path), read_only=True, config=config)
        except duckdb.IOException as e:
            # The file is locked by a writer (a dbt build in progress).
            raise WarehouseUnavailable(f"DuckDB file {self.path} is busy: {e}") from e
        except duckdb.Error as e:
            raise WarehouseUnavailable(f"Cannot open DuckDB file {self.path}: {e}") from e

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        con = self._connect()
        timer = None
        timed_out = threading.Event()
        if timeout_seconds:
            def interrupt() -> None:
                timed_out.set()
                con.interrupt()
            timer = threading.Timer(timeout_seconds, interrupt)
            timer.daemon = True
            timer.start()
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as e:
            if timed_out.is_set():
                raise QueryTimeout(
                    f"The query ran longer than {timeout_seconds:g} s and was stopped."
                ) from e
            raise WarehouseError(f"DuckDB failed to run the query: {_first_line(e)}") from e
        finally:
            if timer:
                timer.cancel()
            con.close()

    def ping(self) -> None:
        self.execute("select 1")

    def data_version(self) -> str:
        """Changes when the file is rewritten (dbt build, a swap): inode, size, mtime."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "missing"
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"

    def close(self) -> None:
        pass


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
