"""Monitors declared in YAML beside the metrics: every `monitors/*.yml` folder inside one of
the dbt project's model-paths (the demo: semantic/monitors/). dbt reads these files too, as
property files, and ignores their one top-level key `monitors:` (checked: dbt 1.11 parses them
without an error or a warning).

    monitors:
      - name: customers_fresh
        type: freshness
        source: raw.customers         # or model: <model>; the newest value of `column`
        column: updated_at            # default: the source's dbt loaded_at_field
        warn_after: {count: 24, period: hour}    # default: the source's dbt freshness
        error_after: {count: 72, period: hour}
      - name: daily_orders
        type: row_count
        source: raw.orders            # or model: <model>
        date_column: order_date
        lookback_days: 7              # the latest day against the median of these before it
        threshold_percent: 20
        lag_days: 0                   # check the day this many days before the latest one
      - name: orders_by_country
        type: metric
        metric: order_count
        grain: week                   # day, week, month, quarter, year
        by: customer__country         # optional: one check per value
        lookback: 8                   # periods of history the latest complete one is held to
        threshold: 3.5                # robust z-score (median and MAD; see tally.monitor.stats)
        min_change_percent: 20        # and at least this far from the median
        min_volume: 20                # groups whose median is below this never alert
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tally.errors import ConfigurationError
from tally.project import model_paths

TYPES = ("freshness", "row_count", "metric")
GRAINS = ("day", "week", "month", "quarter", "year")
PERIOD_HOURS = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYS = {
    "freshness": {"column", "warn_after", "error_after"},
    "row_count": {"date_column", "lookback_days", "threshold_percent", "lag_days"},
    "metric": {"metric", "grain", "by", "lookback", "threshold", "min_change_percent",
               "min_volume"},
}  # fmt: skip
_COMMON = {"name", "type", "model", "source", "description"}


@dataclass(frozen=True)
class Monitor:
    name: str
    type: str
    where: str  # file:index, for messages
    model: str | None = None
    source: str | None = None
    description: str = ""
    column: str | None = None
    warn_after_hours: float | None = None
    error_after_hours: float | None = None
    date_column: str | None = None
    lookback_days: int = 7
    threshold_percent: float = 20.0
    lag_days: int = 0
    metric: str | None = None
    grain: str = "day"
    by: str | None = None
    lookback: int = 8
    threshold: float = 3.5
    min_change_percent: float = 20.0
    min_volume: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def monitor_files(
    project_dir: Path, profiles_dir: Path | None = None, target: str | None = None
) -> list[Path]:
    files: list[Path] = []
    for path in model_paths(project_dir, profiles_dir, target):
        folder = path / "monitors"
        if folder.is_dir():
            files += sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    return files


def load_monitors(
    project_dir: Path, profiles_dir: Path | None = None, target: str | None = None
) -> tuple[Monitor, ...]:
    monitors: list[Monitor] = []
    for path in monitor_files(project_dir, profiles_dir, target):
        try:
            top = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigurationError(f"{path}: invalid YAML: {e}.") from None
        if not isinstance(top, dict) or set(top) - {"monitors"}:
            raise ConfigurationError(
                f"{path}: a monitors file holds one key, `monitors:` (a list)."
            )
        nodes = top.get("monitors") or []
        if not isinstance(nodes, list):
            raise ConfigurationError(f"{path}: monitors must be a list.")
        monitors += [_monitor(f"{path}: monitors[{i}]", node) for i, node in enumerate(nodes)]
    seen: dict[str, str] = {}
    for m in monitors:
        if m.name in seen:
            raise ConfigurationError(f"{m.where}: monitor {m.name!r} is also defined at "
                                     f"{seen[m.name]}.")  # fmt: skip
        seen[m.name] = m.where
    return tuple(monitors)


def _monitor(where: str, node: Any) -> Monitor:
    if not isinstance(node, dict):
        raise ConfigurationError(f"{where}: a monitor must be a mapping.")
    name = node.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(f"{where}: name must be a plain name, got {name!r}.")
    where = f"{where} ({name})"
    kind = node.get("type")
    if kind not in TYPES:
        close = difflib.get_close_matches(str(kind), TYPES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(f"{where}: type must be one of {', '.join(TYPES)}, got "
                                 f"{kind!r}.{hint}")  # fmt: skip
    known = _COMMON | _KEYS[kind]
    unknown = sorted(set(node) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(f"{where}: unknown key {unknown[0]!r} for a {kind} monitor "
                                 f"(known: {', '.join(sorted(known))}).{hint}")  # fmt: skip
    values: dict[str, Any] = {"name": name, "type": kind, "where": where,
                              "description": str(node.get("description") or "")}  # fmt: skip
    if kind in ("freshness", "row_count"):
        model, source = node.get("model"), node.get("source")
        if bool(model) == bool(source):
            raise ConfigurationError(f"{where}: name exactly one of model or source.")
        if source and (not isinstance(source, str) or source.count(".") != 1):
            raise ConfigurationError(f"{where}: source must be <source>.<table>, got {source!r}.")
        values.update(model=model, source=source)
    if kind == "freshness":
        values["column"] = _opt_str(where, node, "column")
        for key in ("warn_after", "error_after"):
            if node.get(key) is not None:
                values[f"{key}_hours"] = _duration(where, key, node[key])
    elif kind == "row_count":
        values["date_column"] = _opt_str(where, node, "date_column")
        if not values["date_column"]:
            raise ConfigurationError(f"{where}: a row_count monitor needs date_column.")
        values["lookback_days"] = int(_number(where, node, "lookback_days", 7, minimum=1))
        values["threshold_percent"] = _number(where, node, "threshold_percent", 20.0)
        values["lag_days"] = int(_number(where, node, "lag_days", 0))
    else:
        metric = _opt_str(where, node, "metric")
        if not metric:
            raise ConfigurationError(f"{where}: a metric monitor needs metric.")
        grain = node.get("grain", "day")
        if grain not in GRAINS:
            raise ConfigurationError(f"{where}: grain must be one of {', '.join(GRAINS)}.")
        values.update(
            metric=metric, grain=grain, by=_opt_str(where, node, "by"),
            lookback=int(_number(where, node, "lookback", 8, minimum=3)),
            threshold=_number(where, node, "threshold", 3.5),
            min_change_percent=_number(where, node, "min_change_percent", 20.0),
            min_volume=_number(where, node, "min_volume", 0.0),
        )  # fmt: skip
    return Monitor(**values)


def _opt_str(where: str, node: dict, key: str) -> str | None:
    value = node.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"{where}: {key} must be a name, got {value!r}.")
    return value


def _number(where: str, node: dict, key: str, default: float, minimum: float = 0) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigurationError(f"{where}: {key} must be a number >= {minimum}, got {value!r}.")
    return float(value)


def _duration(where: str, key: str, value: Any) -> float:
    """dbt's freshness spelling, {count: 24, period: hour}, in hours."""
    if not isinstance(value, dict) or set(value) != {"count", "period"} \
            or value["period"] not in PERIOD_HOURS or not isinstance(value["count"], int | float):
        raise ConfigurationError(f"{where}: {key} must be {{count: N, period: minute|hour|day}}, "
                                 f"as in dbt's source freshness.")  # fmt: skip
    return float(value["count"]) * PERIOD_HOURS[value["period"]]
