"""Which partitions of a rollup changed since it was built.

A partition is a month of metric_time (or the rollup's grain when coarser). Its fingerprint
is, for every table the rollup's SQL reads:
* a fact table (a semantic model with an aggregation time dimension): the row count and the
  XOR of the rows' hashes, over the rows whose time falls in the partition;
* any other table (dimensions: customers, products): the same over the whole table, so a
  changed customer segment changes every partition.

Why row fingerprints: dbt's run results only say that a model was rebuilt (every incremental
or full build rebuilds the model), source freshness only gives the newest timestamp, and row
counts miss updates (an order going from shipped to completed). A hash of every row, grouped
by partition, sees inserts, deletes and updates, and costs one scan of each table, with no
join and no aggregation of measures: a fraction of the rollup's own SQL.

Only rollups whose metrics do not look across time (no cumulative, conversion or offset
metric) are refreshed per partition: a cumulative value in December depends on January's rows.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlglot
from sqlglot import exp

from tally.core.engine import RollupWriter
from tally.core.rollup_dialect import RollupDialect
from tally.rollups.definitions import Rollup, partition_column

_ORDER = ("day", "week", "month", "quarter", "year")
_LOOKS_ACROSS_TIME = ("cumulative", "conversion")


def partition_grain(rollup: Rollup, manifest: Any) -> str | None:
    """The partition grain of a rollup (None: rebuilt whole)."""
    item = partition_column(rollup)
    if item is None or item.grain not in _ORDER or item.grain == "week":
        return None
    metrics = {m.name: m for m in manifest.metrics}
    for name in rollup.stored:
        m = metrics.get(name)
        if m is None:
            continue
        if m.type.value.lower() in _LOOKS_ACROSS_TIME:
            return None
        if any(i.offset_window or i.offset_to_grain for i in m.type_params.metrics or ()):
            return None
    return item.grain if _ORDER.index(item.grain) > _ORDER.index("month") else "month"


def fingerprints(
    writer: RollupWriter, dialect: RollupDialect, rollup: Rollup, grain: str, manifest: Any
) -> dict[str, str]:
    """Partition start (ISO date) -> fingerprint of its source rows. Only the columns the
    rollup's SQL reads are hashed: audit columns (a load timestamp, dbt's invocation id) change
    on every build without changing any number."""
    facts, others = _tables(rollup, dialect.name, _fact_tables(manifest, rollup))
    read = _columns_read(rollup, dialect.name)
    shared = hashlib.sha256()
    for table in sorted(others):
        hashed = dialect.hash_of(_hashed_columns(writer, table, read))
        ((count, digest),) = writer.fetchall(
            f"SELECT count(*), coalesce(bit_xor({hashed}), 0) FROM {table}"
        )
        shared.update(f"{table}:{count}:{digest};".encode())
    per: dict[str, Any] = {}
    for table, column in sorted(facts.items()):
        hashed = dialect.hash_of(_hashed_columns(writer, table, read))
        # `column` is the semantic model's own time expression (the project's SQL, as
        # MetricFlow reads it too); `grain` one of _ORDER.
        rows = writer.fetchall(
            f"SELECT CAST(DATE_TRUNC('{grain}', CAST({column} AS DATE)) AS DATE) AS p, count(*), "
            f"coalesce(bit_xor({hashed}), 0) FROM {table} GROUP BY 1"
        )
        for p, count, digest in rows:
            per.setdefault(str(p), hashlib.sha256()).update(f"{table}:{count}:{digest};".encode())
    base = shared.hexdigest()
    return {k: hashlib.sha256((h.hexdigest() + base).encode()).hexdigest()[:16]
            for k, h in sorted(per.items())}


def _columns_read(rollup: Rollup, dialect: str) -> set[str]:
    tree = sqlglot.parse_one(rollup.build_sql, read=dialect)
    return {c.name.lower() for c in tree.find_all(exp.Column)}


def _hashed_columns(writer: RollupWriter, table: str, read: set[str]) -> list[str]:
    """The table's columns that the rollup's SQL reads, in the table's order. `table` is
    [catalog.]schema.name as the SQL names it (PostgreSQL's SQL: schema.name)."""
    *catalog, schema, name = (p.strip('"') for p in table.split("."))
    where = "table_schema = ? AND table_name = ?"
    params = [schema, name]
    if catalog:
        where += " AND table_catalog = ?"
        params.append(catalog[0])
    rows = writer.fetchall(
        f"SELECT column_name FROM information_schema.columns WHERE {where} "
        "ORDER BY ordinal_position", params,
    )
    return [r[0] for r in rows if r[0].lower() in read]


def changed_partitions(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _fact_tables(manifest: Any, rollup: Rollup) -> dict[str, str]:
    """The tables whose measures the rollup aggregates (schema.alias) -> the column of their
    aggregation time (metric_time). Tables only joined for dimensions are not among them: a
    changed customer segment changes orders of every month."""
    metrics = {m.name: m for m in manifest.metrics}
    measures = {
        i.name for name in rollup.stored if name in metrics
        for i in metrics[name].type_params.input_measures or ()
    }
    out: dict[str, str] = {}
    for model in manifest.semantic_models:
        own = [m for m in model.measures if m.name in measures]
        if not own:
            continue
        agg = own[0].agg_time_dimension or (
            model.defaults.agg_time_dimension if model.defaults else None)
        if agg is None:
            continue
        column = agg
        for d in model.dimensions:
            if d.name == agg and d.expr:
                column = d.expr
        rel = model.node_relation
        out[f"{rel.schema_name}.{rel.alias}".lower()] = column
    return out


def _tables(
    rollup: Rollup, dialect: str, fact_tables: dict[str, str]
) -> tuple[dict[str, str], set[str]]:
    facts: dict[str, str] = {}
    others: set[str] = set()
    for table in sqlglot.parse_one(rollup.build_sql, read=dialect).find_all(exp.Table):
        if not table.name or not table.db:  # a CTE, not a table
            continue
        key = f"{table.db}.{table.name}".lower()
        name = _qualified(table)
        if key in fact_tables:
            facts[name] = fact_tables[key]
        else:
            others.add(name)
    return facts, others


def _qualified(table: exp.Table) -> str:
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    return ".".join(f'"{p}"' for p in parts)
