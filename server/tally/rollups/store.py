"""Where rollups live: tables in the schema `tally_rollups` of the served warehouse, and one
registry table saying, per rollup, which table holds it, for which definition (version) and
for which data (source).

The source is the data build a rollup was made from: dbt's run_results.json (next to the
semantic manifest) is rewritten by every `dbt build`/`dbt run`, and its invocation id names
that build. Writing rollups changes the warehouse file (and so the served data version) but
not run_results.json, so a rollup stays valid exactly until the next data build, after which
it is stale until rebuilt: a rollup built before new data arrived is never read after.

`tally_rollups.json` in dbt's target folder (written by the build, swapped in with it) says
that rollups were built for this target: without it the service never reads the registry, so
a project without rollups costs nothing.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from tally.core.engine import Warehouse
from tally.errors import TallyError
from tally.rollups.definitions import REGISTRY, SCHEMA


@dataclass(frozen=True)
class BuiltRollup:
    name: str
    version: str
    relation: str
    source: str
    row_count: int
    partitions: dict[str, str]  # partition start -> fingerprint of its source rows


MARKER = "tally_rollups.json"
REGISTRY_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {REGISTRY} (rollup VARCHAR, version VARCHAR, relation VARCHAR, "
    "source VARCHAR, built_at TIMESTAMP, row_count BIGINT, build_seconds DOUBLE, "
    "partitions VARCHAR)",
)


def source_version(target_dir: Path) -> str:
    """The data build the served data comes from: run_results.json's invocation id (and the
    time it was written); 'none' when there is no such file."""
    path = target_dir / "run_results.json"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "none"
    stamp = (str(path), st.st_mtime_ns, st.st_size)
    with _LOCK:
        cached = _SOURCES.get(stamp[0])
        if cached is not None and cached[0] == stamp:
            return cached[1]
    try:
        meta = json.loads(path.read_text()).get("metadata") or {}
        value = f"{meta.get('invocation_id', '')}@{meta.get('generated_at', '')}"
    except (OSError, ValueError):
        value = f"unreadable-{st.st_mtime_ns}-{st.st_size}"
    with _LOCK:
        _SOURCES[stamp[0]] = (stamp, value)
    return value


_LOCK = threading.Lock()
_SOURCES: dict[str, tuple[tuple[str, int, int], str]] = {}


class BuiltRollups:
    """The registry as the service reads it: once per data version and build of the rollups.
    (Building rollups in a DuckDB file changes the file, and so the data version; in place on
    PostgreSQL it changes nothing the data version sees, but rewrites the marker.)"""

    def __init__(self, target_dir: Path) -> None:
        self._marker = target_dir / MARKER
        self._lock = threading.Lock()
        self._cached: tuple[str, dict[str, BuiltRollup]] | None = None

    def version(self, data_version: str) -> str:
        """The data version and the marker's stamp (one stat)."""
        try:
            st = os.stat(self._marker)
        except FileNotFoundError:
            return f"{data_version}|none"
        return f"{data_version}|{st.st_mtime_ns}-{st.st_size}"

    def read(self, warehouse: Warehouse, data_version: str) -> dict[str, BuiltRollup]:
        version = self.version(data_version)
        with self._lock:
            if self._cached is not None and self._cached[0] == version:
                return self._cached[1]
        if not self._marker.exists():
            return {}
        try:
            table = warehouse.execute(
                f"SELECT rollup, version, relation, source, row_count, partitions FROM {REGISTRY}"
            )
            rows = table.to_pylist()
        except TallyError:  # no registry: nothing built on this warehouse
            rows = []
        built = {
            r["rollup"]: BuiltRollup(
                r["rollup"], r["version"], r["relation"], r["source"], int(r["row_count"] or 0),
                json.loads(r["partitions"] or "{}"),
            )
            for r in rows
        }
        with self._lock:
            self._cached = (version, built)
        return built
