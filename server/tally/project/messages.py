"""dbt's refusals as one line naming the file, the key and the fix; tally's own failures as a
bug of tally's (never as a fault of a project that dbt may accept)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tally.errors import ConfigurationError, ServerFault


class ProjectReadBug(ServerFault):
    """tally failed to read a project in a way dbt's own loader did not refuse."""

    code = "internal_error"


class KeyFailed(Exception):
    """A value of a YAML file that dbt could not render, with where it is."""

    def __init__(self, keypath: Sequence[str | int], value: object, error: BaseException):
        super().__init__(str(error))
        self.keypath = tuple(keypath)
        self.value = value
        self.error = error


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def dbt_words(error: BaseException) -> str:
    """dbt's own message, without its "Runtime Error" banner, on one line."""
    text = getattr(error, "msg", None) or str(error)
    return one_line(text).rstrip(".")


def dotted(keypath: Sequence[str | int]) -> str:
    out = ""
    for part in keypath:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def yaml_problem(error: BaseException) -> str:
    """'line N: problem' of a YAML error dbt's loader reported (its own text otherwise)."""
    cause: BaseException | None = error
    while cause is not None:  # dbt wraps the YAML error, sometimes twice
        mark = getattr(cause, "problem_mark", None)
        if mark is not None:
            problem = getattr(cause, "problem", None) or one_line(str(cause))
            return f"line {mark.line + 1}: {problem}"
        cause = cause.__cause__ or cause.__context__
    return dbt_words(error)


def bug(path: Path, error: BaseException) -> ProjectReadBug:
    return ProjectReadBug(
        f"{path}: tally failed while dbt's loader read it ({type(error).__name__}: "
        f"{one_line(str(error))[:300]}). If `dbt parse` accepts this project, this is a bug "
        "in tally, not in your project: please report it with this line (TALLY_DEBUG=1 shows "
        "the traceback)."
    )


def _cause(error: BaseException, kinds: tuple[type, ...]) -> BaseException:
    """The first of `kinds` in the chain of causes (dbt wraps what a template raised)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def render_failure(path: Path, failed: KeyFailed, where: str) -> ConfigurationError:
    """A value of dbt_project.yml, profiles.yml or packages.yml dbt refused to render."""
    from dbt.exceptions import EnvVarMissingError, RequiredVarNotFoundError

    key = dotted(failed.keypath)
    error = _cause(failed.error, (EnvVarMissingError, RequiredVarNotFoundError))
    if isinstance(error, EnvVarMissingError):
        return ConfigurationError(
            f"{path}: {key} needs environment variable {error.var}, which is not set "
            f"(env_var('{error.var}') has no default; dbt: {dbt_words(error)}). Set it, as for "
            "dbt."
        )
    if isinstance(error, RequiredVarNotFoundError):
        return ConfigurationError(
            f"{path}: {key} calls var('{error.var_name}'), which has no default. dbt renders "
            f"this key when it loads the project{where}, with only the vars of its --vars "
            "option, which tally is not given: tally can read it once the var has a default, "
            f"var('{error.var_name}', ...)."
        )
    words = dbt_words(error).removeprefix(f"Could not render {failed.value}: ")
    return ConfigurationError(
        f"{path}: {key}: dbt cannot render {failed.value!r}: {words}. dbt renders "
        f"this key when it loads the project{where} (with env_var, var, target and its "
        "filters, no macros): `dbt parse` refuses it too; fix the expression."
    )
