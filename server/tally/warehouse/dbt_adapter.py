"""Any warehouse dbt can reach, through the dbt adapter the user already has installed.

The profile output is turned into the adapter's own credentials (its aliases, defaults and
validation), and queries run on a connection its own connection manager opened: so a
Snowflake, BigQuery, Databricks/Spark, Trino or Redshift user points tally at the profile dbt
already uses, with nothing to configure twice. Rows come back through the driver's DB-API
cursor and are converted to Arrow here; engines with an Arrow-native driver (DuckDB, and
PostgreSQL over ADBC) have faster paths of their own (tally.warehouse.registry says which).

Connections are pooled (opening one is a login on most cloud warehouses). A query that runs
past its timeout is cancelled through the driver when it can cancel (`connection.cancel()`)
and reported as a timeout; a driver that cannot cancel runs it to its end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa

from tally.core.engine import EngineSpec
from tally.core.reserved import STANDARD_RESERVED
from tally.errors import ConfigurationError, WarehouseUnavailable
from tally.warehouse.base import BaseWarehouse, Failure, close_quietly, fingerprint, first_line


class Dialect(NamedTuple):
    #: sqlglot's dialect.
    sql: str
    #: MetricFlow's SqlEngine member and plan renderer.
    metricflow_engine: str
    metricflow_renderer: str
    #: The dbt Semantic Layer API's SqlEngine member (None: UNKNOWN, it has none).
    semantic_layer_engine: str | None


_R = "metricflow.sql.render"
# dbt adapter type -> its dialects. Spark has no renderer of its own in MetricFlow: its
# Databricks renderer writes Spark SQL (Databricks SQL is Spark SQL plus extensions MetricFlow
# does not use); the dbt Semantic Layer API names neither Spark nor Athena.
DIALECTS: dict[str, Dialect] = {
    "postgres": Dialect("postgres", "POSTGRES", f"{_R}.postgres:PostgresSQLSqlPlanRenderer",
                        "POSTGRES"),
    "redshift": Dialect("redshift", "REDSHIFT", f"{_R}.redshift:RedshiftSqlPlanRenderer",
                        "REDSHIFT"),
    "snowflake": Dialect("snowflake", "SNOWFLAKE", f"{_R}.snowflake:SnowflakeSqlPlanRenderer",
                         "SNOWFLAKE"),
    "bigquery": Dialect("bigquery", "BIGQUERY", f"{_R}.big_query:BigQuerySqlPlanRenderer",
                        "BIGQUERY"),
    "databricks": Dialect("databricks", "DATABRICKS",
                          f"{_R}.databricks:DatabricksSqlPlanRenderer", "DATABRICKS"),
    "spark": Dialect("spark", "DATABRICKS", f"{_R}.databricks:DatabricksSqlPlanRenderer", None),
    "trino": Dialect("trino", "TRINO", f"{_R}.trino:TrinoSqlPlanRenderer", "TRINO"),
    "athena": Dialect("athena", "ATHENA", f"{_R}.athena:AthenaSqlPlanRenderer", None),
}
# What an engine module declares about its SQL and its data rather than its driver: the
# engine's dbt-adapter path takes them from it (PostgreSQL's reads the rollups the other
# paths build, and `tally generate` loads it the same way).
_LENT = ("reserved_words", "rollup_dialect", "semantic_layer_engine", "demo_target")


def plugin(adapter_type: str) -> Any:
    """The installed dbt adapter plugin of a profile output's `type:`."""
    try:
        return importlib.import_module(f"dbt.adapters.{adapter_type}").Plugin
    except (ImportError, AttributeError):
        raise ConfigurationError(
            f"The dbt adapter for {adapter_type!r} is not installed: install it beside tally "
            f"(`pip install dbt-{adapter_type}`), as for dbt itself."
        ) from None


def credentials(adapter_type: str, output: Mapping[str, Any]) -> Any:
    """The adapter's credentials from a rendered profile output, as dbt builds them."""
    cls = plugin(adapter_type).credentials
    data = {k: v for k, v in output.items() if k not in ("type", "threads")}
    try:
        data = cls.translate_aliases(data)
        cls.validate(data)
        return cls.from_dict(data)
    except Exception as e:  # dbt's validation errors have no common base worth naming
        raise ConfigurationError(
            f"The profile output is not valid {adapter_type} credentials: {e}"
        ) from None


class DbtAdapterWarehouse(BaseWarehouse[Any]):
    """Queries on DB-API connections (`handle`s) the adapter's connection manager opened."""

    def __init__(self, spec: EngineSpec, output: Mapping[str, Any]) -> None:
        super().__init__(spec)
        self.adapter_type = self.name = spec.adapter_type
        self._plugin = plugin(self.adapter_type)
        self._credentials = credentials(self.adapter_type, output)
        self._identity = fingerprint(output)

    def _connect(self) -> Any:
        from dbt.adapters.contracts.connection import Connection, ConnectionState, Identifier

        connection = Connection(
            type=Identifier(self.adapter_type),
            name="tally",
            credentials=self._credentials,
            state=ConnectionState.INIT,
        )
        try:
            opened = self._plugin.adapter.ConnectionManager.open(connection)
        except Exception as e:
            raise WarehouseUnavailable(
                f"Cannot connect to {self.adapter_type} through its dbt adapter: "
                f"{first_line(e)}"
            ) from e
        handle = opened.handle
        if not hasattr(handle, "cursor"):
            raise ConfigurationError(
                f"The {self.adapter_type} dbt adapter's connection has no DB-API cursor; "
                "tally cannot execute through it."
            )
        if hasattr(handle, "autocommit"):
            # Read-only queries: no transaction left open between them (where settable).
            with contextlib.suppress(Exception):  # a driver that will not: its default
                handle.autocommit = True
        return handle

    def _open(self) -> Any:
        handle = self._pooled()
        return handle if handle is not None else self._connect()

    def _watched(self, conn: Any, timeout_seconds: float | None) -> float | None:
        return timeout_seconds if hasattr(conn, "cancel") else None

    def _run(self, conn: Any, sql: str, timeout_seconds: float | None) -> pa.Table:
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        finally:
            close_quietly(cursor)
        return to_arrow(names, rows)

    def _cancel(self, conn: Any) -> None:
        cancel = getattr(conn, "cancel", None)
        if cancel is not None:
            cancel()

    def _close(self, conn: Any, reusable: bool) -> None:
        if not (reusable and self._give_back(conn)):
            close_quietly(conn)

    def _classify(self, e: BaseException) -> Failure | None:
        if _is(e, "DataError") or _data_state(e):
            return Failure.DATA
        if _is(e, "OperationalError") and "connect" in str(e).lower():
            return Failure.UNAVAILABLE
        return None

    def data_version(self) -> str:
        # No cheap change signal across warehouses: dbt's run_results.json (and, with several
        # replicas, the shared generation) say when the data changed.
        return f"{self.adapter_type}-{self._identity}"


def to_arrow(names: list[str], rows: list[tuple]) -> pa.Table:
    """DB-API rows as Arrow, types inferred from the values (decimals stay decimals); zoned
    timestamps as naive UTC, the way DuckDB returns them."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    # By position: a result may repeat a column name (`select max(a), max(b)` on some engines).
    arrays = [pa.array(list(c)) for c in columns]
    return naive_utc(pa.Table.from_arrays(arrays, names=list(names)))


def naive_utc(table: pa.Table) -> pa.Table:
    """Zoned timestamps as naive UTC (sessions run at UTC), the way DuckDB returns them."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp(f.type.unit)))
    return table


def _is(e: BaseException, name: str) -> bool:
    """Whether `e` is one of PEP 249's exception classes (`DataError`, ...), by name: every
    DB-API driver names its own classes so, whichever module they are in."""
    return any(cls.__name__ == name for cls in type(e).__mro__)


def _data_state(e: BaseException) -> bool:
    """An SQLSTATE (drivers that expose one: psycopg2's pgcode, Snowflake's and others'
    sqlstate) of a value the warehouse refused: class 22 (data exception), or an operator or
    type that does not fit the value compared (42883, 42804)."""
    state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None) or ""
    return isinstance(state, str) and (state.startswith("22") or state in ("42883", "42804"))


def engine(
    adapter_type: str, *, path: str = "dbt-adapter", native: EngineSpec | None = None
) -> EngineSpec:
    """The spec of `adapter_type` executed through its dbt adapter; `native`: the spec of the
    engine module tally has for it, whose SQL and data facts it shares (_LENT)."""
    if adapter_type not in DIALECTS:
        raise ConfigurationError(
            f"tally does not know the SQL dialect of dbt adapter type {adapter_type!r} (known: "
            f"{', '.join(sorted(DIALECTS))})."
        )
    dialect = DIALECTS[adapter_type]

    def connect(output: Mapping[str, Any], project_dir: Path) -> DbtAdapterWarehouse:
        return DbtAdapterWarehouse(spec, output)

    spec = EngineSpec(
        adapter_type=adapter_type,
        dialect=dialect.sql,
        metricflow_engine=dialect.metricflow_engine,
        metricflow_renderer=dialect.metricflow_renderer,
        connect=connect,
        reserved_words=STANDARD_RESERVED,
        execution_path=path,
        semantic_layer_engine=dialect.semantic_layer_engine,
    )
    if native is not None:
        spec = dataclasses.replace(spec, **{name: getattr(native, name) for name in _LENT})
    return spec
