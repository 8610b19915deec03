"""A ManifestDiff as text, Markdown (a pull-request comment or a job summary) or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from server.validate.diff import ItemDiff, ManifestDiff

_SYMBOL = {"added": "+", "removed": "-", "renamed": "→", "changed": "~"}


def _value(v: Any, width: int = 80) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _headline(diff: ManifestDiff) -> str:
    parts = []
    for kind in ("metric", "dimension"):
        counts = {s: len(diff.of(kind, s)) for s in ("added", "removed", "renamed", "changed")}
        said = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        parts.append(f"{kind}s: {said or 'no change'}")
    breaking = len(diff.breaking)
    parts.append(f"{breaking} breaking" if breaking else "nothing breaking")
    return "; ".join(parts)


def _status(item: ItemDiff) -> str:
    if item.status == "renamed":
        return f"renamed to {item.renamed_to}"
    if item.via:
        return f"changed through {', '.join(item.via)}"
    return item.status


def to_text(diff: ManifestDiff) -> str:
    out = [f"tally diff {diff.base} -> {diff.head}", _headline(diff)]
    for item in diff.items:
        flag = "  BREAKING" if item.breaking else ""
        out.append(f"  {_SYMBOL[item.status]} {item.kind} {item.name}: {_status(item)}{flag}")
        for c in item.changes:
            out.append(f"      {c.field}: {_value(c.before)} -> {_value(c.after)}")
        if item.used_by:
            out.append(f"      used by {', '.join(item.used_by)}")
        if item.note:
            out.append(f"      {item.note}")
    if diff.values:
        out.append("values (same warehouse, both definitions):")
        for v in diff.values:
            out.append(f"  {v.metric} over {v.query}: {_value_line(v)}")
    return "\n".join(out)


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:.2%}" if pct else f"{x:,.6g}"


def _value_line(v: Any) -> str:
    if v.error:
        return f"error: {v.error}"
    if not v.rows_differ:
        return f"{v.rows_head} rows, none differ"
    line = (
        f"{v.rows_differ} of {max(v.rows_base, v.rows_head)} rows differ, max abs diff "
        f"{_fmt(v.max_abs_diff)}, max rel diff {_fmt(v.max_rel_diff, pct=True)}"
    )
    if v.example:
        key = ", ".join(f"{k}={val}" for k, val in v.example["key"].items())
        line += f" (e.g. {key}: {_fmt(v.example['before'])} -> {_fmt(v.example['after'])})"
    return line


def _md(text: Any) -> str:
    return _value(text, 60).replace("|", "\\|")


def to_markdown(diff: ManifestDiff) -> str:
    out = [f"### Semantic layer changes: `{diff.base}` → `{diff.head}`", ""]
    if diff.breaking:
        out.append(f"**{len(diff.breaking)} breaking change(s)**: a saved query or an exposure "
                   "depends on what was removed, renamed or retyped.")  # fmt: skip
    else:
        out.append("No breaking change.")
    out.append("")
    out.append(_headline(diff))
    if not diff.items:
        return "\n".join(out)
    out += ["", "| | Kind | Name | Change | Details |", "|---|---|---|---|---|"]
    for item in diff.items:
        mark = "🔴 breaking" if item.breaking else {"added": "🟢", "changed": "🟡"}.get(
            item.status, "⚪"
        )
        details = [f"`{c.field}`: `{_md(c.before)}` → `{_md(c.after)}`" for c in item.changes]
        if item.used_by:
            details.append("used by " + ", ".join(f"`{u}`" for u in item.used_by))
        if item.note:
            details.append(item.note)
        out.append(f"| {mark} | {item.kind} | `{item.name}` | {_status(item)} | "
                   f"{'<br>'.join(details)} |")  # fmt: skip
    if diff.values:
        out += ["", "#### Numbers that move (both definitions, same warehouse)", "",
                "| Metric | Query | Rows | Rows that differ | Max abs diff | Max rel diff |",
                "|---|---|---|---|---|---|"]  # fmt: skip
        for v in diff.values:
            if v.error:
                out.append(f"| `{v.metric}` | {v.query} | | | error: {_md(v.error)} | |")
                continue
            out.append(
                f"| `{v.metric}` | {v.query} | {max(v.rows_base, v.rows_head)} | "
                f"{v.rows_differ} | {_fmt(v.max_abs_diff)} | {_fmt(v.max_rel_diff, True)} |"
            )
    return "\n".join(out)


def to_dict(diff: ManifestDiff) -> dict[str, Any]:
    return {
        "base": diff.base,
        "head": diff.head,
        "summary": {
            kind: {
                s: [i.name for i in diff.of(kind, s)]
                for s in ("added", "removed", "renamed", "changed")
            }
            for kind in ("metric", "dimension")
        },
        "breaking": [i.name for i in diff.breaking],
        "items": [asdict(i) for i in diff.items],
        "values": [asdict(v) for v in diff.values],
    }
