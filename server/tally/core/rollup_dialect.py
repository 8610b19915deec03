"""The few SQL spellings that differ between the engines rollups are built on, as a value an
engine module declares in its spec (`EngineSpec.rollup_dialect`). Everything else tally writes
for rollups is SQL every such engine accepts, or is MetricFlow's own SQL for the engine.

An engine whose spec declares none has no rollups: `tally rollups build` says so, naming the
engine, and routing never finds a registry to read."""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot


@dataclass(frozen=True)
class RollupDialect:
    name: str  # sqlglot's
    #: A row hash over quoted column names, an integer that bit_xor aggregates.
    row_hash: str
    #: The type of a ratio's operands (MetricFlow's: CAST(x AS <double>)).
    double: str
    #: Whether DATE_TRUNC of a date column yields a date (DuckDB) or a timestamp (PostgreSQL:
    #: timestamptz): a coarser period read from a rollup must have the type MetricFlow's own
    #: SQL gives it, so routed and unrouted results have one schema.
    trunc_keeps_date: bool
    #: CREATE OR REPLACE TABLE ... AS; else a new table is built and swapped in by renaming.
    create_or_replace: bool

    def transpile(self, sql: str) -> str:
        """DDL written for DuckDB (the registry's), in this dialect."""
        if self.name == "duckdb":
            return sql
        return sqlglot.transpile(sql, read="duckdb", write=self.name)[0]

    def hash_of(self, columns: list[str]) -> str:
        if not columns:
            return "0"
        return self.row_hash.format(", ".join(f'"{c}"' for c in columns))

    def period(self, grain: str, column: str) -> str:
        """A column's value truncated to a coarser grain (grain: one of routing's grains)."""
        truncated = f"DATE_TRUNC('{grain}', {column})"
        return f"CAST({truncated} AS DATE)" if self.trunc_keeps_date else truncated
