"""What every check of one validation run reads: the manifests, where each element is defined,
the project's configuration, and the report findings go to."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tally.errors import CallerError
from tally.validate.config import ValidateConfig
from tally.validate.findings import Location, Report, Rule, Severity, make_finding
from tally.validate.locate import Locator


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Context:
    project_dir: Path
    manifest_path: Path
    semantic: dict[str, Any]  # semantic_manifest.json as dbt wrote it
    raw: Any  # the same, as MetricFlow's PydanticSemanticManifest (untransformed)
    dbt_manifest: dict[str, Any]  # manifest.json next to it ({} when absent)
    locator: Locator
    config: ValidateConfig
    report: Report
    progress: Callable[[str], None] = stderr_progress
    compiler: Any = None  # tally.core.compiler.Compiler, when the manifest loads
    # ("metric" | "saved_query", name) -> SQL compiled by the tally stage (limit 1), and what
    # did not compile (reported there: the warehouse checks skip it)
    compiled: dict[tuple[str, str], str] = field(default_factory=dict)
    uncompiled: set[tuple[str, str]] = field(default_factory=set)

    @staticmethod
    def read_dbt_manifest(manifest_path: Path) -> dict[str, Any]:
        try:
            return json.loads((manifest_path.parent / "manifest.json").read_text())
        except (OSError, ValueError):
            return {}

    def enabled(self, rule: Rule) -> bool:
        return self.config.enabled(rule.id)

    def enabled_id(self, rule_id: str) -> bool:
        return self.config.enabled(rule_id)

    def add(
        self,
        rule: Rule,
        message: str,
        *,
        kind: str | None = None,
        element: str | None = None,
        field: str | None = None,
        location: Location | None = None,
        hint: str | None = None,
        severity: Severity | None = None,
    ) -> None:
        if location is None and kind and element:
            location = self.locator.find(kind, element, field)
        self.report.findings.append(
            make_finding(
                rule,
                message,
                kind=kind,
                element=element,
                location=location,
                hint=hint,
                severity=severity,
            )
        )

    def metric_meta(self, name: str) -> dict[str, Any]:
        """A metric's meta. dbt 1.11 keeps a metric's top-level `meta:` in manifest.json only
        (the semantic manifest's config.meta is empty), so both are read."""
        meta: dict[str, Any] = {}
        for node in self.dbt_manifest.get("metrics", {}).values():
            if node.get("name") == name:
                meta.update(node.get("meta") or {})
                meta.update((node.get("config") or {}).get("meta") or {})
        for m in self.semantic.get("metrics", []):
            if m.get("name") == name:
                meta.update((m.get("config") or {}).get("meta") or {})
        return meta


def check_shape(label: str, data: Any) -> None:
    """A semantic manifest has lists of semantic models and metrics; dbt's manifest.json has
    dictionaries of them (and nodes)."""
    if isinstance(data, dict) and isinstance(data.get("nodes"), dict):
        raise CallerError(
            f"{label} looks like dbt's manifest.json, not a semantic manifest: pass "
            "target/semantic_manifest.json or the target folder."
        )
    if not (
        isinstance(data, dict)
        and isinstance(data.get("semantic_models"), list)
        and isinstance(data.get("metrics"), list)
    ):
        raise CallerError(
            f"{label} is not a semantic manifest (no lists of semantic_models and metrics): "
            "pass the target/semantic_manifest.json that `dbt parse` writes."
        )
