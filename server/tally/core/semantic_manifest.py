"""Loading the semantic manifest dbt writes (target/semantic_manifest.json).

MetricFlow's Python API is not a stable public API; this module and compiler.py are the only
places that import it, and the version is pinned in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from metricflow_semantics.model.dbt_manifest_parser import (
    parse_manifest_from_dbt_generated_manifest,
)
from metricflow_semantics.model.semantic_manifest_lookup import SemanticManifestLookup

from tally.core.manifest_versions import unsupported, writer_of
from tally.errors import ManifestUnavailable


@dataclass(frozen=True)
class LoadedManifest:
    path: Path
    version: str  # sha256 of the file's bytes: changes exactly when the definitions change
    lookup: SemanticManifestLookup
    # dbt 1.11 keeps metrics' and saved queries' `meta` only in manifest.json, next to the
    # semantic manifest.
    saved_query_meta: dict[str, dict] = field(default_factory=dict)
    metric_meta: dict[str, dict] = field(default_factory=dict)
    # The dbt adapter the manifest was parsed for ("duckdb", "postgres"; None when unknown):
    # its table names are that warehouse's.
    adapter_type: str | None = None

    @property
    def manifest(self):  # PydanticSemanticManifest
        return self.lookup.semantic_manifest


def load_manifest(path: Path) -> LoadedManifest:
    if not path.exists():
        raise ManifestUnavailable(
            f"Semantic manifest not found at {path}: run `dbt parse` in the project (or "
            "`tally build`, which builds and parses), or point TALLY_MANIFEST_PATH at it."
        )
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError as e:  # a half-written or foreign file: never replace a good manifest
        raise ManifestUnavailable(f"Semantic manifest at {path} cannot be read: {e}") from e
    why = unsupported(data)
    if why is not None:
        raise ManifestUnavailable(f"Semantic manifest at {path} is not supported: {why}.")
    try:
        manifest = parse_manifest_from_dbt_generated_manifest(raw.decode("utf-8"))
        lookup = SemanticManifestLookup(manifest)
    except Exception as e:  # a half-written or foreign file: never replace a good manifest with it
        writer = writer_of(data)
        by = f" (written by {writer[0]})" if writer else ""
        raise ManifestUnavailable(f"Semantic manifest at {path}{by} cannot be read: "
                                  f"{' '.join(str(e).split())[:500]}") from e  # fmt: skip
    data = _dbt_manifest(path.parent / "manifest.json")
    return LoadedManifest(
        path=path,
        version=hashlib.sha256(raw).hexdigest()[:16],
        lookup=lookup,
        saved_query_meta=_meta(data.get("saved_queries", {})),
        metric_meta=_meta(data.get("metrics", {})),
        adapter_type=(data.get("metadata") or {}).get("adapter_type"),
    )


def _dbt_manifest(path: Path) -> dict:
    """dbt's manifest.json next to the semantic manifest ({} when absent or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _meta(nodes: dict) -> dict[str, dict]:
    """`meta` of saved queries or metrics, by name."""
    return {
        n["name"]: {**(n.get("meta") or {}), **((n.get("config") or {}).get("meta") or {})}
        for n in nodes.values()
    }

