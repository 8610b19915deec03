"""Any warehouse dbt can reach, through the dbt adapter the user already has installed.

The profile output is turned into the adapter's own credentials (its aliases, defaults and
validation), and queries run on a connection its own connection manager opened: so a
Snowflake, BigQuery, Databricks/Spark, Trino or Redshift user points tally at the profile dbt
already uses, with nothing to configure twice. Rows come back through the driver's DB-API
cursor and are converted to Arrow here; engines with an Arrow-native driver (DuckDB, and
PostgreSQL over ADBC) have faster paths of their own (tally.warehouse.registry says which).

Connections are pooled (opening one is a login on most cloud warehouses). A query that runs
past its timeout is cancelled through the driver when it can cancel (`connection.cancel()`),
and reported as a timeout either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from tally.core.engine import EngineSpec
from tally.core.reserved import STANDARD_RESERVED
from tally.errors import (
    ConfigurationError,
    QueryDataError,
    QueryTimeout,
    WarehouseError,
    WarehouseUnavailable,
)
from tally.warehouse.deadlines import WATCHDOG

_R = "metricflow.sql.render"
# dbt adapter type -> (sqlglot dialect, MetricFlow SqlEngine, MetricFlow plan renderer).
# Spark has no renderer of its own in MetricFlow: its Databricks renderer writes Spark SQL
# (Databricks SQL is Spark SQL plus extensions MetricFlow does not use).
DIALECTS: dict[str, tuple[str, str, str]] = {
    "postgres": ("postgres", "POSTGRES", f"{_R}.postgres:PostgresSQLSqlPlanRenderer"),
    "redshift": ("redshift", "REDSHIFT", f"{_R}.redshift:RedshiftSqlPlanRenderer"),
    "snowflake": ("snowflake", "SNOWFLAKE", f"{_R}.snowflake:SnowflakeSqlPlanRenderer"),
    "bigquery": ("bigquery", "BIGQUERY", f"{_R}.big_query:BigQuerySqlPlanRenderer"),
    "databricks": ("databricks", "DATABRICKS", f"{_R}.databricks:DatabricksSqlPlanRenderer"),
    "spark": ("spark", "DATABRICKS", f"{_R}.databricks:DatabricksSqlPlanRenderer"),
    "trino": ("trino", "TRINO", f"{_R}.trino:TrinoSqlPlanRenderer"),
    "athena": ("athena", "ATHENA", f"{_R}.athena:AthenaSqlPlanRenderer"),
}
_POOL_SIZE = 8


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


class DbtAdapterWarehouse:
    def __init__(self, spec: EngineSpec, output: Mapping[str, Any]) -> None:
        self.engine = spec
        self.dialect = spec.dialect
        self.adapter_type = spec.adapter_type
        self._plugin = plugin(self.adapter_type)
        self._credentials = credentials(self.adapter_type, output)
        self._identity = hashlib.sha256(
            repr(sorted((k, str(v)) for k, v in output.items() if "pass" not in k)).encode()
        ).hexdigest()[:12]
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._running: set[Any] = set()
        self._stopping = threading.Event()

    # Connections --------------------------------------------------------------------------

    def _open(self) -> Any:
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
                f"{_first_line(e)}"
            ) from e
        handle = opened.handle
        if not hasattr(handle, "cursor"):
            raise ConfigurationError(
                f"The {self.adapter_type} dbt adapter's connection has no DB-API cursor; "
                "tally cannot execute through it."
            )
        if hasattr(handle, "autocommit"):
            # Read-only queries: no transaction left open between them (where settable).
            with contextlib.suppress(Exception):
                handle.autocommit = True
        return handle

    def _take(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._open()

    def _give_back(self, handle: Any, healthy: bool) -> None:
        with self._lock:
            if healthy and not self._stopping.is_set() and len(self._idle) < _POOL_SIZE:
                self._idle.append(handle)
                return
        _close(handle)

    # Queries ------------------------------------------------------------------------------

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        if self._stopping.is_set():
            raise WarehouseUnavailable("The server is shutting down.")
        handle = self._take()
        with self._lock:
            self._running.add(handle)
        limit = timeout_seconds if hasattr(handle, "cancel") else None
        healthy = timed_out = False
        try:
            with WATCHDOG.limit(limit, lambda: handle.cancel()) as fired:
                try:
                    cursor = handle.cursor()
                    try:
                        cursor.execute(sql)
                        names = [d[0] for d in cursor.description]
                        rows = cursor.fetchall()
                    finally:
                        _close(cursor)
                    healthy = True
                except Exception as e:
                    raise self._driver_error(e, handle, fired.is_set(), timeout_seconds) from e
            # After the block a cancel is either due (`fired`: it may still be on its way)
            # or will never come: only a connection no cancel can reach goes back to the pool.
            timed_out = fired.is_set()
        finally:
            with self._lock:
                self._running.discard(handle)
            self._give_back(handle, healthy and not timed_out)
        return to_arrow(names, rows)

    def _driver_error(
        self, e: Exception, handle: Any, timed_out: bool, timeout: float | None
    ) -> Exception:
        if self._stopping.is_set():
            return WarehouseUnavailable("The server is shutting down.")
        if timed_out:
            return QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped.")
        if _is(e, handle, "DataError") or _data_state(e):
            return QueryDataError(f"{self.adapter_type} refused a value: {_first_line(e)}")
        if _is(e, handle, "OperationalError") and "connect" in str(e).lower():
            return WarehouseUnavailable(f"{self.adapter_type} is unavailable: {_first_line(e)}")
        return WarehouseError(f"{self.adapter_type} failed to run the query: {_first_line(e)}")

    def ping(self) -> None:
        self.execute("select 1")

    def interrupt(self) -> None:
        self._stopping.set()
        with self._lock:
            running = list(self._running)
        for handle in running:
            if hasattr(handle, "cancel"):
                with contextlib.suppress(Exception):  # best effort while shutting down
                    handle.cancel()

    def data_version(self) -> str:
        # No cheap change signal across warehouses: dbt's run_results.json (and, with several
        # replicas, the shared generation) say when the data changed.
        return f"{self.adapter_type}-{self._identity}"

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for handle in idle:
            _close(handle)


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


def _is(e: BaseException, handle: Any, name: str) -> bool:
    """PEP 249 puts a driver's exception classes on its connections (optional extension) and
    in its module; either will do."""
    for owner in (handle, importlib.import_module(type(handle).__module__.split(".")[0])):
        cls = getattr(owner, name, None)
        if isinstance(cls, type) and isinstance(e, cls):
            return True
    return False


def _data_state(e: BaseException) -> bool:
    """An SQLSTATE (drivers that expose one: psycopg2's pgcode, Snowflake's and others'
    sqlstate) of a value the warehouse refused: class 22 (data exception), or an operator or
    type that does not fit the value compared (42883, 42804)."""
    state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None) or ""
    return isinstance(state, str) and (state.startswith("22") or state in ("42883", "42804"))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _close(thing: Any) -> None:
    with contextlib.suppress(Exception):  # already closed or broken
        thing.close()


def engine(adapter_type: str, *, path: str = "dbt-adapter") -> EngineSpec:
    """The spec of `adapter_type` executed through its dbt adapter."""
    if adapter_type not in DIALECTS:
        raise ConfigurationError(
            f"tally does not know the SQL dialect of dbt adapter type {adapter_type!r} (known: "
            f"{', '.join(sorted(DIALECTS))})."
        )
    dialect, mf_engine, renderer = DIALECTS[adapter_type]

    def connect(output: Mapping[str, Any], project_dir: Path) -> DbtAdapterWarehouse:
        return DbtAdapterWarehouse(spec, output)

    spec = EngineSpec(
        adapter_type=adapter_type,
        dialect=dialect,
        metricflow_engine=mf_engine,
        metricflow_renderer=renderer,
        connect=connect,
        reserved_words=STANDARD_RESERVED,
        execution_path=path,
    )
    return spec
