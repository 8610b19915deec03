"""A var of dbt_project.yml, read outside dbt.

dbt keeps `vars:` as text and renders a var when a model calls `var()`, with the model's whole
context: macros, adapter, `this`. tally reads a var (the monitors' `as_of_date`) outside any
model, so it renders it with dbt's own `var()` over dbt's base context (env_var, var, modules,
run_started_at, target, dbt's filters) and no macros. A plain value or such simple Jinja reads
as dbt would read it; a var that needs a macro is reported as that, with what to do instead,
never as a mistake of the project (dbt renders it fine inside a model).
"""

from __future__ import annotations

from typing import Any

from tally.errors import ConfigurationError
from tally.project.dbt_calls import isolated
from tally.project.loading import ProjectConfig
from tally.project.locate import PROJECT_FILE
from tally.project.messages import dbt_words

_MISSING = object()


def read_var(
    project: ProjectConfig, name: str, default: Any = None, instead: str = "another way"
) -> Any:
    """The var `name` as the root project's models see it (a project-scoped
    `vars: {<project>: {name: ...}}` before a global one), rendered without macros. `instead`:
    how else the caller can be given the value, for the message when the var needs macros."""
    merged = _vars_for_root(project)
    if name not in merged:
        return default
    raw = merged[name]
    if not isinstance(raw, str) or ("{{" not in raw and "{%" not in raw):
        return raw
    return isolated(_render, project, merged, name, raw, instead)


def _vars_for_root(project: ProjectConfig) -> dict[str, Any]:
    # dbt's VarProvider.vars_for: the global vars, then the package's own (the later wins).
    everything = project.vars
    scoped = everything.get(project.name)
    return {**everything, **(scoped if isinstance(scoped, dict) else {})}


def _render(
    project: ProjectConfig, merged: dict[str, Any], name: str, raw: str, instead: str
) -> Any:
    from dbt.context.base import BaseContext
    from dbt.context.target import TargetContext

    # The project's vars stand where dbt puts --vars: `var('other')` inside a var works, and
    # is rendered in turn, as in a model.
    context = (
        TargetContext(project.target, merged) if project.target else BaseContext(merged)
    ).to_dict()
    try:
        return context["var"](name)
    except Exception as e:
        words = dbt_words(e)
        path = project.project_dir / PROJECT_FILE
        if "is undefined" in words:
            raise ConfigurationError(
                f"{path}: vars.{name} is {raw!r}, which needs dbt's macros ({words}): dbt "
                "renders it inside a model, tally reads it outside dbt, without macros. Your "
                f"project is fine; give tally the value {instead}, or give vars.{name} a "
                "plain value or simple Jinja (env_var, modules.datetime, var)."
            ) from None
        raise ConfigurationError(f"{path}: vars.{name}: dbt cannot render {raw!r} outside a "
                                 f"model: {words}.") from None  # fmt: skip
