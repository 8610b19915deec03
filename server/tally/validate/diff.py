"""`tally diff BASE HEAD`: metrics and dimensions added, removed, renamed and changed between two
semantic manifests, with the changes a saved query or an exposure would feel flagged breaking.
The sides (files, folders, git refs): diff_sides.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tally.validate.diff_sides import Side
from tally.validate.tally_rules import definition, exposure_metrics

# Comparing -------------------------------------------------------------------------------


@dataclass
class Change:
    field: str
    before: Any
    after: Any


@dataclass
class ItemDiff:
    kind: str  # metric | dimension
    name: str
    status: str  # added | removed | renamed | changed
    changes: list[Change] = field(default_factory=list)
    via: list[str] = field(default_factory=list)  # changed inputs, for metrics changed through them
    renamed_to: str | None = None
    breaking: bool = False
    used_by: list[str] = field(default_factory=list)
    note: str = ""
    # what it computes changed (not only its label, description or meta)
    definition_changed: bool = False


@dataclass
class ManifestDiff:
    base: str
    head: str
    items: list[ItemDiff]
    values: list[Any] = field(default_factory=list)  # diff_values.ValueDiff
    notes: list[str] = field(default_factory=list)  # what could not be compared, and why

    @property
    def breaking(self) -> list[ItemDiff]:
        return [i for i in self.items if i.breaking]

    def of(self, kind: str, status: str | None = None) -> list[ItemDiff]:
        return [i for i in self.items if i.kind == kind and (status is None or i.status == status)]


_SKIP_METRIC_FIELDS = {"name", "metadata", "config"}
_SKIP_PARAMS = {"input_measures"}  # dbt's derived copy of the measures


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if prefix == "type_params." and k in _SKIP_PARAMS:
                continue
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix[:-1]}[{i}]."))
        return out
    return {prefix[:-1]: value} if prefix else {}


def _measures(semantic: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for model in semantic.get("semantic_models", []):
        default_time = (model.get("defaults") or {}).get("agg_time_dimension")
        for m in model.get("measures", []):
            out[m["name"]] = {
                "agg": m.get("agg"),
                "expr": m.get("expr") or m["name"],
                "agg_params": m.get("agg_params"),
                "non_additive_dimension": m.get("non_additive_dimension"),
                "agg_time_dimension": m.get("agg_time_dimension") or default_time,
                "semantic_model": model["name"],
                "table": (model.get("node_relation") or {}).get("relation_name"),
            }
    return out


def _direct_measures(metric: dict[str, Any]) -> list[str]:
    tp = metric.get("type_params") or {}
    names = [(tp.get("measure") or {}).get("name")]
    conv = tp.get("conversion_type_params") or {}
    names += [(conv.get(k) or {}).get("name") for k in ("base_measure", "conversion_measure")]
    return [n for n in names if n]


def metric_inputs(metric: dict[str, Any]) -> list[str]:
    tp = metric.get("type_params") or {}
    names = [(tp.get(k) or {}).get("name") for k in ("numerator", "denominator")]
    names += [m.get("name") for m in tp.get("metrics") or []]
    return [n for n in names if n]


def wording_only(field_name: str) -> bool:
    """A field that says what a metric or dimension is called, means or who owns it, not what
    it computes."""
    return field_name in ("label", "description") or field_name.startswith(("meta.", "config."))


def _metric_fields(side: Side, with_meta: bool) -> dict[str, dict[str, Any]]:
    measures = _measures(side.semantic)
    meta_by_name = {
        n.get("name"): {**(n.get("meta") or {}), **((n.get("config") or {}).get("meta") or {})}
        for n in side.dbt_manifest.get("metrics", {}).values()
    }
    out = {}
    for m in side.semantic.get("metrics", []):
        body = {k: v for k, v in m.items() if k not in _SKIP_METRIC_FIELDS}
        fields = _flatten(body)
        for name in _direct_measures(m):
            for k, v in (measures.get(name) or {"missing": True}).items():
                fields[f"measure({name}).{k}"] = v
        if with_meta and meta_by_name.get(m["name"]):
            fields.update(_flatten({"meta": meta_by_name[m["name"]]}))
        out[m["name"]] = fields
    return out


def _dimension_fields(side: Side) -> dict[str, dict[str, Any]]:
    out = {}
    for model in side.semantic.get("semantic_models", []):
        primary = model.get("primary_entity") or next(
            (e["name"] for e in model.get("entities", []) if e.get("type") == "primary"),
            model["name"],
        )
        for d in model.get("dimensions", []):
            fields = _flatten({k: v for k, v in d.items() if k not in ("name", "metadata")})
            fields["expr"] = d.get("expr") or d["name"]
            fields["semantic_model"] = model["name"]
            fields["table"] = (model.get("node_relation") or {}).get("relation_name")
            out.setdefault(f"{primary}__{d['name']}", fields)
    return out


_REF = re.compile(r"(?:Dimension|TimeDimension|Entity)\(\s*'([\w]+)'")


def usage(side: Side) -> dict[str, list[str]]:
    """name (metric or dimension group-by name) -> the saved queries and exposures using it."""
    used: dict[str, list[str]] = {}
    for q in side.semantic.get("saved_queries", []):
        params = q.get("query_params") or {}
        names = list(params.get("metrics") or [])
        texts = list(params.get("group_by") or []) + list(params.get("order_by") or [])
        texts += [w.get("where_sql_template", "") for w in
                  ((params.get("where") or {}).get("where_filters") or [])]  # fmt: skip
        names += [n for t in texts for n in _REF.findall(t)]
        for n in dict.fromkeys(names):
            used.setdefault(n, []).append(f"saved query {q['name']}")
    for e in side.dbt_manifest.get("exposures", {}).values():
        for n in exposure_metrics(e):
            used.setdefault(n, []).append(f"exposure {e['name']}")
    return used


def compare(base: Side, head: Side) -> ManifestDiff:
    used = usage(base)
    for name, users in usage(head).items():
        used[name] = list(dict.fromkeys([*used.get(name, []), *users]))
    items: list[ItemDiff] = []
    notes = []
    # dbt keeps a metric's meta (and the exposures) in manifest.json only: compare meta when
    # both sides have one, else every metric would look changed on the side without it.
    with_meta = base.has_dbt_manifest and head.has_dbt_manifest
    if not with_meta:
        missing = [s.label for s in (base, head) if not s.has_dbt_manifest]
        notes.append(f"meta not compared: {' and '.join(missing)} "
                     f"{'have' if len(missing) > 1 else 'has'} no dbt manifest.json next to the "
                     "semantic manifest (dbt keeps meta and exposures there)")  # fmt: skip
    base_defs = {m["name"]: definition(m) for m in base.semantic.get("metrics", [])}
    head_defs = {m["name"]: definition(m) for m in head.semantic.get("metrics", [])}
    for kind, before, after in (
        ("metric", _metric_fields(base, with_meta), _metric_fields(head, with_meta)),
        ("dimension", _dimension_fields(base), _dimension_fields(head)),
    ):
        items += _compare_kind(kind, before, after, used, base_defs, head_defs)
    _propagate(items, base, head)
    items.sort(key=lambda i: (i.kind != "metric", not i.breaking, i.status, i.name))
    return ManifestDiff(base.label, head.label, items, notes=notes)


def _compare_kind(
    kind: str, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
    used: dict[str, list[str]], base_defs: dict[str, str], head_defs: dict[str, str],
) -> list[ItemDiff]:  # fmt: skip
    items: list[ItemDiff] = []
    removed = sorted(set(before) - set(after))
    added = sorted(set(after) - set(before))

    def same_definition(old: str, new: str) -> bool:
        if kind == "metric":
            return base_defs.get(old) == head_defs.get(new)
        strip = ("label", "description")
        return {k: v for k, v in before[old].items() if k not in strip} == {
            k: v for k, v in after[new].items() if k not in strip
        }

    for name in removed:
        new = next((a for a in added if same_definition(name, a)), None)
        item = ItemDiff(kind, name, "renamed" if new else "removed", renamed_to=new)
        if new:
            added.remove(new)
        item.used_by = used.get(name, [])
        item.breaking = bool(item.used_by)
        if not item.breaking:
            item.note = "no saved query or exposure uses it (API callers asking for it get " \
                        f"unknown_{kind})"  # fmt: skip
        items.append(item)
    items += [ItemDiff(kind, name, "added") for name in added]
    for name in sorted(set(before) & set(after)):
        changes = [
            Change(k, before[name].get(k), after[name].get(k))
            for k in sorted(set(before[name]) | set(after[name]))
            if before[name].get(k) != after[name].get(k)
        ]
        if changes:
            item = ItemDiff(kind, name, "changed", changes=changes, used_by=used.get(name, []),
                            definition_changed=not all(wording_only(c.field) for c in changes))
            if kind == "dimension" and any(c.field == "type" for c in changes) and item.used_by:
                item.breaking = True
                item.note = "its type changed and saved queries or exposures group by it"
            items.append(item)
    return items


def _propagate(items: list[ItemDiff], base: Side, head: Side) -> None:
    """Metrics whose definition is unchanged but whose input metrics changed (a ratio over a
    changed numerator) change too."""
    head_metrics = {m["name"]: m for m in head.semantic.get("metrics", [])}
    base_names = {m["name"] for m in base.semantic.get("metrics", [])}
    changed = {i.name for i in items
               if i.kind == "metric" and i.status == "changed" and i.definition_changed}
    seen = set(changed)
    grew = True
    while grew:
        grew = False
        for name, m in head_metrics.items():
            if name in seen or name not in base_names:
                continue
            via = [i for i in metric_inputs(m) if i in changed]
            if via:
                items.append(ItemDiff("metric", name, "changed", via=via,
                                      definition_changed=True))
                changed.add(name)
                seen.add(name)
                grew = True


def changed_metrics(diff: ManifestDiff) -> list[str]:
    """The metrics whose numbers can differ: what they compute changed (themselves, their
    measure, or an input metric), not only their label, description or meta."""
    return [i.name for i in diff.of("metric", "changed") if i.definition_changed]
