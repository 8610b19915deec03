"""A ManifestDiff as text, Markdown (a pull-request comment or a job summary) or JSON.

A long value is shown around its first difference from the other side ("...over completed
orders" -> "...over all orders"), never cut where both sides still look the same; Markdown also
gives the full values of every shortened field in a <details> block."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from tally.validate.diff import Change, ItemDiff, ManifestDiff

_SYMBOL = {"added": "+", "removed": "-", "renamed": "→", "changed": "~"}
_CONTEXT = 24  # characters shown before the first difference


def flat(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return " ".join(str(text).split())


def _cut(text: str, start: int, width: int) -> str:
    lead = "..." if start > 0 else ""
    body = text[start:]
    if len(lead) + len(body) <= width:
        return lead + body
    return lead + body[: max(1, width - len(lead) - 3)] + "..."


def shown(before: Any, after: Any, width: int = 80) -> tuple[str, str]:
    """Both values on one line each, at most `width` characters, showing where they differ: a
    window starting a little before the first differing character."""
    b, a = flat(before), flat(after)
    if b == a and before != after:  # only the spacing differs: show it, escaped
        b, a = json.dumps(before, default=str), json.dumps(after, default=str)
    if len(b) <= width and len(a) <= width:
        return b, a
    common = 0
    for x, y in zip(b, a, strict=False):
        if x != y:
            break
        common += 1
    context = min(_CONTEXT, width // 3)
    start = 0 if common <= width - context - 6 else common - context
    space = b.rfind(" ", max(0, start - width // 8), start)
    start = space + 1 if space > 0 else start  # from the start of a word
    return _cut(b, start, width), _cut(a, start, width)


def _shortened(c: Change, width: int) -> bool:
    return shown(c.before, c.after, width) != (flat(c.before), flat(c.after))


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
    if item.status == "changed" and not item.definition_changed:
        return "changed (label, description or meta only)"
    return item.status


def to_text(diff: ManifestDiff) -> str:
    out = [f"tally diff {diff.base} -> {diff.head}", _headline(diff)]
    out += [f"note: {n}" for n in diff.notes]
    for item in diff.items:
        flag = "  BREAKING" if item.breaking else ""
        out.append(f"  {_SYMBOL[item.status]} {item.kind} {item.name}: {_status(item)}{flag}")
        for c in item.changes:
            before, after = shown(c.before, c.after)
            out.append(f"      {c.field}: {before} -> {after}")
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


def _moved_most(v: Any) -> str:
    if not v.example:
        return ""
    key = ", ".join(f"{k}={val}" for k, val in v.example["key"].items())
    return f"{key}: {_fmt(v.example['before'])} -> {_fmt(v.example['after'])}"


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
        line += f" (moved most: {_moved_most(v)})"
    return line


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def to_markdown(diff: ManifestDiff) -> str:
    out = [f"### Semantic layer changes: `{diff.base}` → `{diff.head}`", ""]
    if diff.breaking:
        out.append(f"**{len(diff.breaking)} breaking change(s)**: a saved query or an exposure "
                   "depends on what was removed, renamed or retyped.")  # fmt: skip
    else:
        out.append("No breaking change.")
    out.append("")
    out.append(_headline(diff))
    for note in diff.notes:
        out += ["", f"> Note: {note}."]
    if not diff.items:
        return "\n".join(out)
    out += ["", "| | Kind | Name | Change | Details |", "|---|---|---|---|---|"]
    long_values: list[tuple[ItemDiff, Change]] = []
    for item in diff.items:
        mark = "🔴 breaking" if item.breaking else {"added": "🟢", "changed": "🟡"}.get(
            item.status, "⚪"
        )
        details = []
        for c in item.changes:
            before, after = shown(c.before, c.after, 60)
            details.append(f"`{c.field}`: `{_cell(before)}` → `{_cell(after)}`")
            if _shortened(c, 60):
                long_values.append((item, c))
        if item.used_by:
            details.append("used by " + ", ".join(f"`{u}`" for u in item.used_by))
        if item.note:
            details.append(item.note)
        out.append(f"| {mark} | {item.kind} | `{item.name}` | {_status(item)} | "
                   f"{'<br>'.join(details)} |")  # fmt: skip
    if long_values:
        out += ["", "<details><summary>Full values of the shortened fields</summary>", ""]
        for item, c in long_values:
            out += [f"**{item.kind} `{item.name}`, `{c.field}`**", "", "before:", "",
                    "```text", flat(c.before), "```", "", "after:", "", "```text",
                    flat(c.after), "```", ""]  # fmt: skip
        out.append("</details>")
    if diff.values:
        out += _markdown_values(diff)
    return "\n".join(out)


def _markdown_values(diff: ManifestDiff) -> list[str]:
    out = ["", "#### Numbers that move (both definitions, same warehouse)", "",
           "| Metric | Query | Rows | Rows that differ | Max abs diff | Max rel diff | "
           "Moved most |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for v in diff.values:
        if v.error:
            error = _cell(_cut(flat(v.error), 0, 200))
            out.append(f"| `{v.metric}` | {v.query} | | | error: {error} | | |")
            continue
        out.append(
            f"| `{v.metric}` | {v.query} | {max(v.rows_base, v.rows_head)} | "
            f"{v.rows_differ} | {_fmt(v.max_abs_diff)} | {_fmt(v.max_rel_diff, True)} | "
            f"{_cell(_moved_most(v).replace(' -> ', ' → '))} |"
        )
    return out


def to_dict(diff: ManifestDiff) -> dict[str, Any]:
    return {
        "base": diff.base,
        "head": diff.head,
        "notes": diff.notes,
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
