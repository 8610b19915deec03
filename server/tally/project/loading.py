"""dbt_project.yml and the profile's target, read through dbt's loader (dbt_calls.py), cached
until a file or the environment changes."""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tally.errors import ConfigurationError, TallyError
from tally.project import dbt_calls, dbt_profile
from tally.project.locate import PROFILES_FILE, PROJECT_FILE, find_profiles_dir
from tally.project.messages import bug

# The files dbt reads to load a project, beside dbt_project.yml.
_PROJECT_FILES = (PROJECT_FILE, "packages.yml", "dependencies.yml", "selectors.yml")
_CACHE_SIZE = 32


@dataclass(frozen=True)
class ProjectConfig:
    """dbt_project.yml as dbt holds it after loading."""

    project_dir: Path
    name: str
    profile: str
    target_path: Path
    # The file with the keys dbt renders at load time rendered; `vars:`, hooks and
    # `query-comment` are text, as dbt keeps them until a model uses them (read_var reads one).
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    model_paths: tuple[Path, ...] = ()
    packages_install_path: Path | None = None
    # `target` of dbt's Jinja context (None when no profiles.yml was found).
    target: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def vars(self) -> dict[str, Any]:
        value = self.raw.get("vars")
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class _Loaded:
    project: ProjectConfig
    output: dict[str, Any] | None  # the target's rendered output, "target_name" first
    profiles_problem: ConfigurationError | None  # why there is no output


_cache: OrderedDict[tuple, _Loaded] = OrderedDict()
_cache_lock = threading.Lock()


def read_project(
    project_dir: Path, profiles_dir: Path | str | None = None, target: str | None = None
) -> ProjectConfig:
    """dbt_project.yml, rendered by dbt with the target's context when the profile is found
    (without one when no profiles.yml is found anywhere, as `dbt deps` reads a project)."""
    return _load(project_dir, profiles_dir, target).project


def model_paths(
    project_dir: Path, profiles_dir: Path | str | None = None, target: str | None = None
) -> list[Path]:
    """The folders dbt reads models and semantic YAML from (`model-paths`), as dbt reads them;
    from the file's own text when dbt cannot load the project, so that what sits in those
    folders (dashboards, monitors, what validate locates) is still found while the project's
    error is reported where it matters (serving, validate)."""
    project_dir = Path(project_dir).resolve()
    try:
        return list(read_project(project_dir, profiles_dir, target).model_paths)
    except TallyError:
        pass
    paths: Any = None
    try:
        data = yaml.safe_load((project_dir / PROJECT_FILE).read_text())
        if isinstance(data, dict):
            paths = data.get("model-paths") or data.get("source-paths")
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        pass
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        paths = ["models"]
    return [(project_dir / p).resolve() for p in paths]


def read_profile_target(
    project_dir: Path, profiles_dir: Path | str | None = None, target: str | None = None
) -> dict[str, Any]:
    """The rendered output of the project's profile for `target` (default: TALLY_TARGET,
    DBT_TARGET, then the profile's own, else dbt's "default"), its name under "target_name"."""
    loaded = _load(project_dir, profiles_dir, target)
    if loaded.output is None:
        assert loaded.profiles_problem is not None
        raise loaded.profiles_problem
    return copy.deepcopy(loaded.output)


def _load(project_dir: Path, profiles_dir: Path | str | None, target: str | None) -> _Loaded:
    project_dir = Path(project_dir).resolve()
    target = target or os.environ.get("TALLY_TARGET") or os.environ.get("DBT_TARGET") or None
    try:
        found: Path | None = find_profiles_dir(project_dir, profiles_dir)
        problem = None
    except ConfigurationError as e:
        if profiles_dir:  # a folder given by name must hold profiles.yml
            raise
        found, problem = None, e
    key = _key(project_dir, found, target)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        loaded = dbt_calls.isolated(_read, project_dir, found, target, problem)
    except TallyError:
        raise
    except Exception as e:  # dbt's loader raised what tally does not expect: tally's fault
        if os.environ.get("TALLY_DEBUG"):
            raise
        raise bug(project_dir / PROJECT_FILE, e) from e
    with _cache_lock:
        _cache[key] = loaded
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return loaded


def _read(
    project_dir: Path, profiles_dir: Path | None, target: str | None,
    problem: ConfigurationError | None,
) -> _Loaded:  # fmt: skip
    path = project_dir / PROJECT_FILE
    partial = dbt_calls.read_partial(project_dir)
    profile_name = dbt_calls.render_profile_name(partial, path)
    if not profile_name:
        raise ConfigurationError(f"{path} names no `profile:`; dbt needs one, and so does tally.")
    rendered_target = None
    if profiles_dir is not None:
        rendered_target = dbt_profile.render_target(profiles_dir, profile_name, path, target)
    try:
        project = dbt_calls.render_project(
            partial, project_dir, rendered_target.context if rendered_target else None,
            profiles_dir,
        )  # fmt: skip
    except ConfigurationError as e:
        # A key that needs `target` without a profile: the missing profile is the problem.
        if problem is not None and "'target' is undefined" in e.message:
            raise problem from None
        raise
    target_path = Path(project.target_path)
    config = ProjectConfig(
        project_dir=project_dir,
        name=project.name,
        profile=profile_name,
        target_path=target_path if target_path.is_absolute() else project_dir / target_path,
        raw=project.data,
        model_paths=tuple((project_dir / p).resolve() for p in project.model_paths),
        packages_install_path=project_dir / project.packages_install_path,
        target=rendered_target.context if rendered_target else None,
    )
    output = None
    if rendered_target is not None:
        output = {"target_name": rendered_target.name, **rendered_target.output}
    return _Loaded(config, output, problem)


def _key(project_dir: Path, profiles_dir: Path | None, target: str | None) -> tuple:
    """What a load depends on: the files' contents (not their times: a file rewritten within
    the clock's resolution must not read as unchanged) and the environment (env_var())."""
    digest = hashlib.sha256()
    files = [project_dir / name for name in _PROJECT_FILES]
    if profiles_dir is not None:
        files.append(profiles_dir / PROFILES_FILE)
    for path in files:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0absent")
        digest.update(b"\0")
    for name, value in sorted(os.environ.items()):
        digest.update(f"{name}={value}\0".encode())
    return (project_dir, profiles_dir, target, digest.hexdigest())
