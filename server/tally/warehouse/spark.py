"""Apache Spark, through dbt-spark (a distributed engine: the SparkSession's executors run on
the cluster its `spark.master` names).

With dbt-spark's `session` method, queries run on that SparkSession and come back as Arrow
(`DataFrame.toArrow()`, no row-by-row conversion; dbt-spark itself is not needed to serve);
a timeout cancels the query's Spark jobs (a job group per query). Other methods (thrift,
http, odbc) take the generic dbt-adapter path, through dbt-spark.

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

import re
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from tally.core.engine import DemoTarget, EngineSpec
from tally.core.reserved import STANDARD_RESERVED
from tally.errors import ConfigurationError, WarehouseUnavailable
from tally.warehouse.base import BaseWarehouse, Failure, fingerprint
from tally.warehouse.dbt_adapter import DIALECTS, DbtAdapterWarehouse, naive_utc, to_arrow

# Spark error classes that mean a value in the query does not fit (ANSI casts, overflow).
_DATA_ERRORS = ("CAST_INVALID_INPUT", "DATETIME", "ARITHMETIC_OVERFLOW", "INVALID_FORMAT",
                "DATATYPE_MISMATCH")  # fmt: skip


class SparkWarehouse(BaseWarehouse[str]):
    """Queries on the process's SparkSession, one job group each (what a cancel names)."""

    name = "Spark"

    def __init__(self, spec: EngineSpec, output: Mapping[str, Any]) -> None:
        if str(output.get("method", "")) != "session":
            raise ConfigurationError(
                "SparkWarehouse runs dbt-spark's `session` method; other methods take the "
                "dbt-adapter path (tally.warehouse.spark.connect chooses)."
            )
        super().__init__(spec)
        self._parameters = dict(output.get("server_side_parameters") or {})
        self._identity = fingerprint(output)
        self._session: Any = None
        self._session_lock = threading.Lock()

    def _spark(self) -> Any:
        if self._session is None:
            with self._session_lock:
                if self._session is None:
                    try:
                        self._session = session(self._parameters)
                    except Exception as e:
                        raise WarehouseUnavailable(f"Cannot start a Spark session: {e}") from e
        return self._session

    def _open(self) -> str:
        spark = self._spark()
        group = f"tally-{uuid.uuid4().hex}"
        # Pinned threads (PySpark's default): the group applies to this thread's jobs, and
        # _run runs on this thread.
        spark.sparkContext.setJobGroup(group, "tally query", interruptOnCancel=True)
        return group

    def _run(self, conn: str, sql: str, timeout_seconds: float | None) -> pa.Table:
        table = self._session.sql(float_division(sql)).toArrow()
        # Arrow's own types are kept (decimals stay exact); Spark's timestamps are zoned (UTC).
        return naive_utc(table) if table.num_columns else to_arrow([], [])

    def _cancel(self, conn: str) -> None:
        self._session.sparkContext.cancelJobGroup(conn)

    def _close(self, conn: str, reusable: bool) -> None:
        pass  # a job group is only a name

    def _classify(self, e: BaseException) -> Failure | None:
        text = str(e)
        return Failure.DATA if any(code in text for code in _DATA_ERRORS) else None

    def data_version(self) -> str:
        # No cheap change signal: dbt's run_results.json says when the data changed.
        return f"spark-{self._identity}"

    # close(): the base's. The SparkSession belongs to the process (one per JVM); it stops
    # when the process exits.


def session(parameters: Mapping[str, Any]) -> Any:
    """The process's SparkSession (created with these settings, or the running one)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in parameters.items():
        builder = builder.config(key, str(value))
    return builder.getOrCreate()


_DERBY_PATH = re.compile(r"(databaseName=)([^;]+)")


def session_paths(output: Mapping[str, Any], project_dir: Path) -> dict[str, Any]:
    """A dbt-spark output with a relative Spark warehouse folder and Derby metastore made
    absolute from the project folder, where dbt runs and reads them: tally (and `tally
    generate`) may run from anywhere and must open the same tables."""

    def absolute(path: str) -> str:
        return path if Path(path).is_absolute() else str((project_dir / path).resolve())

    params = dict(output.get("server_side_parameters") or {})
    if "spark.sql.warehouse.dir" in params:
        params["spark.sql.warehouse.dir"] = absolute(str(params["spark.sql.warehouse.dir"]))
    key = "spark.hadoop.javax.jdo.option.ConnectionURL"
    if key in params:
        params[key] = _DERBY_PATH.sub(lambda m: m[1] + absolute(m[2]), str(params[key]))
    return {**output, "server_side_parameters": params}


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


def connect(
    output: Mapping[str, Any], project_dir: Path
) -> SparkWarehouse | DbtAdapterWarehouse:
    if str(output.get("method", "")) != "session":
        return DbtAdapterWarehouse(ENGINE, output)  # thrift, http, odbc: through dbt-spark
    return SparkWarehouse(ENGINE, session_paths(output, project_dir))


def demo_target(output: Mapping[str, Any], project_dir: Path) -> DemoTarget:
    """The demo's raw data, generated in DuckDB, written as Parquet tables of database raw in
    the output's SparkSession."""
    from tally.warehouse.spark_demo import load_raw_into_spark

    resolved = session_paths(output, project_dir)
    return DemoTarget(
        where="Spark database raw",
        load=lambda file, say: load_raw_into_spark(file, resolved, session, progress=say),
    )


_DIALECT = DIALECTS["spark"]
ENGINE = EngineSpec(
    adapter_type="spark",
    dialect=_DIALECT.sql,
    metricflow_engine=_DIALECT.metricflow_engine,
    metricflow_renderer=_DIALECT.metricflow_renderer,
    connect=connect,
    reserved_words=STANDARD_RESERVED,
    execution_path="dbt-adapter (session: Arrow)",
    semantic_layer_engine=_DIALECT.semantic_layer_engine,
    demo_target=demo_target,
)
