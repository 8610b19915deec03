"""The dbt project tally serves, found the way dbt finds it, and its profile.

* Project folder: --project-dir, else TALLY_PROJECT_DIR, else DBT_PROJECT_DIR, else the
  current directory when it holds dbt_project.yml, else ./dbt_project.
* profiles.yml: --profiles-dir, else TALLY_PROFILES_DIR, else DBT_PROFILES_DIR, else the
  project folder, else ~/.dbt/.
* The profile named in dbt_project.yml; the target from --target, else TALLY_TARGET, else
  DBT_TARGET, else the profile's own `target:`. `env_var()` (and dbt's `as_number`, `as_bool`,
  `as_text`, `as_native` filters) rendered as dbt renders them.
* dbt's output folder (where the manifest is): DBT_TARGET_PATH, else dbt_project.yml's
  `target-path`, else target/, relative to the project folder.

Errors name what was looked at, in order, and the fix, in one line.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nativetypes
import yaml

from tally.errors import ConfigurationError

PROJECT_FILE = "dbt_project.yml"
PROFILES_FILE = "profiles.yml"


def find_project_dir(given: Path | str | None = None) -> Path:
    """The dbt project folder (see the module's docstring for the order)."""
    looked: list[str] = []
    for source, value in (
        ("--project-dir/TALLY_PROJECT_DIR", given),
        ("DBT_PROJECT_DIR", os.environ.get("DBT_PROJECT_DIR")),
    ):
        if value:
            path = Path(value).expanduser().resolve()
            if (path / PROJECT_FILE).is_file():
                return path
            raise ConfigurationError(
                f"{path} (from {source}) is not a dbt project: it has no {PROJECT_FILE}. "
                "Point it at the folder of dbt_project.yml."
            )
        looked.append(f"{source} (not set)")
    for path in (Path.cwd(), Path.cwd() / "dbt_project"):
        if (path / PROJECT_FILE).is_file():
            return path.resolve()
        looked.append(f"{path} (no {PROJECT_FILE})")
    raise ConfigurationError(
        f"No dbt project found; looked at {', '.join(looked)}. Run tally in the folder of "
        "dbt_project.yml, or pass --project-dir (or set DBT_PROJECT_DIR)."
    )


def find_profiles_dir(project_dir: Path, given: Path | str | None = None) -> Path:
    """The folder of profiles.yml (see the module's docstring for the order)."""
    looked: list[str] = []
    for source, value in (
        ("--profiles-dir/TALLY_PROFILES_DIR", given),
        ("DBT_PROFILES_DIR", os.environ.get("DBT_PROFILES_DIR")),
    ):
        if value:
            path = Path(value).expanduser().resolve()
            if (path / PROFILES_FILE).is_file():
                return path
            raise ConfigurationError(
                f"{path / PROFILES_FILE} (from {source}) not found: point it at the folder "
                f"of your {PROFILES_FILE}."
            )
        looked.append(f"{source} (not set)")
    for path in (project_dir, Path.home() / ".dbt"):
        if (path / PROFILES_FILE).is_file():
            return path.resolve()
        looked.append(f"{path} (no {PROFILES_FILE})")
    raise ConfigurationError(
        f"{PROFILES_FILE} not found; looked at {', '.join(looked)}. Pass --profiles-dir or "
        "set DBT_PROFILES_DIR to its folder, as for dbt."
    )


@dataclass(frozen=True)
class ProjectConfig:
    """dbt_project.yml, read."""

    project_dir: Path
    name: str
    profile: str
    target_path: Path
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def read_project(project_dir: Path) -> ProjectConfig:
    path = project_dir / PROJECT_FILE
    try:
        data = _render_values(yaml.safe_load(path.read_text()) or {}, path)
    except OSError as e:
        raise ConfigurationError(f"Cannot read {path}: {e.strerror}.") from None
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{path} is not valid YAML: {_yaml_problem(e)}.") from None
    if not isinstance(data, dict) or not data.get("profile"):
        raise ConfigurationError(f"{path} names no `profile:`; dbt needs one, and so does tally.")
    target_path = os.environ.get("DBT_TARGET_PATH") or data.get("target-path") or "target"
    resolved = Path(target_path)
    return ProjectConfig(
        project_dir=project_dir,
        name=str(data.get("name", project_dir.name)),
        profile=str(data["profile"]),
        target_path=resolved if resolved.is_absolute() else project_dir / resolved,
        raw=data,
    )


def read_profile_target(
    project_dir: Path, profiles_dir: Path | None = None, target: str | None = None
) -> dict[str, Any]:
    """The rendered output of the project's profile for `target` (default: TALLY_TARGET,
    DBT_TARGET, then the profile's own), with its name under "target_name"."""
    profiles_dir = profiles_dir or find_profiles_dir(project_dir)
    profile_name = read_project(project_dir).profile
    profiles_file = profiles_dir / PROFILES_FILE
    if not profiles_file.is_file():
        raise ConfigurationError(
            f"{profiles_file} not found: is --profiles-dir pointing at the folder of "
            f"{PROFILES_FILE}?"
        )
    try:
        profiles = _render_values(yaml.safe_load(profiles_file.read_text()) or {}, profiles_file)
    except yaml.YAMLError as e:
        raise ConfigurationError(
            f"{profiles_file} is not valid YAML: {_yaml_problem(e)}."
        ) from None
    if not isinstance(profiles, dict) or profile_name not in profiles:
        known = sorted(k for k in profiles if k != "config") if isinstance(profiles, dict) else []
        raise ConfigurationError(
            f"Profile {profile_name!r} (named in {project_dir / PROJECT_FILE}) is not in "
            f"{profiles_file}; profiles there: {', '.join(known) or 'none'}."
        )
    profile = profiles[profile_name] or {}
    name = (
        target
        or os.environ.get("TALLY_TARGET")
        or os.environ.get("DBT_TARGET")
        or profile.get("target")
        or "dev"
    )
    outputs = profile.get("outputs") or {}
    if name not in outputs:
        raise ConfigurationError(
            f"Target {name!r} is not in profile {profile_name!r} ({profiles_file}); targets: "
            f"{', '.join(sorted(outputs)) or 'none'}."
        )
    return {"target_name": name, **outputs[name]}


_NATIVE = ("as_number", "as_bool", "as_native")


def _render_values(node: Any, path: Path) -> Any:
    """Every string value rendered as dbt renders it: after YAML parsing, value by value, and
    to a native type (a number, a boolean) where a filter asks for one."""
    if isinstance(node, dict):
        return {k: _render_values(v, path) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_values(v, path) for v in node]
    if not isinstance(node, str) or ("{{" not in node and "{%" not in node):
        return node
    native = any(f in node for f in _NATIVE)
    env_class = jinja2.nativetypes.NativeEnvironment if native else jinja2.Environment
    env = env_class(undefined=jinja2.StrictUndefined)
    env.globals["env_var"] = _env_var
    env.filters["as_number"] = _as_number
    env.filters["as_bool"] = lambda v: str(v).strip().lower() in ("1", "true", "yes", "on")
    env.filters["as_text"] = str
    env.filters["as_native"] = _as_native
    try:
        return env.from_string(node).render()
    except ConfigurationError:
        raise
    except jinja2.TemplateError as e:
        raise ConfigurationError(f"{path}: cannot render {node!r}: {e}.") from None


def _env_var(name: str, default: str | None = None) -> str:
    if name in os.environ:
        return os.environ[name]
    if default is None:
        raise ConfigurationError(
            f"The dbt project or profile needs environment variable {name} (env_var('{name}') "
            "has no default): set it, as for dbt."
        )
    return str(default)


def _as_number(value: Any) -> int | float:
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ConfigurationError(f"as_number: {text!r} is not a number.") from None


def _as_native(value: Any) -> Any:
    try:
        return ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        return value


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem
