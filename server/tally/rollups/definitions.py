"""Rollups as the project declares them: a saved query with `config: cache: enabled: true` (dbt's
declarative-caching spelling) is a rollup of its metrics at its group-by and grain.

dbt keeps a saved query's `config` only in manifest.json (next to the semantic manifest), so
that is where `cache.enabled` is read. A rollup's version is a hash of the SQL that builds it
(MetricFlow's SQL for its stored metrics at its group-by): any change to a definition it reads
(a measure's expression, a model's table, a filter) makes a new version, and an old table is
never read for it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from tally.core.compiler import Compiler
from tally.core.group_bys import GroupByItem
from tally.core.request import QueryRequest
from tally.core.resolve import check_request
from tally.rollups.parts import MetricParts

SCHEMA = "tally_rollups"
REGISTRY = f"{SCHEMA}.registry"


@dataclass(frozen=True)
class Rollup:
    name: str  # the saved query's
    metrics: tuple[str, ...]  # the saved query's metrics
    stored: tuple[str, ...]  # metric columns stored: the metrics and their combinable parts
    group_by: tuple[GroupByItem, ...]  # checked, in the saved query's order
    where: tuple[str, ...]  # the saved query's filters, as MetricFlow reads them
    build_sql: str
    version: str

    @property
    def relation(self) -> str:
        return f'{SCHEMA}."{table_name(self.name, self.version)}"'

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.group_by)


# PostgreSQL cuts identifiers past 63 bytes, and a build adds "__new" to a table it swaps in.
MAX_TABLE_NAME = 63 - len("__new")


def table_name(name: str, version: str) -> str:
    """The rollup's table: `<saved query>__<version>`; a name too long for every engine is cut
    and made unique again by a hash of the whole name."""
    table = f"{name}__{version}"
    if len(table.encode()) <= MAX_TABLE_NAME:
        return table
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = MAX_TABLE_NAME - len(version.encode()) - len("__") - len(digest) - len("_")
    return f"{name.encode()[:keep].decode(errors='ignore')}_{digest}__{version}"


def cache_enabled_saved_queries(manifest_path: Path) -> tuple[str, ...]:
    """Names of the saved queries with `config: cache: enabled: true` in dbt's manifest.json."""
    try:
        data = json.loads((manifest_path.parent / "manifest.json").read_text())
    except (OSError, ValueError):
        return ()
    names = []
    for node in (data.get("saved_queries") or {}).values():
        cache = ((node.get("config") or {}).get("cache")) or {}
        if cache.get("enabled") is True:
            names.append(node["name"])
    return tuple(sorted(names))


_DEFS: dict[tuple[int, str], tuple[Rollup, ...]] = {}


def rollups_of(compiler: Compiler) -> tuple[Rollup, ...]:
    """The project's rollups, per manifest version (memoised per compiler)."""
    key = (id(compiler), compiler.loaded.version)
    found = _DEFS.get(key)
    if found is None:
        found = _build_defs(compiler)
        if len(_DEFS) > 16:
            _DEFS.clear()
        _DEFS[key] = found
    return found


def parts_of(compiler: Compiler) -> MetricParts:
    key = (id(compiler), compiler.loaded.version)
    found = _PARTS.get(key)
    if found is None:
        dialect = compiler.engine.rollup_dialect
        found = MetricParts(compiler.loaded.manifest, dialect.double if dialect else "DOUBLE")
        if len(_PARTS) > 16:
            _PARTS.clear()
        _PARTS[key] = found
    return found


_PARTS: dict[tuple[int, str], MetricParts] = {}


def _build_defs(compiler: Compiler) -> tuple[Rollup, ...]:
    parts = parts_of(compiler)
    out = []
    for name in cache_enabled_saved_queries(compiler.loaded.path):
        saved = compiler.saved_queries.get(name)
        if saved is None:
            continue
        stored: list[str] = []
        for metric in saved.metrics:
            for part in parts.stored_parts(compiler.metric(metric).name):
                if part not in stored:
                    stored.append(part)
        request = QueryRequest(metrics=tuple(stored), group_by=saved.group_by, where=saved.where)
        checked = check_request(compiler, request)
        sql = compiler.compile(checked.request).sql
        version = hashlib.sha256(
            json.dumps([sql, stored, list(saved.group_by)]).encode()
        ).hexdigest()[:12]
        out.append(
            Rollup(
                name=name,
                metrics=saved.metrics,
                stored=tuple(stored),
                group_by=checked.group_by,
                where=checked.request.where,
                build_sql=sql,
                version=version,
            )
        )
    return tuple(out)


def partition_column(rollup: Rollup) -> GroupByItem | None:
    """The rollup's metric_time column, the one it is partitioned by (None: not over time)."""
    for item in rollup.group_by:
        if item.kind == "time_dimension" and item.element == "metric_time" and item.grain:
            return item
    return None


def safe_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())
