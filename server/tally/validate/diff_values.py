"""`tally diff --values`: each changed metric queried with both definitions on the same
warehouse, over the saved queries that use it (else by metric_time, monthly), and the numbers
that move: rows compared, rows that differ, the largest absolute and relative difference."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from tally.core.caller import Caller
from tally.core.request import QueryRequest
from tally.errors import TallyError
from tally.service import TallyService
from tally.settings import load_settings
from tally.validate.diff import ManifestDiff, changed_metrics
from tally.validate.diff_sides import Side

_DIFF = Caller.local("diff")  # both sides, whole: a diff compares every row


@dataclass
class ValueDiff:
    metric: str
    query: str  # the saved query, or the default grouping
    group_by: list[str] = field(default_factory=list)
    rows_base: int = 0
    rows_head: int = 0
    rows_differ: int = 0
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    example: dict[str, Any] | None = None  # the row that moved most: key, before, after
    error: str | None = None

    @property
    def moved(self) -> bool:
        return self.rows_differ > 0 or self.error is not None


def _service(side: Side, project_dir: Path, profiles_dir: Path | None, target: str | None,
             warehouse: Any = None) -> TallyService:  # fmt: skip
    settings = load_settings(project_dir=project_dir, profiles_dir=profiles_dir, target=target,
                             manifest_path=side.manifest_path, cache_enabled=False)  # fmt: skip
    return TallyService(settings, warehouse=warehouse)


def value_diffs(
    diff: ManifestDiff, base: Side, head: Side, project_dir: Path, profiles_dir: Path | None,
    target: str | None,
) -> list[ValueDiff]:  # fmt: skip
    metrics = changed_metrics(diff)
    if not metrics:
        return []
    before = _service(base, project_dir, profiles_dir, target)
    after = _service(head, project_dir, profiles_dir, target, warehouse=before.warehouse)
    plans: list[tuple[str, str, list[str], list[str]]] = []
    for metric in metrics:
        saved = [q for q in after.list_saved_queries(_DIFF) if metric in q.metrics]
        for q in saved:
            plans.append((metric, q.name, list(q.group_by), list(q.where)))
        if not saved:
            try:
                dims = after.list_dimensions((metric,), _DIFF)
                grains = next(d.grains for d in dims if d.name == "metric_time")
            except (TallyError, StopIteration):
                grains = ("month",)
            grain = "month" if "month" in grains else grains[0]
            plans.append((metric, f"by metric_time__{grain}", [f"metric_time__{grain}"], []))
    out = []
    for i, (metric, label, group_by, where) in enumerate(plans, 1):
        print(f"values: {metric} over {label} ({i}/{len(plans)})", file=sys.stderr, flush=True)
        out.append(_compare(before, after, metric, label, group_by, where))
    return out


def _compare(
    before: TallyService, after: TallyService, metric: str, label: str, group_by: list[str],
    where: list[str],
) -> ValueDiff:  # fmt: skip
    result = ValueDiff(metric, label, group_by)
    request = QueryRequest.create(metrics=[metric], group_by=group_by, where=where)
    try:
        old = before.query(request, _DIFF, use_cache=False).table
        new = after.query(request, _DIFF, use_cache=False).table
    except TallyError as e:
        result.error = e.message
        return result
    result.rows_base, result.rows_head = old.num_rows, new.num_rows
    old_rows, new_rows = _rows(old, metric), _rows(new, metric)
    worst = -1.0
    for key in sorted(set(old_rows) | set(new_rows), key=repr):
        a, b = old_rows.get(key), new_rows.get(key)
        if _same(a, b):
            continue
        result.rows_differ += 1
        if a is None or b is None:
            if worst < 0:
                result.example = {"key": dict(key), "before": a, "after": b}
            continue
        diff = abs(b - a)
        result.max_abs_diff = max(result.max_abs_diff or 0.0, diff)
        if a != 0:
            result.max_rel_diff = max(result.max_rel_diff or 0.0, diff / abs(a))
        if diff > worst:
            worst = diff
            result.example = {"key": dict(key), "before": a, "after": b}
    return result


def _rows(table: pa.Table, metric: str) -> dict[tuple, float | None]:
    keys = [c for c in table.column_names if c != metric]
    out: dict[tuple, float | None] = {}
    for row in table.to_pylist():
        key = tuple((k, _plain(row[k])) for k in keys)
        out[key] = _number(row.get(metric))
    return out


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        number = float(value)
        return None if math.isnan(number) else number
    return None


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
