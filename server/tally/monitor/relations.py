"""What a monitor's `model:` or `source:` names in the warehouse, from dbt's own manifest
(target/manifest.json): its relation name, and for a source its freshness configuration."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from tally.errors import ConfigurationError
from tally.monitor.config import PERIOD_HOURS, Monitor


@dataclass(frozen=True)
class Relation:
    name: str  # the relation as SQL names it, e.g. "warehouse"."raw"."orders"
    loaded_at_field: str | None = None
    warn_after_hours: float | None = None
    error_after_hours: float | None = None


class Relations:
    def __init__(self, manifest_path: Path) -> None:
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigurationError(
                f"Monitors need dbt's {manifest_path} (run `tally build` or `dbt parse`): {e}."
            ) from None
        self.models: dict[str, Relation] = {}
        for node in manifest.get("nodes", {}).values():
            if node.get("resource_type") in ("model", "snapshot", "seed") \
                    and node.get("relation_name"):
                self.models[node["name"]] = Relation(node["relation_name"])
        self.sources: dict[str, Relation] = {}
        for node in manifest.get("sources", {}).values():
            config = node.get("config") or {}
            freshness = config.get("freshness") or node.get("freshness") or {}
            self.sources[f"{node['source_name']}.{node['name']}"] = Relation(
                node["relation_name"],
                config.get("loaded_at_field") or node.get("loaded_at_field"),
                _hours(freshness.get("warn_after")),
                _hours(freshness.get("error_after")),
            )

    def of(self, monitor: Monitor) -> Relation:
        table, known, what = (
            (monitor.model, self.models, "model") if monitor.model
            else (monitor.source, self.sources, "source")
        )  # fmt: skip
        assert table is not None
        if table not in known:
            close = difflib.get_close_matches(table, list(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(f"{monitor.where}: unknown {what} {table!r}.{hint}")
        return known[table]


def _hours(after: dict | None) -> float | None:
    if not after or after.get("count") is None or after.get("period") not in PERIOD_HOURS:
        return None
    return float(after["count"]) * PERIOD_HOURS[after["period"]]
