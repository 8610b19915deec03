"""Whether an earlier parse still describes the project, so `tally validate` can skip dbt parse.

Two kinds of earlier parse are reused:

* tally's own (a stamp in the target folder): reused when it was for the same profile target
  and the project's files are the same (each file's path, size and mtime), failed or not;
* dbt's own target/ (`dbt build` or `dbt parse` in CI): reused when

  - dbt wrote it after the last change to any project file *and* to any folder holding them
    (deleting or renaming a file changes its folder's mtime, not any remaining file's);
  - every project file dbt's manifest.json names still exists;
  - it is for the target asked for: dbt's manifest does not record the target's name, so only
    the target dbt uses by default qualifies, and only when the manifest's adapter type is
    that target's.

Anything else is parsed again: a needless parse costs seconds, a stale one a false "clean".
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tally.errors import TallyError
from tally.project import model_paths, read_profile_target, read_project

STAMP = "tally_parse.json"
# Never read by dbt: its outputs, and tally's working folder (.tally: the query history, the
# monitors' state, generated data) and DuckDB's spill folder (.tmp), which a running server
# writes to at any time.
_IGNORED_DIRS = {"target", "dbt_packages", "logs", ".build", "__pycache__", ".git", ".tally",
                 ".tmp"}
_IGNORED_FILES = {"tally.yml", ".sqlfluff", ".sqlfluffignore", ".user.yml"}
# Sections of manifest.json whose entries name the file that defines them.
_SECTIONS = ("nodes", "sources", "macros", "docs", "exposures", "metrics", "groups",
             "semantic_models", "saved_queries", "unit_tests", "functions")  # fmt: skip


@dataclass
class ParseOutcome:
    target_dir: Path
    success: bool
    semantic_ok: bool | None = None  # dbt's own semantic validation (None: not run)
    events: list[dict[str, str]] = field(default_factory=list)
    exception: str | None = None
    reused: bool = False
    seconds: float = 0.0
    fingerprint: str = ""
    target: str | None = None  # the profile target it was parsed for
    # dbt read every file (no partial parse), so `events` holds all of dbt's warnings. A
    # partial parse re-reads only changed files; a reused dbt target/ kept no warnings at all.
    warnings_complete: bool = False
    dbt_target: bool = False  # a target/ dbt wrote itself (`dbt build`, `dbt parse`), reused

    @property
    def manifest_path(self) -> Path | None:
        path = self.target_dir / "semantic_manifest.json"
        return path if self.success and path.exists() else None

    def write_stamp(self) -> None:
        stamp = asdict(self)
        for key in ("target_dir", "reused", "seconds", "dbt_target"):
            stamp.pop(key)
        (self.target_dir / STAMP).write_text(json.dumps(stamp, indent=1))


@dataclass(frozen=True)
class TargetInfo:
    name: str | None  # the profile target asked for (None: the profile cannot be read)
    adapter: str | None  # its adapter type (duckdb, postgres...)
    is_default: bool  # the one dbt uses without --target


def target_info(project_dir: Path, profiles_dir: Path, target: str | None) -> TargetInfo:
    try:
        asked = read_profile_target(project_dir, profiles_dir, target)
        default = read_profile_target(project_dir, profiles_dir, os.environ.get("DBT_TARGET"))
    except (TallyError, OSError, ValueError, KeyError, TypeError):
        return TargetInfo(target, None, False)
    name = str(asked["target_name"])
    return TargetInfo(name, asked.get("type"), name == default["target_name"])


def _walk(project_dir: Path) -> tuple[list[Path], list[Path]]:
    """(every file dbt may read, every folder under the project's roots holding them). The
    project folder itself is not among the folders: dbt, DuckDB and `tally build` create
    and remove files there (target/, logs/, the .wal file) on every run."""
    project = project_dir.resolve()
    files: list[Path] = []
    dirs: list[Path] = []
    seen: set[Path] = set()
    outputs = _dbt_outputs(project_dir)
    for root in [project, *model_paths(project_dir)]:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames
                                 if d not in _IGNORED_DIRS and here / d not in outputs)
            if here != project and here not in seen:
                seen.add(here)
                dirs.append(here)
            for name in sorted(filenames):
                path = here / name
                if name in _IGNORED_FILES or ".duckdb" in name or path in seen:
                    continue
                seen.add(path)
                files.append(path)
    return files, dirs


def _dbt_outputs(project_dir: Path) -> set[Path]:
    """Folders dbt writes rather than reads, by the names the project gives them: its target
    path (`target-path: out`, DBT_TARGET_PATH) and its packages' install path."""
    try:
        project = read_project(project_dir)
    except TallyError:
        return set()
    folders = [project.target_path, project.packages_install_path]
    return {Path(os.path.abspath(f)) for f in folders if f is not None}


def source_files(project_dir: Path) -> list[Path]:
    return _walk(project_dir)[0]


def fingerprint(project_dir: Path, target: str | None = None) -> tuple[str, float]:
    """(a hash of the target's name and every project file's path, size and mtime; the newest
    mtime of those files and of the folders holding them)."""
    files, dirs = _walk(project_dir)
    digest = hashlib.sha256(f"target={target}\n".encode())
    newest = 0.0
    for path in files:
        st = path.stat()
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        newest = max(newest, st.st_mtime)
    for d in dirs:
        newest = max(newest, d.stat().st_mtime)
    return digest.hexdigest()[:16], newest


def missing_files(project_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """The project's own files that dbt's manifest.json names and that no longer exist."""
    project_name = (manifest.get("metadata") or {}).get("project_name")
    paths: set[str] = set()
    for section in _SECTIONS:
        for node in (manifest.get(section) or {}).values():
            if node.get("package_name") != project_name:
                continue
            if node.get("original_file_path"):
                paths.add(node["original_file_path"])
            patch = node.get("patch_path") or ""
            if patch.startswith(f"{project_name}://"):
                paths.add(patch.split("://", 1)[1])
    return sorted(p for p in paths if not (project_dir / p).exists())


def _read_stamp(target_dir: Path) -> ParseOutcome | None:
    try:
        data = json.loads((target_dir / STAMP).read_text())
    except (OSError, ValueError):
        return None
    known = {f.name for f in fields(ParseOutcome)} - {"target_dir", "reused", "seconds",
                                                      "dbt_target"}  # fmt: skip
    kwargs = {k: v for k, v in data.items() if k in known}
    kwargs["success"] = bool(kwargs.get("success"))
    return ParseOutcome(target_dir=target_dir, reused=True, **kwargs)


def fresh_outcome(
    project_dir: Path, target_dir: Path, target: TargetInfo
) -> tuple[ParseOutcome | None, str]:
    """(the outcome of an earlier parse that still describes the project, or None; why not)."""
    fp, newest = fingerprint(project_dir, target.name)
    stamp_path = target_dir / STAMP
    outcome = _read_stamp(target_dir)
    # A stamp whose manifest has since been removed describes nothing: parse again.
    if outcome and outcome.fingerprint == fp and (outcome.manifest_path or not outcome.success):
        return outcome, ""
    semantic, manifest = target_dir / "semantic_manifest.json", target_dir / "manifest.json"
    if not (semantic.exists() and manifest.exists()):
        return None, "no earlier parse"
    written = min(semantic.stat().st_mtime, manifest.stat().st_mtime)
    if stamp_path.exists() and written <= stamp_path.stat().st_mtime:
        return None, "the project changed since tally's last parse"
    if written < newest:
        return None, "a project file or folder changed after dbt wrote it"
    if target.name is None or not target.is_default:
        return None, f"it may be for another target than '{target.name}' (dbt's manifest " \
                     "does not say which)"  # fmt: skip
    try:
        dbt_manifest = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None, "its manifest.json cannot be read"
    adapter = (dbt_manifest.get("metadata") or {}).get("adapter_type")
    if adapter != target.adapter:
        return None, f"it was parsed for a {adapter} target, not {target.adapter}"
    gone = missing_files(project_dir, dbt_manifest)
    if gone:
        more = f" and {len(gone) - 1} more files no longer exist" if len(gone) > 1 else ""
        return None, f"{gone[0]}{more or ' no longer exists'}"
    reused = ParseOutcome(target_dir=target_dir, success=True, reused=True, fingerprint=fp,
                          target=target.name, dbt_target=True)  # fmt: skip
    return reused, ""
