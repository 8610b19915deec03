"""Raw data into Apache Spark (`tally generate --target spark`: the Spark engine's
`demo_target`): each raw table of a generated DuckDB file is written as Parquet and created as
a table of the `raw` database of the SparkSession a dbt-spark profile output describes (its
`server_side_parameters`: master, warehouse folder, metastore)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from tally.warehouse.postgres_demo import raw_tables


def load_raw_into_spark(
    duckdb_path: str | os.PathLike,
    output: Mapping[str, Any],
    session: Callable[[Mapping[str, Any]], Any],
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Replace raw.* in Spark with the DuckDB file's raw tables; row counts per table.
    `session`: the SparkSession for a profile's server-side parameters (warehouse/spark.py's,
    passed in so that this module and the engine's do not import each other)."""
    say = progress or (lambda _msg: None)
    spark = session(output.get("server_side_parameters") or {})
    source = duckdb.connect(os.fspath(duckdb_path), read_only=True)
    counts: dict[str, int] = {}
    try:
        spark.sql("create database if not exists raw")
        with tempfile.TemporaryDirectory() as tmp:
            for table in raw_tables(source):
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
