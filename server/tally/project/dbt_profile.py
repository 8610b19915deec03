"""profiles.yml through dbt's own profile loader: only the chosen target rendered
(`Profile.render_profile` with `ProfileRenderer`), its credentials checked by the adapter's
class when the adapter is installed. Called inside dbt_calls.isolated (its docstring says why
these steps and not `Profile.render` whole)."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.errors import ConfigurationError
from tally.project.dbt_calls import keyed
from tally.project.locate import PROFILES_FILE
from tally.project.messages import KeyFailed, dbt_words, one_line, render_failure, yaml_problem

# Output keys kept out of the `target` that dbt_project.yml sees when the adapter is not
# installed (with it, the adapter's own connection keys are used, as dbt does).
_SECRET = re.compile(r"pass|secret|token|private|key", re.IGNORECASE)


@dataclass(frozen=True)
class RenderedTarget:
    name: str
    output: dict[str, Any]  # the target's output rendered by dbt (type, threads included)
    context: dict[str, Any]  # `target` as dbt_project.yml's Jinja sees it


def render_target(
    profiles_dir: Path, profile_name: str, project_file: Path, target: str | None
) -> RenderedTarget:
    """The chosen target of the profile, rendered by dbt (only that one, as dbt does)."""
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.exceptions import DbtConfigError, DbtValidationError

    file = profiles_dir / PROFILES_FILE
    try:
        profiles = read_profile(str(profiles_dir))
    except DbtValidationError as e:
        raise ConfigurationError(f"{file} is not valid YAML: {yaml_problem(e)}.") from None
    except DbtConfigError as e:
        raise ConfigurationError(f"{file}: {dbt_words(e)}.") from None
    if not isinstance(profiles, dict) or profile_name not in profiles:
        known = sorted(k for k in profiles if k != "config") if isinstance(profiles, dict) else []
        raise ConfigurationError(
            f"Profile {profile_name!r} (named in {project_file}) is not in {file}; profiles "
            f"there: {', '.join(known) or 'none'}."
        )
    raw = profiles[profile_name]
    if not isinstance(raw, dict) or not raw:
        raise ConfigurationError(f"{file}: profile {profile_name!r} is empty (dbt refuses it "
                                 "too): give it `target:` and `outputs:`.")  # fmt: skip
    renderer = keyed(ProfileRenderer)({})
    name: Any = target
    if name is None:
        try:  # dbt renders the target's name first, then only that target
            name = renderer.render_value(raw["target"]) if "target" in raw else "default"
        except Exception as e:
            raise render_failure(file, KeyFailed((profile_name, "target"), raw["target"], e),
                                 "") from None  # fmt: skip
    name = str(name)
    outputs = raw.get("outputs")
    if not isinstance(outputs, dict):
        raise ConfigurationError(f"{file}: {profile_name}.outputs: outputs not specified in "
                                 f"profile '{profile_name}' (dbt refuses it too).")  # fmt: skip
    if name not in outputs:
        why = (" (dbt's default when the profile has no `target:`; set one, or pass --target)"
               if target is None and "target" not in raw else "")
        raise ConfigurationError(
            f"Target {name!r}{why} is not in profile {profile_name!r} ({file}); targets: "
            f"{', '.join(sorted(map(str, outputs))) or 'none'}."
        )
    try:
        _, output = Profile.render_profile(raw, profile_name, name, renderer)
    except KeyFailed as failed:
        at = KeyFailed((profile_name, "outputs", name, *failed.keypath), failed.value,
                       failed.error)  # fmt: skip
        raise render_failure(file, at, "") from None
    except DbtConfigError as e:
        raise ConfigurationError(f"{file}: {profile_name}.outputs.{name}: "
                                 f"{dbt_words(e)}.") from None
    return RenderedTarget(name, dict(output),
                          _target_context(file, profile_name, name, output))  # fmt: skip


def _target_context(
    file: Path, profile_name: str, target_name: str, output: dict[str, Any]
) -> dict[str, Any]:
    """`target` of dbt's Jinja context (Profile.to_target_dict), the credentials checked by the
    adapter's own class when it is installed. Without it (tally may serve a manifest parsed
    elsewhere, through an engine of its own), the output's keys stand in, secrets left out."""
    from dbt_common.dataclass_schema import ValidationError
    from dbt_common.exceptions import DbtRuntimeError

    data = dict(output)
    threads = data.pop("threads", 1)
    adapter = data.pop("type", None)
    where = f"{file}: {profile_name}.outputs.{target_name}"
    if adapter is None:
        raise ConfigurationError(f"{where}: required field \"type\" not found in profile "
                                 f"{profile_name} and target {target_name} (dbt refuses it "
                                 "too): add the adapter's `type:`.")  # fmt: skip
    try:
        plugin = importlib.import_module(f"dbt.adapters.{adapter}").Plugin
    except (ImportError, AttributeError):
        plugin = None
    if plugin is None:
        info = {k: v for k, v in data.items() if not _SECRET.search(str(k))}
    else:
        cls = plugin.credentials
        try:
            checked = cls.translate_aliases(data)
            cls.validate(checked)
            info = dict(cls.from_dict(checked).connection_info(with_aliases=True))
        except (DbtRuntimeError, ValidationError) as e:
            problem = one_line(e.message if isinstance(e, ValidationError) else dbt_words(e))
            raise ConfigurationError(
                f"{where}: Credentials in profile \"{profile_name}\", target "
                f"\"{target_name}\" invalid: {problem} (dbt refuses them too): fix the output."
            ) from None
    if not isinstance(threads, int) or isinstance(threads, bool):
        raise ConfigurationError(f"{where}.threads: {threads!r} is not a whole number (dbt "
                                 "refuses it too).")  # fmt: skip
    return {**info, "type": adapter, "threads": threads, "name": target_name,
            "target_name": target_name, "profile_name": profile_name}  # fmt: skip
