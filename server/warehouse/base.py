"""The warehouse interface: SQL in, Arrow out. One module per engine implements it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Warehouse(Protocol):
    #: MetricFlow / sqlglot dialect of the SQL this warehouse runs ("duckdb", "postgres").
    dialect: str

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        """Run one read-only query and return its rows. Raises WarehouseError, QueryTimeout
        or WarehouseUnavailable (server.core.errors)."""
        ...

    def ping(self) -> None:
        """Raise WarehouseUnavailable unless the warehouse answers a trivial query."""
        ...

    def data_version(self) -> str:
        """A token that changes whenever the data may have changed (a rebuild)."""
        ...

    def interrupt(self) -> None:
        """Stop every query running now (the server is shutting down); each raises
        WarehouseUnavailable."""
        ...

    def close(self) -> None: ...
