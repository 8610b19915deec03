"""The DuckDB file rollups are written to, opened read-write (tally.rollups.build).

`tally build` writes the side copy it is about to swap in, which no reader has open; `tally
rollups build` writes the served file itself, which DuckDB locks: a running server must be idle
(like `dbt run` on it), and the lock error says so."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from tally.errors import WarehouseError, WarehouseUnavailable


class DuckDBWriter:
    dialect = "duckdb"

    def __init__(self, path: Path) -> None:
        try:
            # connect(path), not ATTACH: the catalog is then named after the file's stem, the
            # name MetricFlow's SQL uses ("warehouse"."analytics_marts"...).
            self._con = duckdb.connect(str(path))
        except duckdb.IOException as e:
            raise WarehouseUnavailable(
                f"Cannot write rollups to {path}: the file is in use ({e}). Stop the server, or "
                "build with `tally build`, which builds rollups in the copy it swaps in."
            ) from e
        except duckdb.Error as e:
            raise WarehouseUnavailable(f"Cannot open DuckDB file {path}: {e}") from e
        self._con.execute("SET enable_progress_bar = false")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._run(sql, params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._run("BEGIN TRANSACTION", ())
        try:
            yield
        except BaseException:
            self._con.rollback()
            raise
        self._run("COMMIT", ())

    def relation_bytes(self, relation: str) -> int:
        # DuckDB has no per-table size; the rows' in-memory Arrow size is a fair upper bound.
        try:
            return int(self._con.sql(f"SELECT * FROM {relation}").to_arrow_table().nbytes)
        except duckdb.Error:
            return 0

    def close(self) -> None:
        self._con.close()

    def _run(self, sql: str, params: Sequence[Any]) -> duckdb.DuckDBPyConnection:
        try:
            return self._con.execute(sql, list(params) or None)
        except duckdb.Error as e:
            raise WarehouseError(f"DuckDB: {str(e).strip().splitlines()[0]}") from e
