"""Copy the generated raw tables from a DuckDB file into PostgreSQL (schema ``raw``), so the dbt
project and tally can run on a second warehouse over the very same data (`tally generate
--target postgres`: the PostgreSQL engine's `demo_target`).

Each table goes through one CSV file and PostgreSQL's COPY: DuckDB writes NULL as an empty
field and an empty string as "", which COPY's CSV format reads back the same way (the raw
data has both: missing and empty e-mails are different imperfections).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from tally.errors import WarehouseUnavailable

# DuckDB column types of the generator -> PostgreSQL types.
_TYPES = {
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "VARCHAR": "text",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "BOOLEAN": "boolean",
    "DOUBLE": "double precision",
}


def _pg_type(duckdb_type: str) -> str:
    if duckdb_type.startswith("DECIMAL"):
        return duckdb_type.replace("DECIMAL", "numeric")
    if duckdb_type not in _TYPES:
        raise ValueError(f"no PostgreSQL type for DuckDB type {duckdb_type}")
    return _TYPES[duckdb_type]


def raw_tables(source: duckdb.DuckDBPyConnection, schema: str = "raw") -> list[str]:
    """The tables of a schema of a DuckDB file, in the order they were created (the
    generator's: customers, products, orders, order_items)."""
    rows = source.execute(
        "select table_name from duckdb_tables() where schema_name = ? order by table_oid",
        [schema],
    ).fetchall()
    return [name for (name,) in rows]


def copy_raw_to_postgres(
    duckdb_path: str | os.PathLike,
    conn: dict[str, Any],
    schema: str = "raw",
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Replace `schema` in the PostgreSQL database of `conn` with the raw tables of the DuckDB
    file, in one transaction; return row counts per table."""
    import psycopg2
    from psycopg2 import sql

    say = progress or (lambda _msg: None)
    source = duckdb.connect(os.fspath(duckdb_path), read_only=True)
    try:
        target = psycopg2.connect(connect_timeout=5, **{k: v for k, v in conn.items() if v})
    except psycopg2.Error as e:
        source.close()
        raise WarehouseUnavailable(f"Cannot connect to PostgreSQL: {str(e).strip()}") from e
    counts: dict[str, int] = {}
    try:
        with target, target.cursor() as cur, tempfile.TemporaryDirectory() as tmp:
            cur.execute(
                sql.SQL("drop schema if exists {s} cascade; create schema {s}").format(
                    s=sql.Identifier(schema)
                )
            )
            for table in raw_tables(source):
                t0 = time.perf_counter()
                columns = source.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = 'raw' and table_name = ? order by ordinal_position",
                    [table],
                ).fetchall()
                cur.execute(
                    sql.SQL("create table {s}.{t} ({cols})").format(
                        s=sql.Identifier(schema),
                        t=sql.Identifier(table),
                        cols=sql.SQL(", ").join(
                            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_pg_type(kind)))
                            for name, kind in columns
                        ),
                    )
                )
                csv = Path(tmp) / f"{table}.csv"
                source.execute(f"copy raw.{table} to '{csv}' (format csv, header false)")
                with csv.open("rb") as f:
                    cur.copy_expert(
                        sql.SQL("copy {s}.{t} from stdin with (format csv)")
                        .format(s=sql.Identifier(schema), t=sql.Identifier(table))
                        .as_string(cur),
                        f,
                    )
                counts[table] = cur.rowcount
                # Fresh statistics, so the planner knows the sizes dbt's joins work on.
                cur.execute(
                    sql.SQL("analyze {s}.{t}").format(
                        s=sql.Identifier(schema), t=sql.Identifier(table)
                    )
                )
                say(f"{schema}.{table}: {counts[table]:,} rows copied in "
                    f"{time.perf_counter() - t0:.2f}s")
    finally:
        source.close()
        target.close()
    return counts
