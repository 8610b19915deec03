"""Where the dbt project and profiles.yml are, in dbt's order (tally.project's docstring)."""

from __future__ import annotations

import os
from pathlib import Path

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
