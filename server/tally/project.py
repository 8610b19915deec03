"""The dbt project tally serves and its profile: the project's own settings and the rendered
profile output of the target, so tally points where dbt points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
import yaml

from tally.errors import ConfigurationError


def read_profile_target(
    project_dir: Path, profiles_dir: Path, target: str | None = None
) -> dict[str, Any]:
    """The rendered output of the project's profile for `target` (default: the profile's)."""
    project_file = project_dir / "dbt_project.yml"
    profiles_file = profiles_dir / "profiles.yml"
    for f in (project_file, profiles_file):
        if not f.exists():
            raise ConfigurationError(
                f"{f} not found: is --project-dir pointing at a dbt project?"
            )
    profile_name = yaml.safe_load(project_file.read_text())["profile"]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals["env_var"] = _env_var
    env.filters["as_number"] = lambda v: float(v) if "." in str(v) else int(v)
    env.filters["as_bool"] = lambda v: str(v).lower() in ("1", "true", "yes")
    rendered = env.from_string(profiles_file.read_text()).render()
    profiles = yaml.safe_load(rendered) or {}
    if profile_name not in profiles:
        raise ConfigurationError(f"Profile {profile_name!r} is not in {profiles_file}.")
    profile = profiles[profile_name]
    name = target or os.environ.get("TALLY_TARGET") or profile.get("target", "dev")
    outputs = profile.get("outputs", {})
    if name not in outputs:
        raise ConfigurationError(
            f"Target {name!r} is not in profile {profile_name!r}; targets: {sorted(outputs)}."
        )
    return {"target_name": name, **outputs[name]}


def _env_var(name: str, default: str | None = None) -> str:
    if name in os.environ:
        return os.environ[name]
    if default is None:
        raise ConfigurationError(f"The dbt profile needs environment variable {name}.")
    return default
