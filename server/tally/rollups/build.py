"""Materialising rollups: each one's SQL (MetricFlow's, for its stored metrics at its group-by)
into a table of schema `tally_rollups`, and its row in the registry, in one transaction.

A rollup whose registry row already has its current version and source is left alone. A
rollup over metric_time is refreshed per partition (a month, or the rollup's own grain if
coarser): each partition's source fingerprint (its rows, its sums; see partitions.py) is kept
in the registry, and after a data build only the partitions whose fingerprint changed are
recomputed and replaced; a new definition rebuilds everything.

Writes go to a DuckDB file opened read-write (the file `tally build` builds beside the served
one, or the served file itself for `tally rollups build`, which then needs the server idle,
like `dbt run` on it). Other warehouses: not yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from tally.core.compiler import Compiler
from tally.errors import CallerError, ServerFault
from tally.rollups.definitions import REGISTRY, SCHEMA, Rollup, rollups_of
from tally.rollups.partitions import changed_partitions, fingerprints, partition_grain
from tally.rollups.store import MARKER, REGISTRY_DDL, source_version


class RollupBuildFailed(ServerFault):
    code = "rollup_build_failed"


@dataclass
class BuildReport:
    rollup: str
    action: str  # built | refreshed | up to date
    rows: int = 0
    seconds: float = 0.0
    bytes: int = 0
    partitions: list[str] = field(default_factory=list)  # the partitions recomputed

    def line(self) -> str:
        what = f"{self.rows:,} rows, {self.bytes / 1e6:.1f} MB, {self.seconds:.2f}s"
        if self.action == "refreshed":
            return (f"{self.rollup}: refreshed {len(self.partitions)} partition(s) "
                    f"({', '.join(self.partitions[:6])}{'...' if len(self.partitions) > 6 else ''})"
                    f"; {what}")
        if self.action == "up to date":
            return f"{self.rollup}: up to date ({self.rows:,} rows)"
        return f"{self.rollup}: built, {what}"


def build_rollups(
    compiler: Compiler,
    duckdb_path: Path,
    target_dir: Path,
    *,
    only: tuple[str, ...] = (),
    full: bool = False,
    progress: Callable[[str], None] = lambda _m: None,
) -> list[BuildReport]:
    """Build (or refresh) the project's rollups in the DuckDB file at `duckdb_path`, for the
    data build that dbt's `target_dir` describes."""
    source = source_version(target_dir)
    rollups = rollups_of(compiler)
    if only:
        unknown = sorted(set(only) - {r.name for r in rollups})
        if unknown:
            raise CallerError(
                f"No rollup named {', '.join(unknown)}: rollups are saved queries with "
                f"`config: cache: enabled: true` ({', '.join(r.name for r in rollups) or 'none'})."
            )
        rollups = tuple(r for r in rollups if r.name in only)
    if compiler.engine.adapter_type != "duckdb":
        raise RollupBuildFailed(
            f"Building rollups on {compiler.engine.adapter_type} is not supported yet "
            "(DuckDB only)."
        )
    reports = []
    con = duckdb.connect(str(duckdb_path))
    try:
        con.execute("SET enable_progress_bar = false")
        for ddl in REGISTRY_DDL:
            con.execute(ddl)
        for i, rollup in enumerate(rollups, 1):
            progress(f"[{i}/{len(rollups)}] {rollup.name} ...")
            report = _build_one(con, rollup, source, full, compiler.loaded.manifest)
            progress(f"[{i}/{len(rollups)}] {report.line()}")
            reports.append(report)
        _drop_orphans(con, rollups)
        (target_dir / MARKER).write_text(json.dumps(
            {"source": source, "rollups": [vars(r) for r in reports]}, indent=1))
    except duckdb.Error as e:
        raise RollupBuildFailed(f"Building rollups failed: {e}") from e
    finally:
        con.close()
    return reports


def _build_one(
    con: duckdb.DuckDBPyConnection, rollup: Rollup, source: str, full: bool, manifest: Any
) -> BuildReport:
    t0 = time.perf_counter()
    row = con.execute(
        f"SELECT version, source, relation, row_count, partitions FROM {REGISTRY} WHERE rollup = ?",
        [rollup.name],
    ).fetchone()
    grain = partition_grain(rollup, manifest)
    prints = fingerprints(con, rollup, grain, manifest) if grain else {}
    exists = row is not None and _table_exists(con, rollup)
    if row is not None and row[0] == rollup.version and exists and not full:
        old_prints = json.loads(row[4] or "{}")
        if row[1] == source and old_prints == prints:
            return BuildReport(rollup.name, "up to date", rows=int(row[3] or 0))
        if grain and old_prints:
            changed = changed_partitions(old_prints, prints)
            con.execute("BEGIN TRANSACTION")
            if changed:
                column = f'"{_partition_item(rollup)}"'
                keys = ", ".join(f"DATE '{p}'" for p in changed)
                con.execute(
                    f"DELETE FROM {rollup.relation} WHERE "
                    f"CAST(DATE_TRUNC('{grain}', {column}) AS DATE) IN ({keys})"
                )
                con.execute(
                    f"INSERT INTO {rollup.relation} SELECT * FROM ({rollup.build_sql}) AS src "
                    f"WHERE CAST(DATE_TRUNC('{grain}', src.{column}) AS DATE) IN ({keys})"
                )
            report = _register(con, rollup, source, prints, t0, "refreshed")
            report.partitions = changed
            con.execute("COMMIT")
            return report
    con.execute("BEGIN TRANSACTION")
    con.execute(f"CREATE OR REPLACE TABLE {rollup.relation} AS {rollup.build_sql}")
    report = _register(con, rollup, source, prints, t0, "built")
    con.execute("COMMIT")
    return report


def _register(
    con: duckdb.DuckDBPyConnection,
    rollup: Rollup,
    source: str,
    prints: dict[str, str],
    t0: float,
    action: str,
) -> BuildReport:
    rows = con.execute(f"SELECT count(*) FROM {rollup.relation}").fetchone()[0]
    seconds = time.perf_counter() - t0
    con.execute(f"DELETE FROM {REGISTRY} WHERE rollup = ?", [rollup.name])
    con.execute(
        f"INSERT INTO {REGISTRY} VALUES (?, ?, ?, ?, now(), ?, ?, ?)",
        [rollup.name, rollup.version, rollup.relation, source, rows, seconds, json.dumps(prints)],
    )
    return BuildReport(rollup.name, action, rows=rows, seconds=seconds, bytes=_bytes(con, rollup))


def _bytes(con: duckdb.DuckDBPyConnection, rollup: Rollup) -> int:
    # DuckDB has no per-table size; the rows' in-memory Arrow size is a fair upper bound.
    try:
        return int(con.sql(f"SELECT * FROM {rollup.relation}").to_arrow_table().nbytes)
    except duckdb.Error:
        return 0


def _partition_item(rollup: Rollup) -> str:
    from tally.rollups.definitions import partition_column

    item = partition_column(rollup)
    assert item is not None
    return item.name


def _table_exists(con: duckdb.DuckDBPyConnection, rollup: Rollup) -> bool:
    name = rollup.relation.split(".", 1)[1].strip('"')
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [SCHEMA, name],
    ).fetchone()[0]
    return bool(found)


def _drop_orphans(con: duckdb.DuckDBPyConnection, rollups: tuple[Rollup, ...]) -> None:
    """Tables of older versions (or of rollups no longer declared) are dropped."""
    keep = {r.relation.split(".", 1)[1].strip('"') for r in rollups}
    tables = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name <> 'registry'",
        [SCHEMA],
    ).fetchall()
    for (name,) in tables:
        if name not in keep and "__" in name:
            rollup = name.rsplit("__", 1)[0]
            # Rollups not rebuilt in this run (`only`) keep their current table.
            current = con.execute(
                f"SELECT relation FROM {REGISTRY} WHERE rollup = ?", [rollup]
            ).fetchone()
            if current is not None and current[0].endswith(f'"{name}"'):
                continue
            con.execute(f'DROP TABLE IF EXISTS {SCHEMA}."{name}"')
            con.execute(f"DELETE FROM {REGISTRY} WHERE relation = ?", [f'{SCHEMA}."{name}"'])
