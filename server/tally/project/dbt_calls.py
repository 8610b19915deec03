"""The calls into dbt-core's own config loader (dbt.config), kept apart from dbt's process state.

tally does not call `Project.from_project_root`, `RuntimeConfig` or `dbtRunner` whole:

* `PartialProject.create_project` and `Profile.__init__` read dbt's process-global flags
  (`get_flags().TARGET_PATH`, `.LOG_PATH`, `.LOG_CACHE_EVENTS`), which only a dbt command
  sets: setting them in a long-running server would be shared by every thread, and by any
  later dbt call in the process;
* they fire events through dbt's global event manager (a deprecation warning for a
  `target-path` key, "no target given" for a profile without `target:`), which prints dbt's
  log lines on stdout;
* `RuntimeConfig` registers the adapter in dbt's global adapter factory, and `dbtRunner`
  parses the whole project (seconds, where loading happens on every start and command).

So tally calls the steps under them, all dbt's own: its YAML reading (`load_raw_project`,
packages, selectors), its renderers (`DbtProjectYamlRenderer.should_render_keypath` decides
which keys render at load time; `Profile.render_profile` picks and renders only the chosen
target with `ProfileRenderer`), the adapter's credentials class, and the checks
`create_project` makes (`require-dbt-version`, the project contract, packages, selectors).
The two values that depend on dbt's flags are computed from the sources dbt reads them from:
the target path (DBT_TARGET_PATH, else `target-path`, else target) and whether to check the
dbt version (DBT_VERSION_CHECK, else the project's `flags: {version_check}`, else yes).

Every call runs in a copy of the caller's contextvars, with dbt's invocation context (which
`env_var()` reads) made from os.environ, under one lock: nothing of it outlives the call.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tally.errors import ConfigurationError
from tally.project.locate import PROJECT_FILE
from tally.project.messages import (
    KeyFailed,
    dbt_words,
    render_failure,
    yaml_problem,
)

T = TypeVar("T")
_LOCK = threading.RLock()
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def isolated(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) with dbt's invocation context set from os.environ, in a context of its own."""

    def run() -> T:
        from dbt_common.context import set_invocation_context

        set_invocation_context(os.environ)
        return fn(*args)

    with _LOCK:
        return contextvars.copy_context().run(run)


def keyed(cls: type) -> type:
    """A dbt renderer that says which key it could not render."""

    class Keyed(cls):  # type: ignore[valid-type, misc]
        def render_entry(self, value: Any, keypath: tuple) -> Any:
            try:
                return super().render_entry(value, keypath)
            except KeyFailed:
                raise
            except Exception as e:
                raise KeyFailed(keypath, value, e) from e

        def get_package_renderer(self) -> Any:
            from dbt.config.renderer import PackageRenderer

            return keyed(PackageRenderer)(self.ctx_obj.cli_vars)

    return Keyed


# dbt_project.yml, packages.yml, selectors.yml ------------------------------------------------


def read_partial(project_dir: Path) -> Any:
    """dbt's PartialProject: the three files read by dbt's loader, nothing rendered yet."""
    from dbt.config.project import (
        PartialProject,
        load_raw_project,
        load_yml_dict,
        package_and_project_data_from_root,
    )
    from dbt.config.selectors import selector_data_from_root
    from dbt_common.exceptions import DbtConfigError, DbtValidationError

    root = str(project_dir)
    path = project_dir / PROJECT_FILE
    try:
        project_dict = load_raw_project(root)
    except DbtValidationError as e:
        raise ConfigurationError(f"{path} is not valid YAML: {yaml_problem(e)}.") from None
    except DbtConfigError as e:
        raise ConfigurationError(f"{path}: {dbt_words(e)}.") from None
    try:
        packages, packages_path = package_and_project_data_from_root(root)
    except (DbtValidationError, DbtConfigError) as e:
        for name in ("packages.yml", "dependencies.yml"):
            try:
                load_yml_dict(str(project_dir / name))
            except DbtValidationError as inner:
                raise ConfigurationError(f"{project_dir / name} is not valid YAML: "
                                         f"{yaml_problem(inner)}.") from None  # fmt: skip
        raise ConfigurationError(f"{project_dir / 'packages.yml'}: {dbt_words(e)}.") from None
    try:
        selectors = selector_data_from_root(root)
    except DbtValidationError as e:
        raise ConfigurationError(f"{project_dir / 'selectors.yml'} is not valid YAML: "
                                 f"{yaml_problem(e)}.") from None  # fmt: skip
    return PartialProject.from_dicts(
        project_root=root,
        project_dict=project_dict,
        packages_dict=packages,
        selectors_dict=selectors,
        packages_specified_path=packages_path,
    )


def render_profile_name(partial: Any, path: Path) -> str | None:
    """The `profile:` of dbt_project.yml, rendered as dbt renders it (its profile renderer)."""
    from dbt.config.renderer import ProfileRenderer

    if partial.profile_name is None:
        return None
    try:
        name = ProfileRenderer({}).render_value(partial.profile_name)
    except Exception as e:
        raise render_failure(path, KeyFailed(("profile",), partial.profile_name, e),
                             "") from None
    return None if name is None else str(name)


@dataclass(frozen=True)
class RenderedProject:
    data: dict[str, Any]  # dbt_project.yml as dbt holds it: vars, hooks, query-comment as text
    name: str
    profile: str | None
    target_path: str
    model_paths: list[str]
    packages_install_path: str


def render_project(
    partial: Any, project_dir: Path, target: dict[str, Any] | None, profiles_dir: Path | None
) -> RenderedProject:
    """dbt_project.yml (and packages.yml, selectors.yml) rendered by dbt's project renderer with
    the target's context (None: without a profile, as `dbt deps` renders it), then checked as
    dbt's create_project checks it."""
    from dbt.config.project import package_config_from_data
    from dbt.config.renderer import DbtProjectYamlRenderer
    from dbt.config.selectors import selector_config_from_data
    from dbt.contracts.project import Project as ProjectContract
    from dbt.exceptions import ProjectContractError
    from dbt_common.dataclass_schema import ValidationError
    from dbt_common.exceptions import DbtConfigError

    path = project_dir / PROJECT_FILE
    renderer = keyed(DbtProjectYamlRenderer)(_Target(target) if target else None, {})
    where = "" if target else " (here without a profile: no profiles.yml was found)"
    rendered: dict[str, Any] = {}
    for name, render, data in (
        (PROJECT_FILE, lambda d: renderer.render_project(d, str(project_dir)),
         partial.project_dict),
        (partial.packages_specified_path,
         lambda d: renderer.render_packages(d, partial.packages_specified_path),
         partial.packages_dict),
        ("selectors.yml", renderer.render_selectors, partial.selectors_dict),
    ):  # fmt: skip
        try:
            rendered[name] = render(data)
        except KeyFailed as failed:
            raise render_failure(project_dir / name, failed, where) from None
        except DbtConfigError as e:  # a cycle, in dbt's words
            raise ConfigurationError(f"{project_dir / name}: {dbt_words(e)}.") from None
    project = rendered[PROJECT_FILE]
    for old, new in (("source-paths", "model-paths"), ("data-paths", "seed-paths")):
        if old in project and new in project:
            raise ConfigurationError(
                f"{path}: {old} and {new} cannot both be defined (dbt refuses it too): keep "
                f"{new}."
            )
    _check_version(project, path, project_dir, profiles_dir)
    try:
        ProjectContract.validate(project)
        cfg = ProjectContract.from_dict(project)
    except ValidationError as e:
        raise ConfigurationError(
            f"{path}: {dbt_words(ProjectContractError(e))} (dbt refuses it too: `dbt parse` "
            "says the same)."
        ) from None
    try:
        package_config_from_data(rendered[partial.packages_specified_path],
                                 partial.packages_dict)  # fmt: skip
    except DbtConfigError as e:
        raise ConfigurationError(f"{project_dir / partial.packages_specified_path}: "
                                 f"{dbt_words(e)}.") from None  # fmt: skip
    try:
        selector_config_from_data(rendered["selectors.yml"])
    except DbtConfigError as e:
        raise ConfigurationError(f"{project_dir / 'selectors.yml'}: {dbt_words(e)}.") from None
    model_paths = cfg.model_paths if "model-paths" in project else cfg.source_paths
    return RenderedProject(
        data=project,
        name=cfg.name,
        profile=cfg.profile,
        # dbt: the --target-path flag (its variable DBT_TARGET_PATH), else the key, else target.
        target_path=os.environ.get("DBT_TARGET_PATH") or cfg.target_path or "target",
        model_paths=list(model_paths or ["models"]),
        packages_install_path=cfg.packages_install_path or "dbt_packages",
    )


class _Target:
    """What DbtProjectYamlRenderer asks of a profile: the `target` of its Jinja context."""

    def __init__(self, target: dict[str, Any]) -> None:
        self._target = target

    def to_target_dict(self) -> dict[str, Any]:
        return dict(self._target)


def _check_version(
    project: dict[str, Any], path: Path, project_dir: Path, profiles_dir: Path | None
) -> None:
    """`require-dbt-version` against the dbt installed beside tally, when dbt would check it."""
    # Private to dbt.config.project, and the very check create_project makes; dbt-core is
    # pinned to 1.11.x in pyproject.toml.
    from dbt.config.project import _get_required_version
    from dbt.version import get_installed_version
    from dbt_common.exceptions import DbtConfigError

    if "name" not in project:
        raise ConfigurationError(f"{path} has no `name:`; dbt needs one (so does tally).")
    try:
        verify = _version_check(project, path, project_dir, profiles_dir)
        _get_required_version(project, verify_version=verify)
    except DbtConfigError as e:
        installed = get_installed_version().to_version_string(skip_matcher=True)
        raise ConfigurationError(
            f"{path}: require-dbt-version: {dbt_words(e)}. tally reads the project with the "
            f"dbt installed beside it ({installed}): install tally beside a dbt the project "
            "accepts, or set DBT_VERSION_CHECK=false to skip the check, as for dbt."
        ) from None


def _version_check(
    project: dict[str, Any], path: Path, project_dir: Path, profiles_dir: Path | None
) -> bool:
    """dbt's --version-check: DBT_VERSION_CHECK, else the project's flags, else True."""
    from dbt.config.project import read_project_flags
    from dbt_common.exceptions import DbtConfigError

    env = os.environ.get("DBT_VERSION_CHECK")
    if env is not None and env.strip():
        value = env.strip().lower()
        if value not in _TRUE | _FALSE:
            raise ConfigurationError(
                f"DBT_VERSION_CHECK={env!r} is not a boolean (dbt refuses it too): use true "
                "or false."
            )
        return value in _TRUE
    if "flags" not in project:
        return True
    try:  # dbt's own reading of the flags (it also refuses `config:` in profiles.yml beside)
        flags = read_project_flags(str(project_dir), str(profiles_dir or project_dir))
    except DbtConfigError as e:
        raise ConfigurationError(f"{path}: flags: {dbt_words(e)}.") from None
    return flags.version_check is not False
