"""Apache Spark, through dbt-spark (a distributed engine: the SparkSession's executors run on
the cluster its `spark.master` names).

With dbt-spark's `session` method, queries run on that SparkSession and come back as Arrow
(`DataFrame.toArrow()`, no row-by-row conversion); a timeout cancels the query's Spark jobs
(a job group per query). Other methods (thrift, http, odbc) take the generic dbt-adapter path.

MetricFlow has no Spark renderer; its Databricks renderer writes the SQL. Where Databricks SQL
and Spark SQL differ for what MetricFlow writes, it is handled here:
* DATE_TRUNC returns a timestamp on Spark (a date on Databricks for a date argument): the
  service's type normalisation turns midnight timestamps of time columns back into dates;
* Spark 4 runs in ANSI mode: a filter comparing a date with text that is not a date fails with
  a cast error, which is the caller's mistake (QueryDataError), as on the other engines;
* a decimal divided by a decimal is a decimal on Spark, whose scale drops to 6 digits when the
  operands are wide (sums are decimal(38, s)): a derived ratio such as `gross_margin /
  nullif(item_revenue, 0)` would be rounded to 0.000001; AVG of a decimal is a decimal of 4
  more digits of scale. DuckDB (and MetricFlow's own ratio metrics) divide and average as
  doubles, so every division and average is made a double one before the query runs;
* reserved words MetricFlow writes bare (an entity named `order`) are quoted with backticks
  (tally.core.reserved quotes the dialect's way).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from tally.core.engine import EngineSpec
from tally.core.reserved import STANDARD_RESERVED
from tally.errors import QueryDataError, QueryTimeout, WarehouseError, WarehouseUnavailable
from tally.project import spark_session_paths
from tally.warehouse.dbt_adapter import DIALECTS, DbtAdapterWarehouse, naive_utc, to_arrow
from tally.warehouse.deadlines import WATCHDOG

# Spark error classes that mean a value in the query does not fit (ANSI casts, overflow).
_DATA_ERRORS = ("CAST_INVALID_INPUT", "DATETIME", "ARITHMETIC_OVERFLOW", "INVALID_FORMAT",
                "DATATYPE_MISMATCH")  # fmt: skip


class SparkWarehouse(DbtAdapterWarehouse):
    def __init__(self, spec: EngineSpec, output: Mapping[str, Any]) -> None:
        super().__init__(spec, output)
        self._session_method = str(output.get("method", "")) == "session"
        self._parameters = dict(output.get("server_side_parameters") or {})
        self._groups: set[str] = set()
        self._session: Any = None
        self._session_lock = threading.Lock()

    def _spark(self) -> Any:
        if self._session is None:
            with self._session_lock:
                if self._session is None:
                    from pyspark.sql import SparkSession

                    builder = SparkSession.builder.enableHiveSupport()
                    for key, value in self._parameters.items():
                        builder = builder.config(key, str(value))
                    try:
                        self._session = builder.getOrCreate()
                    except Exception as e:
                        raise WarehouseUnavailable(f"Cannot start a Spark session: {e}") from e
        return self._session

    def execute(self, sql: str, timeout_seconds: float | None = None) -> pa.Table:
        if not self._session_method:
            return super().execute(sql, timeout_seconds)
        if self._stopping.is_set():
            raise WarehouseUnavailable("The server is shutting down.")
        spark = self._spark()
        group = f"tally-{uuid.uuid4().hex}"
        with self._lock:
            self._groups.add(group)
        try:
            # Pinned threads (PySpark's default): the group applies to this thread's jobs.
            spark.sparkContext.setJobGroup(group, "tally query", interruptOnCancel=True)
            cancel = lambda: spark.sparkContext.cancelJobGroup(group)  # noqa: E731
            with WATCHDOG.limit(timeout_seconds, cancel) as timed_out:
                try:
                    table = spark.sql(float_division(sql)).toArrow()
                except Exception as e:
                    raise self._error(e, timed_out, timeout_seconds) from e
        finally:
            with self._lock:
                self._groups.discard(group)
        # Arrow's own types are kept (decimals stay exact); Spark's timestamps are zoned (UTC).
        return naive_utc(table) if table.num_columns else to_arrow([], [])

    def _error(self, e: Exception, timed_out: threading.Event, timeout: float | None):
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        if self._stopping.is_set():
            return WarehouseUnavailable("The server is shutting down.")
        if timed_out.is_set():
            return QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped.")
        if any(code in text for code in _DATA_ERRORS):
            return QueryDataError(f"Spark refused a value: {first}")
        return WarehouseError(f"Spark failed to run the query: {first}")

    def ping(self) -> None:
        self.execute("select 1")

    def interrupt(self) -> None:
        super().interrupt()
        if self._session is not None:
            with self._lock:
                groups = list(self._groups)
            for group in groups:
                self._session.sparkContext.cancelJobGroup(group)

    def close(self) -> None:
        super().close()
        # The SparkSession belongs to the process (one per JVM); it stops when it exits.


def float_division(sql: str) -> str:
    """The query with every `a / b` as `cast(a as double) / b` and `avg(x)` as
    `avg(cast(x as double))` (see the module's docstring)."""
    if "/" not in sql.replace("/*", "").replace("*/", "") and "avg(" not in sql.lower():
        return sql
    import sqlglot
    from sqlglot import exp

    def to_double(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Avg) and not (
            isinstance(node.this, exp.Cast) and node.this.to.is_type("double")
        ):
            node.set("this", exp.cast(node.this, "double"))
        elif isinstance(node, exp.Div):
            numerator = node.this
            is_double = isinstance(numerator, exp.Cast) and numerator.to.is_type("double")
            if not is_double:
                node.set("this", exp.cast(numerator, "double"))
        return node

    try:
        tree = sqlglot.parse_one(sql, read="spark")
    except sqlglot.errors.ParseError:
        return sql  # run as written: Spark's own error is clearer than ours
    return tree.transform(to_double).sql(dialect="spark")


def connect(output: Mapping[str, Any], project_dir: Path) -> SparkWarehouse:
    return SparkWarehouse(ENGINE, spark_session_paths(output, project_dir))


_dialect, _mf_engine, _renderer = DIALECTS["spark"]
ENGINE = EngineSpec(
    adapter_type="spark",
    dialect=_dialect,
    metricflow_engine=_mf_engine,
    metricflow_renderer=_renderer,
    connect=connect,
    reserved_words=STANDARD_RESERVED,
    execution_path="dbt-adapter (session: Arrow)",
)
