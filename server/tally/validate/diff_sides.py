"""The two sides of `tally diff`: each a semantic_manifest.json, a folder holding one (a dbt
target/), or a git ref, whose dbt project and model paths are materialised with `git archive`
and parsed in a temporary folder.

Every side is checked first (the file is a semantic manifest, the ref exists and has a dbt
project), so a mistake in one fails at once, before dbt parses the other; then the refs are
parsed at the same time."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.errors import CallerError, ServerFault, TallyError
from tally.project import model_paths, read_project
from tally.validate.context import check_shape
from tally.validate.locate import Locator
from tally.validate.parse import event_findings, run_parse


class DiffError(ServerFault):
    code = "diff_failed"


class NoProjectAtRef(CallerError):
    """The ref has no dbt project (a base branch from before the semantic layer)."""

    code = "no_project_at_ref"


@dataclass
class Side:
    label: str
    manifest_path: Path
    semantic: dict[str, Any]
    dbt_manifest: dict[str, Any]  # manifest.json next to it ({} when absent)
    has_dbt_manifest: bool  # meta and exposures are known (dbt keeps them in manifest.json)

    @classmethod
    def read(cls, label: str, manifest_path: Path) -> Side:
        try:
            semantic = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise CallerError(f"{label}: cannot read {manifest_path}: {e}") from None
        check_shape(label, semantic)
        try:
            dbt_manifest = json.loads((manifest_path.parent / "manifest.json").read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            dbt_manifest = {}
        known = isinstance(dbt_manifest, dict) and isinstance(dbt_manifest.get("nodes"), dict)
        return cls(label, manifest_path, semantic, dbt_manifest if known else {}, known)


@dataclass
class _Ref:
    spec: str
    root: Path  # the repository's top folder
    project_rel: Path  # the dbt project's folder inside it


def resolve_sides(
    specs: list[str], project_dir: Path, profiles_dir: Path | None, target: str | None,
    tmp: Path,
) -> list[Side]:  # fmt: skip
    """Each spec as a Side: every spec is checked before any dbt parse runs."""
    checked: list[Side | _Ref] = [_check(spec, project_dir) for spec in specs]
    refs = [c for c in checked if isinstance(c, _Ref)]
    parsed: dict[int, Side] = {}
    if refs:
        with ThreadPoolExecutor(max_workers=len(refs)) as pool:
            futures = {id(r): pool.submit(_parse_ref, r, project_dir, profiles_dir, target, tmp)
                       for r in refs}  # fmt: skip
            parsed = {key: f.result() for key, f in futures.items()}
    return [parsed[id(c)] if isinstance(c, _Ref) else c for c in checked]


def _check(spec: str, project_dir: Path) -> Side | _Ref:
    path = Path(spec)
    if path.is_file():
        return Side.read(spec, path)
    if path.is_dir():
        candidates = [path / "semantic_manifest.json", path / "target/semantic_manifest.json"]
        if (path / "dbt_project.yml").is_file():  # a project folder: dbt's own target path
            with contextlib.suppress(TallyError):  # unreadable: the usual places only
                target = read_project(path.resolve()).target_path
                candidates.insert(1, target / "semantic_manifest.json")
        for candidate in candidates:
            if candidate.exists():
                return Side.read(spec, candidate)
        if (path / "manifest.json").exists():
            raise CallerError(f"{spec} holds dbt's manifest.json but no semantic_manifest.json "
                              "(dbt 1.6 or newer writes it on `dbt parse`).")  # fmt: skip
        raise CallerError(f"{spec} holds no semantic_manifest.json (run `dbt parse` there).")
    top = _git(["rev-parse", "--show-toplevel"], project_dir, text=True)
    if top.returncode != 0:
        raise CallerError(f"'{spec}' is not a file or folder, and {project_dir} is not in a git "
                          "repository to read it as a ref.")  # fmt: skip
    root = Path(top.stdout.strip()).resolve()
    if _git(["rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"], root).returncode != 0:
        raise CallerError(f"'{spec}' is neither a manifest file, a folder, nor a git ref.")
    if not project_dir.resolve().is_relative_to(root):
        raise CallerError(f"{project_dir} is not inside the git repository at {root}.")
    project_rel = project_dir.resolve().relative_to(root)
    if not _exists_at(spec, root, project_rel / "dbt_project.yml"):
        raise NoProjectAtRef(f"{spec} has no dbt project at {project_rel.as_posix()}/, so it "
                             "has no semantic manifest to compare with.")  # fmt: skip
    return _Ref(spec, root, project_rel)


def _git(args: list[str], cwd: Path, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, **kw)


def _exists_at(ref: str, root: Path, path: Path) -> bool:
    # The repository's top folder is `ref:` (a project at the root of its repository).
    where = "" if path == Path(".") else path.as_posix()
    return _git(["cat-file", "-e", f"{ref}:{where}"], root).returncode == 0


def _parse_ref(
    ref: _Ref, project_dir: Path, profiles_dir: Path | None, target: str | None, tmp: Path
) -> Side:
    dest = Path(tempfile.mkdtemp(prefix="ref-", dir=tmp))
    _archive(ref.spec, ref.root, [ref.project_rel], dest)
    copy = dest / ref.project_rel
    extra = []
    for p in model_paths(copy):
        rel = p.resolve().relative_to(dest.resolve()) if p.is_relative_to(dest.resolve()) else None
        if rel is not None and not p.exists():
            extra.append(rel)
    _archive(ref.spec, ref.root, extra, dest)
    if profiles_dir is None:
        profiles = copy if (copy / "profiles.yml").exists() else project_dir
    else:
        profiles = profiles_dir
    print(f"{ref.spec}: running dbt parse on its project...", file=sys.stderr, flush=True)
    try:  # the checkout's own parse, for dbt to re-read only what differs
        seed: Path | None = (read_project(project_dir.resolve(), profiles_dir, target)
                             .target_path / "partial_parse.msgpack")  # fmt: skip
    except TallyError:
        seed = None
    outcome = run_parse(copy, profiles, dest / ".tally-diff-target", target, seed=seed)
    if outcome.manifest_path is None:
        problems = [f.message for f in event_findings(outcome, copy, Locator([]))]
        raise DiffError(f"{ref.spec}: dbt parse failed: "
                        f"{'; '.join(problems[:3]) or 'unknown error'}")  # fmt: skip
    return Side.read(ref.spec, outcome.manifest_path)


def _archive(ref: str, root: Path, paths: list[Path], dest: Path) -> None:
    present = [p.as_posix() for p in paths if _exists_at(ref, root, p)]
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
