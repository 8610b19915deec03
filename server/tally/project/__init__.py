"""The dbt project tally serves, found the way dbt finds it and read by dbt's own loader.

* Project folder: --project-dir, else TALLY_PROJECT_DIR, else DBT_PROJECT_DIR, else the
  current directory when it holds dbt_project.yml, else ./dbt_project (locate.py).
* profiles.yml: --profiles-dir, else TALLY_PROFILES_DIR, else DBT_PROFILES_DIR, else the
  project folder, else ~/.dbt/ (locate.py).
* The profile named in dbt_project.yml; the target from --target, else TALLY_TARGET, else
  DBT_TARGET, else the profile's own `target:` (else dbt's "default"). Only that target is
  rendered, by dbt's profile renderer (`env_var()`, `as_number`, `as_bool`, secrets...), and
  checked by the adapter's own credentials class when the adapter is installed (loading.py,
  dbt_calls.py, dbt_profile.py).
* dbt_project.yml rendered by dbt's project renderer with the target's context: the keys dbt
  renders at load time are rendered, `vars:`, hooks and `query-comment` stay text, as dbt
  keeps them until a model uses them. `require-dbt-version` is checked (DBT_VERSION_CHECK and
  `flags: {version_check: ...}` as for dbt). A var is read with read_var (variables.py).
* dbt's output folder (where the manifest is): DBT_TARGET_PATH, else dbt_project.yml's
  `target-path`, else target/, relative to the project folder.

Errors are one line naming the file, the key and the fix (messages.py).
"""

from __future__ import annotations

from tally.project.loading import (
    ProjectConfig,
    model_paths,
    read_profile_target,
    read_project,
)
from tally.project.locate import (
    PROFILES_FILE,
    PROJECT_FILE,
    find_profiles_dir,
    find_project_dir,
)
from tally.project.variables import read_var

__all__ = [
    "PROFILES_FILE",
    "PROJECT_FILE",
    "ProjectConfig",
    "find_profiles_dir",
    "find_project_dir",
    "model_paths",
    "read_profile_target",
    "read_project",
    "read_var",
]
