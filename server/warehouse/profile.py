"""Connection settings from the dbt profile, so tally points where dbt points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
import yaml

from server.core.errors import ConfigurationError
from server.warehouse.base import Warehouse


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


def postgres_connection(output: dict[str, Any]) -> dict[str, Any]:
    """psycopg2 connection arguments of a dbt postgres output."""
    return {
        "host": output.get("host"),
        "port": output.get("port"),
        "user": output.get("user"),
        "password": output.get("password") or output.get("pass"),
        "dbname": output.get("dbname") or output.get("database"),
    }


def connect(project_dir: Path, profiles_dir: Path, target: str | None = None) -> Warehouse:
    """A Warehouse for the profile's target. dbt resolves relative DuckDB paths from the folder
    dbt runs in, which for this project is the project folder."""
    output = read_profile_target(project_dir, profiles_dir, target)
    kind = output.get("type")
    if kind == "duckdb":
        from server.warehouse.duckdb import DuckDBWarehouse

        path = Path(str(output.get("path", "warehouse.duckdb")))
        return DuckDBWarehouse(path if path.is_absolute() else project_dir / path)
    if kind == "postgres":
        from server.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(**postgres_connection(output))
    raise ConfigurationError(
        f"tally has no warehouse driver for dbt adapter type {kind!r} yet (supported: duckdb, "
        "postgres). Add a module under server/warehouse/ implementing the Warehouse protocol."
    )
