"""Materialising rollups: each one's SQL (MetricFlow's, for its stored metrics at its group-by)
into a table of schema `tally_rollups`, and its row in the registry, in one transaction.

A rollup whose registry row already has its current version and source is left alone. A
rollup over metric_time is refreshed per partition (a month, or the rollup's own grain if
coarser): each partition's source fingerprint (its rows, its sums; see partitions.py) is kept
in the registry, and after a data build only the partitions whose fingerprint changed are
recomputed and replaced; a new definition rebuilds everything.

Writes go through the engine's `RollupWriter` (tally.core.engine), never the served, read-only
Warehouse. On DuckDB that is a file opened read-write: the side copy `tally build` swaps in,
or the served file itself for `tally rollups build` (the server must then be idle, like `dbt
run` on it). On PostgreSQL, which dbt builds in place, it is the served database: a rebuilt
table is built under another name and renamed over the old one, and a refresh deletes and
inserts a partition's rows, each with its registry row in one transaction, so a concurrent
reader sees the old rollup or the new one, never half of one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tally.core.compiler import Compiler
from tally.core.engine import EngineSpec, RollupWriter
from tally.core.rollup_dialect import RollupDialect
from tally.errors import CallerError, ServerFault, WarehouseError
from tally.rollups.definitions import REGISTRY, SCHEMA, Rollup, partition_column, rollups_of
from tally.rollups.partitions import changed_partitions, fingerprints, partition_grain
from tally.rollups.store import MARKER, REGISTRY_DDL, source_version


class RollupBuildFailed(ServerFault):
    code = "rollup_build_failed"


class RollupsUnsupported(CallerError):
    code = "rollups_unsupported"


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


def supports_rollups(engine: EngineSpec) -> bool:
    return engine.rollup_writer is not None and engine.rollup_dialect is not None


def open_writer(engine: EngineSpec, output: Mapping[str, Any], project_dir: Path) -> RollupWriter:
    """The engine's writing connection for rollups, from a rendered profile output (for
    DuckDB, the output's `path` is the file written)."""
    if not supports_rollups(engine):
        raise RollupsUnsupported(
            f"Rollups are not supported on {engine.adapter_type} (they are built on DuckDB and "
            "PostgreSQL); queries there run on the source tables."
        )
    assert engine.rollup_writer is not None
    return engine.rollup_writer(output, project_dir)


def build_rollups(
    compiler: Compiler,
    writer: RollupWriter,
    target_dir: Path,
    *,
    only: tuple[str, ...] = (),
    full: bool = False,
    progress: Callable[[str], None] = lambda _m: None,
) -> list[BuildReport]:
    """Build (or refresh) the project's rollups through `writer`, for the data build that
    dbt's `target_dir` describes. The writer stays the caller's to close."""
    source = source_version(target_dir)
    rollups = declared = rollups_of(compiler)
    if only:
        unknown = sorted(set(only) - {r.name for r in rollups})
        if unknown:
            raise CallerError(
                f"No rollup named {', '.join(unknown)}: rollups are saved queries with "
                f"`config: cache: enabled: true` ({', '.join(r.name for r in rollups) or 'none'})."
            )
        rollups = tuple(r for r in rollups if r.name in only)
    dialect = compiler.engine.rollup_dialect
    if dialect is None or writer.dialect != compiler.dialect:
        raise RollupsUnsupported(
            f"Rollups are not supported on {compiler.engine.adapter_type} (they are built on "
            "DuckDB and PostgreSQL)."
        )
    reports = []
    try:
        for ddl in REGISTRY_DDL:
            writer.execute(dialect.transpile(ddl))
        _drop_superseded(writer, declared)
        for i, rollup in enumerate(rollups, 1):
            progress(f"[{i}/{len(rollups)}] {rollup.name} ...")
            report = _build_one(writer, dialect, rollup, source, full, compiler.loaded.manifest)
            progress(f"[{i}/{len(rollups)}] {report.line()}")
            reports.append(report)
    except WarehouseError as e:
        raise RollupBuildFailed(f"Building rollups failed: {e.message}") from e
    (target_dir / MARKER).write_text(json.dumps(
        {"source": source, "rollups": [vars(r) for r in reports]}, indent=1))
    return reports


def _build_one(
    writer: RollupWriter,
    dialect: RollupDialect,
    rollup: Rollup,
    source: str,
    full: bool,
    manifest: Any,
) -> BuildReport:
    t0 = time.perf_counter()
    rows = writer.fetchall(
        f"SELECT version, source, relation, row_count, partitions FROM {REGISTRY} WHERE rollup = ?",
        [rollup.name],
    )
    row = rows[0] if rows else None
    grain = partition_grain(rollup, manifest)
    prints = fingerprints(writer, dialect, rollup, grain, manifest) if grain else {}
    exists = row is not None and _table_exists(writer, _table_name(rollup.relation))
    if row is not None and row[0] == rollup.version and exists and not full:
        old_prints = json.loads(row[4] or "{}")
        if row[1] == source and old_prints == prints:
            return BuildReport(rollup.name, "up to date", rows=int(row[3] or 0))
        if grain and old_prints:
            changed = changed_partitions(old_prints, prints)
            with writer.transaction():
                if changed:
                    _replace_partitions(writer, rollup, grain, changed)
                report = _register(writer, rollup, source, prints, t0, "refreshed")
            report.partitions = changed
            return report
    with writer.transaction():
        _replace_table(writer, dialect, rollup)
        report = _register(writer, rollup, source, prints, t0, "built")
    return report


def _replace_partitions(
    writer: RollupWriter, rollup: Rollup, grain: str, changed: list[str]
) -> None:
    item = partition_column(rollup)
    assert item is not None
    column = '"' + item.name.replace('"', '""') + '"'
    # Partition keys are ISO dates this module computed (partitions.py), never a caller's text.
    keys = ", ".join(f"DATE '{p}'" for p in changed)
    writer.execute(
        f"DELETE FROM {rollup.relation} WHERE "
        f"CAST(DATE_TRUNC('{grain}', {column}) AS DATE) IN ({keys})"
    )
    writer.execute(
        f"INSERT INTO {rollup.relation} SELECT * FROM ({rollup.build_sql}) AS src "
        f"WHERE CAST(DATE_TRUNC('{grain}', src.{column}) AS DATE) IN ({keys})"
    )


def _replace_table(writer: RollupWriter, dialect: RollupDialect, rollup: Rollup) -> None:
    if dialect.create_or_replace:
        writer.execute(f"CREATE OR REPLACE TABLE {rollup.relation} AS {rollup.build_sql}")
        return
    # Built beside the old table, then renamed over it: readers wait only for the rename.
    name = _table_name(rollup.relation)
    new = f"{name}__new"
    writer.execute(f'DROP TABLE IF EXISTS {SCHEMA}."{new}"')
    writer.execute(f'CREATE TABLE {SCHEMA}."{new}" AS {rollup.build_sql}')
    writer.execute(f"DROP TABLE IF EXISTS {rollup.relation}")
    writer.execute(f'ALTER TABLE {SCHEMA}."{new}" RENAME TO "{name}"')


def _register(
    writer: RollupWriter,
    rollup: Rollup,
    source: str,
    prints: dict[str, str],
    t0: float,
    action: str,
) -> BuildReport:
    rows = int(writer.fetchall(f"SELECT count(*) FROM {rollup.relation}")[0][0])
    seconds = time.perf_counter() - t0
    writer.execute(f"DELETE FROM {REGISTRY} WHERE rollup = ?", [rollup.name])
    writer.execute(
        f"INSERT INTO {REGISTRY} VALUES (?, ?, ?, ?, now(), ?, ?, ?)",
        [rollup.name, rollup.version, rollup.relation, source, rows, seconds, json.dumps(prints)],
    )
    return BuildReport(rollup.name, action, rows=rows, seconds=seconds,
                       bytes=writer.relation_bytes(rollup.relation))  # fmt: skip


def _table_name(relation: str) -> str:
    return relation.split(".", 1)[1].strip('"')


def _table_exists(writer: RollupWriter, name: str) -> bool:
    found = writer.fetchall(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [SCHEMA, name],
    )
    return bool(found[0][0])


def _drop_superseded(writer: RollupWriter, declared: tuple[Rollup, ...]) -> None:
    """Before a build: drop the tables no registry row points to (superseded by an earlier
    build, or left by one that failed) and the rollups no longer declared. A table superseded
    by this build lives until the next: a server that read the registry just before this build
    wrote it may still be reading the old table (PostgreSQL builds in place)."""
    names = {r.name for r in declared}
    for rollup, relation in writer.fetchall(f"SELECT rollup, relation FROM {REGISTRY}"):
        if rollup not in names:
            with writer.transaction():
                writer.execute(f"DELETE FROM {REGISTRY} WHERE rollup = ?", [rollup])
                writer.execute(f"DROP TABLE IF EXISTS {relation}")
    current = {relation for (relation,) in writer.fetchall(f"SELECT relation FROM {REGISTRY}")}
    tables = writer.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name <> 'registry'",
        [SCHEMA],
    )
    for (name,) in tables:
        relation = f'{SCHEMA}."{name}"'
        if relation not in current:
            writer.execute(f"DROP TABLE IF EXISTS {relation}")
