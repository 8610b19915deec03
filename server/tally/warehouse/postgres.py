"""PostgreSQL through psycopg2 (installed with dbt-postgres), rows converted to Arrow.

Each query gets its own connection with a statement timeout and a read-only transaction, so a
query can never change data even if something slipped through the checks above.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from tally.core.engine import EngineSpec, RollupWriter
from tally.core.reserved import STANDARD_RESERVED
from tally.errors import (
    QueryDataError,
    QueryTimeout,
    WarehouseError,
    WarehouseUnavailable,
)
from tally.warehouse.dbt_adapter import to_arrow

# PostgreSQL type OIDs -> the Arrow type psycopg2's values of that type become (and the ADBC
# path gives), for a column with no value to infer it from: no rows, or nulls only. Without it
# such a column is Arrow's null type, and a caller (`tally validate`'s time-type check, a JSON
# encoder, a cached Arrow stream) sees a different type than when the same column has values.
_OID_TYPES = {
    16: pa.bool_(), 17: pa.binary(), 18: pa.string(), 19: pa.string(), 20: pa.int64(),
    21: pa.int64(), 23: pa.int64(), 25: pa.string(), 26: pa.int64(), 114: pa.string(),
    700: pa.float64(), 701: pa.float64(), 1042: pa.string(), 1043: pa.string(),
    1082: pa.date32(), 1083: pa.time64("us"), 1114: pa.timestamp("us"),
    1184: pa.timestamp("us"), 1186: pa.duration("us"), 2950: pa.string(), 3802: pa.string(),
}  # fmt: skip
_NUMERIC = 1700


def declared_types(table: pa.Table, description: Any) -> pa.Table:
    """Null-typed columns given the type PostgreSQL declared for them (cursor.description)."""
    for i, (field, column) in enumerate(zip(table.schema, description, strict=True)):
        if not pa.types.is_null(field.type):
            continue
        if column.type_code == _NUMERIC:  # numeric(p, s), or unconstrained: as ADBC sizes it
            declared = _decimal(column.precision, column.scale)
        else:
            declared = _OID_TYPES.get(column.type_code)
        if declared is not None:
            table = table.set_column(i, field.name, table.column(i).cast(declared))
    return table


def _decimal(precision: int | None, scale: int | None) -> pa.DataType:
    if precision is None or not 1 <= precision <= 76:  # unconstrained numeric
        return pa.decimal128(38, 0)
    make = pa.decimal128 if precision <= 38 else pa.decimal256
    return make(precision, scale or 0)


class PostgresWarehouse:
    dialect = "postgres"

    def __init__(self, **conn: Any) -> None:
        self.conn = {k: v for k, v in conn.items() if v not in (None, "")}
        self._lock = threading.Lock()
        self._running: set[Any] = set()
        self._stopping = threading.Event()

    def _connect(self) -> Any:
        import psycopg2

        try:
            # UTC sessions: date_trunc over a date yields a timestamptz, read back at UTC
            # midnight and made naive below, so periods are the same dates as on DuckDB.
            con = psycopg2.connect(connect_timeout=5, options="-c TimeZone=UTC", **self.conn)
        except psycopg2.Error as e:
            raise WarehouseUnavailable(f"Cannot connect to PostgreSQL: {str(e).strip()}") from e
        con.set_session(readonly=True, autocommit=False)
        return con

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        import psycopg2

        con = self._connect()
        with self._lock:
            self._running.add(con)
        try:
            with con.cursor() as cur:
                if timeout_seconds:
                    cur.execute("set local statement_timeout = %s", (int(timeout_seconds * 1000),))
                try:
                    cur.execute(sql)
                except psycopg2.errors.QueryCanceled as e:
                    if self._stopping.is_set():
                        raise WarehouseUnavailable("The server is shutting down.") from e
                    raise QueryTimeout(
                        f"The query ran longer than {timeout_seconds:g} s and was stopped."
                    ) from e
                except _data_errors() as e:
                    raise QueryDataError(
                        f"PostgreSQL refused a value: {str(e).strip().splitlines()[0]}"
                    ) from e
                except psycopg2.Error as e:
                    raise WarehouseError(
                        f"PostgreSQL failed to run the query: {str(e).strip().splitlines()[0]}"
                    ) from e
                description = cur.description
                rows = cur.fetchall()
            return declared_types(to_arrow([d.name for d in description], rows), description)
        finally:
            with self._lock:
                self._running.discard(con)
            con.rollback()
            con.close()

    def ping(self) -> None:
        self.execute("select 1")

    def interrupt(self) -> None:
        self._stopping.set()
        with self._lock:
            running = list(self._running)
        for con in running:
            con.cancel()

    def data_version(self) -> str:
        # Postgres has no cheap "file changed" signal; dbt's run_results.json is used above.
        return hashlib.sha256(repr(sorted(self.conn.items())).encode()).hexdigest()[:12]

    def close(self) -> None:
        pass


def _data_errors() -> tuple[type[BaseException], ...]:
    import psycopg2.errors

    return (
        psycopg2.errors.DataError,  # class 22: invalid_text_representation, ...
        psycopg2.errors.UndefinedFunction,  # operator does not exist: text > integer
        psycopg2.errors.DatatypeMismatch,
    )


def connect(output: Mapping[str, Any], project_dir: Path) -> PostgresWarehouse:
    """psycopg2 connection arguments of a dbt postgres output."""
    return PostgresWarehouse(
        host=output.get("host"),
        port=output.get("port"),
        user=output.get("user"),
        password=output.get("password") or output.get("pass"),
        dbname=output.get("dbname") or output.get("database"),
    )


def rollup_writer(output: Mapping[str, Any], project_dir: Path) -> RollupWriter:
    """A connection that may write, for building rollups (tally.rollups.build)."""
    from tally.warehouse.postgres_writer import PostgresWriter

    return PostgresWriter(connect(output, project_dir).conn)


ENGINE = EngineSpec(
    adapter_type="postgres",
    dialect="postgres",
    metricflow_engine="POSTGRES",
    metricflow_renderer="metricflow.sql.render.postgres:PostgresSQLSqlPlanRenderer",
    connect=connect,
    reserved_words=STANDARD_RESERVED,
    data_errors=_data_errors(),
    rollup_writer=rollup_writer,
)
