"""`tally diff BASE HEAD`: metrics and dimensions added, removed, renamed and changed between two
semantic manifests, with the changes a saved query or an exposure would feel flagged breaking.

A side is a semantic_manifest.json, a folder holding one (a dbt target/), or a git ref, whose
dbt project and model paths are materialised with `git archive` and parsed in a temporary
folder. Both sides are parsed at the same time."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.core.errors import CallerError, ServerFault
from server.validate.locate import Locator, model_paths
from server.validate.parse import event_findings, run_parse
from server.validate.tally_rules import definition, exposure_metrics


class DiffError(ServerFault):
    code = "diff_failed"


@dataclass
class Side:
    label: str
    manifest_path: Path
    semantic: dict[str, Any]
    dbt_manifest: dict[str, Any]

    @classmethod
    def read(cls, label: str, manifest_path: Path) -> Side:
        try:
            semantic = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as e:
            raise CallerError(f"{label}: cannot read {manifest_path}: {e}") from None
        try:
            dbt_manifest = json.loads((manifest_path.parent / "manifest.json").read_text())
        except (OSError, ValueError):
            dbt_manifest = {}
        return cls(label, manifest_path, semantic, dbt_manifest)


# Resolving a side ------------------------------------------------------------------------


def resolve(
    spec: str, project_dir: Path, profiles_dir: Path | None, target: str | None, tmp: Path
) -> Side:
    path = Path(spec)
    if path.is_file():
        return Side.read(spec, path)
    if path.is_dir():
        for candidate in (path / "semantic_manifest.json", path / "target/semantic_manifest.json"):
            if candidate.exists():
                return Side.read(spec, candidate)
        raise CallerError(f"{spec} holds no semantic_manifest.json (run `dbt parse` there).")
    return _from_git(spec, project_dir, profiles_dir, target, tmp)


def _git(args: list[str], cwd: Path, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, **kw)


def _from_git(
    ref: str, project_dir: Path, profiles_dir: Path | None, target: str | None, tmp: Path
) -> Side:
    top = _git(["rev-parse", "--show-toplevel"], project_dir, text=True)
    if top.returncode != 0:
        raise CallerError(f"'{ref}' is not a file or folder, and {project_dir} is not in a git "
                          "repository to read it as a ref.")  # fmt: skip
    root = Path(top.stdout.strip()).resolve()
    if _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root).returncode != 0:
        raise CallerError(f"'{ref}' is neither a manifest file, a folder, nor a git ref.")
    if not project_dir.resolve().is_relative_to(root):
        raise CallerError(f"{project_dir} is not inside the git repository at {root}.")
    dest = Path(tempfile.mkdtemp(prefix="ref-", dir=tmp))
    project_rel = project_dir.resolve().relative_to(root)
    _archive(ref, root, [project_rel], dest)
    copy = dest / project_rel
    if not (copy / "dbt_project.yml").exists():
        raise CallerError(f"{ref} has no dbt project at {project_rel}.")
    extra = []
    for p in model_paths(copy):
        rel = p.resolve().relative_to(dest.resolve()) if p.is_relative_to(dest.resolve()) else None
        if rel is not None and not p.exists():
            extra.append(rel)
    _archive(ref, root, extra, dest)
    if profiles_dir is None:
        profiles = copy if (copy / "profiles.yml").exists() else project_dir
    else:
        profiles = profiles_dir
    print(f"{ref}: running dbt parse on its project...", file=sys.stderr, flush=True)
    outcome = run_parse(copy, profiles, dest / "target", target,
                        seed=project_dir / "target" / "partial_parse.msgpack")  # fmt: skip
    if outcome.manifest_path is None:
        problems = [f.message for f in event_findings(outcome, copy, Locator([]))]
        raise DiffError(f"{ref}: dbt parse failed: {'; '.join(problems[:3]) or 'unknown error'}")
    return Side.read(ref, outcome.manifest_path)


def _archive(ref: str, root: Path, paths: list[Path], dest: Path) -> None:
    present = [
        str(p)
        for p in paths
        if _git(["cat-file", "-e", f"{ref}:{p.as_posix()}"], root).returncode == 0
    ]
    if not present:
        return
    proc = _git(["archive", "--format=tar", ref, "--", *present], root)
    if proc.returncode != 0:
        raise DiffError(f"git archive {ref} failed: {proc.stderr.decode().strip()}")
    tar_path = dest / ".archive.tar"
    tar_path.write_bytes(proc.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()


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


@dataclass
class ManifestDiff:
    base: str
    head: str
    items: list[ItemDiff]
    values: list[Any] = field(default_factory=list)  # diff_values.ValueDiff

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


def _metric_fields(side: Side) -> dict[str, dict[str, Any]]:
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
        if meta_by_name.get(m["name"]):
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
    base_defs = {m["name"]: definition(m) for m in base.semantic.get("metrics", [])}
    head_defs = {m["name"]: definition(m) for m in head.semantic.get("metrics", [])}
    for kind, before, after in (
        ("metric", _metric_fields(base), _metric_fields(head)),
        ("dimension", _dimension_fields(base), _dimension_fields(head)),
    ):
        items += _compare_kind(kind, before, after, used, base_defs, head_defs)
    _propagate(items, base, head)
    items.sort(key=lambda i: (i.kind != "metric", not i.breaking, i.status, i.name))
    return ManifestDiff(base.label, head.label, items)


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
            item = ItemDiff(kind, name, "changed", changes=changes, used_by=used.get(name, []))
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
    changed = {i.name for i in items if i.kind == "metric" and i.status == "changed"}
    seen = set(changed)
    grew = True
    while grew:
        grew = False
        for name, m in head_metrics.items():
            if name in seen or name not in base_names:
                continue
            via = [i for i in metric_inputs(m) if i in changed]
            if via:
                items.append(ItemDiff("metric", name, "changed", via=via))
                changed.add(name)
                seen.add(name)
                grew = True


def changed_metrics(diff: ManifestDiff) -> list[str]:
    return [i.name for i in diff.of("metric", "changed")]


# Command ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from server.validate import diff_report
    from server.validate.cli import _profiles_dir, _project_dir

    project_dir = _project_dir(args).resolve()
    profiles_dir = _profiles_dir(args)
    with tempfile.TemporaryDirectory(prefix="tally-diff-") as tmp:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(resolve, spec, project_dir, profiles_dir, args.target, Path(tmp))
                for spec in (args.base, args.head)
            ]
            base, head = (f.result() for f in futures)
        result = compare(base, head)
        if args.values:
            from server.validate.diff_values import value_diffs

            result.values = value_diffs(result, base, head, project_dir, profiles_dir,
                                        args.target)  # fmt: skip
    if args.format == "json":
        print(json.dumps(diff_report.to_dict(result), indent=2, default=str))
    elif args.format == "markdown":
        print(diff_report.to_markdown(result))
    else:
        print(diff_report.to_text(result))
    return 1 if args.fail_on_breaking and result.breaking else 0
