"""Raw data into Apache Spark: each raw table of a generated DuckDB file is written as Parquet
and created as a table of the `raw` database of the SparkSession a dbt-spark profile output
describes (its `server_side_parameters`: master, warehouse folder, metastore)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import duckdb

from tally.datagen.postgres_load import TABLES


def spark_session(output: dict[str, Any]) -> Any:
    """The SparkSession of a dbt-spark `method: session` output (created, or the running one)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in (output.get("server_side_parameters") or {}).items():
        builder = builder.config(key, str(value))
    return builder.getOrCreate()


def load_raw_into_spark(
    duckdb_path: str | os.PathLike,
    output: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Replace raw.* in Spark with the DuckDB file's raw tables; row counts per table."""
    say = progress or (lambda _msg: None)
    spark = spark_session(output)
    source = duckdb.connect(os.fspath(duckdb_path), read_only=True)
    counts: dict[str, int] = {}
    try:
        spark.sql("create database if not exists raw")
        with tempfile.TemporaryDirectory() as tmp:
            for table in TABLES:
                t0 = time.perf_counter()
                path = os.path.join(tmp, f"{table}.parquet")
                source.execute(f"copy raw.{table} to '{path}' (format parquet)")
                spark.sql(f"drop table if exists raw.{table}")
                spark.sql(
                    f"create table raw.{table} using parquet as select * from parquet.`{path}`"
                )
                counts[table] = spark.table(f"raw.{table}").count()
                say(f"raw.{table}: {counts[table]:,} rows into Spark "
                    f"({time.perf_counter() - t0:.1f}s)")  # fmt: skip
    finally:
        source.close()
    return counts
