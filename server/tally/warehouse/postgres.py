"""PostgreSQL through psycopg2 (installed with dbt-postgres), rows converted to Arrow.

Each query gets its own connection with a statement timeout and a read-only transaction, so a
query can never change data even if something slipped through the checks above. The time
limit is PostgreSQL's own (statement_timeout), not the watchdog's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pyarrow as pa

from tally.core.engine import DemoTarget, EngineSpec, RollupWriter
from tally.core.reserved import STANDARD_RESERVED
from tally.core.rollup_dialect import RollupDialect
from tally.errors import WarehouseUnavailable
from tally.warehouse.base import BaseWarehouse, Failure, fingerprint
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


class PostgresWarehouse(BaseWarehouse[Any]):
    """A connection per query (see tally.warehouse.postgres_adbc for a pooled path)."""

    name = "PostgreSQL"
    driver_errors = (psycopg2.Error,)

    def __init__(self, **conn: Any) -> None:
        super().__init__(ENGINE)
        self.conn = {k: v for k, v in conn.items() if v not in (None, "")}

    def _open(self) -> Any:
        try:
            # UTC sessions: date_trunc over a date yields a timestamptz, read back at UTC
            # midnight and made naive below, so periods are the same dates as on DuckDB.
            con = psycopg2.connect(connect_timeout=5, options="-c TimeZone=UTC", **self.conn)
        except psycopg2.Error as e:
            raise WarehouseUnavailable(f"Cannot connect to PostgreSQL: {str(e).strip()}") from e
        con.set_session(readonly=True, autocommit=False)
        return con

    def _watched(self, conn: Any, timeout_seconds: float | None) -> float | None:
        return None  # statement_timeout, set in the query's transaction

    def _run(self, conn: Any, sql: str, timeout_seconds: float | None) -> pa.Table:
        with conn.cursor() as cur:
            if timeout_seconds:
                cur.execute("set local statement_timeout = %s", (int(timeout_seconds * 1000),))
            cur.execute(sql)
            description = cur.description
            rows = cur.fetchall()
        return declared_types(to_arrow([d.name for d in description], rows), description)

    def _cancel(self, conn: Any) -> None:
        conn.cancel()

    def _close(self, conn: Any, reusable: bool) -> None:
        with contextlib.suppress(psycopg2.Error):  # a broken connection has nothing to undo
            conn.rollback()
        conn.close()

    def _classify(self, e: BaseException) -> Failure | None:
        if isinstance(e, psycopg2.errors.QueryCanceled):  # statement_timeout, or interrupt()
            return Failure.CANCELLED
        return super()._classify(e)

    def data_version(self) -> str:
        # Postgres has no cheap "file changed" signal; dbt's run_results.json is used above.
        return fingerprint(self.conn)


_DATA_ERRORS = (
    psycopg2.errors.DataError,  # class 22: invalid_text_representation, ...
    psycopg2.errors.UndefinedFunction,  # operator does not exist: text > integer
    psycopg2.errors.DatatypeMismatch,
)

# hashtextextended: PostgreSQL's 64-bit text hash (11+), over the row's text form; bit_xor
# (bigint) is 14's (the rollup writer checks the server's version).
ROLLUP_DIALECT = RollupDialect(
    "postgres", row_hash="hashtextextended(ROW({})::text, 0)", double="DOUBLE PRECISION",
    trunc_keeps_date=False, create_or_replace=False,
)


def connection_settings(output: Mapping[str, Any]) -> dict[str, Any]:
    """The address and login of a dbt postgres output (dbt's aliases: pass, database)."""
    return {
        "host": output.get("host"),
        "port": output.get("port"),
        "user": output.get("user"),
        "password": output.get("password") or output.get("pass"),
        "dbname": output.get("dbname") or output.get("database"),
    }


def connect(output: Mapping[str, Any], project_dir: Path) -> PostgresWarehouse:
    return PostgresWarehouse(**connection_settings(output))


def rollup_writer(output: Mapping[str, Any], project_dir: Path) -> RollupWriter:
    """A connection that may write, for building rollups (tally.rollups.build)."""
    from tally.warehouse.postgres_writer import PostgresWriter

    return PostgresWriter(connect(output, project_dir).conn)


def demo_target(output: Mapping[str, Any], project_dir: Path) -> DemoTarget:
    """The demo's raw data, generated in DuckDB, copied into schema raw (COPY); the server
    must answer first."""
    from tally.warehouse.postgres_demo import copy_raw_to_postgres

    warehouse = connect(output, project_dir)
    warehouse.ping()  # before generating: fail fast
    conn = warehouse.conn
    return DemoTarget(
        where=f"PostgreSQL database {conn.get('dbname')!r}",
        load=lambda file, say: copy_raw_to_postgres(file, conn, progress=say),
    )


ENGINE = EngineSpec(
    adapter_type="postgres",
    dialect="postgres",
    metricflow_engine="POSTGRES",
    metricflow_renderer="metricflow.sql.render.postgres:PostgresSQLSqlPlanRenderer",
    connect=connect,
    reserved_words=STANDARD_RESERVED,
    data_errors=_DATA_ERRORS,
    rollup_writer=rollup_writer,
    rollup_dialect=ROLLUP_DIALECT,
    semantic_layer_engine="POSTGRES",
    demo_target=demo_target,
)
