"""`dbt parse` through dbt's programmatic API (dbtRunner), with what the `dbt` command does not
give:

* the warnings and errors as structured events (a dbtRunner callback), not log text;
* a semantic manifest even when dbt's own semantic validation fails. dbt then stops without
  writing one, and its messages name no element ("Entity: x not found in base semantic model:
  y" - of which metric?). With its verdict recorded here and overridden, dbt writes the
  manifest, and MetricFlow's validator, run on it afterwards, reports each issue with the
  metric, model or element it concerns. Only `tally validate` ever sees such a manifest: it
  parses into a temporary target, never over the project's own.

`parse_report` runs in the calling process (parse.py does so when no other parse is running
in it) and leaves dbt's process-wide state as it found it: flags, the event manager's loggers
and callbacks, the semantic-validation hook. `python -m tally.validate.dbt_runner REPORT.json
-- <dbt args>` runs it in a child process and writes the report as JSON (parse.py's way for a
second parse at the same time: dbt's state is one per process).

dbt's parser is not a public API: if the hook is not where it is expected, the parse runs
unchanged (and semantic failures are reported from dbt's messages alone).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tally.project.dbt_calls import isolated


def parse_report(dbt_args: list[str]) -> dict[str, Any]:
    """Run dbt with `dbt_args` in this process; what happened, as parse.py reads it. Under
    tally.project's one lock for dbt's process state, in a context of its own: tally's
    reading of a project through dbt's loader in another thread (diff's other side) neither
    sees this parse's flags nor fires its events into this parse's callback."""
    return isolated(_parse_report, dbt_args)


def _parse_report(dbt_args: list[str]) -> dict[str, Any]:
    from dbt.cli.main import dbtRunner

    state: dict[str, Any] = {"semantic_ok": None, "hooked": False}
    events: list[dict[str, str]] = []

    def collect(event: Any) -> None:
        level = event.info.level
        if level in ("warn", "error"):
            events.append({"level": level, "name": event.info.name, "msg": event.info.msg})

    with _dbt_state_restored(), _semantic_verdict(state):
        result = dbtRunner(callbacks=[collect]).invoke(dbt_args)
    return {
        "success": bool(result.success),
        "semantic_ok": state["semantic_ok"],
        "hooked": state["hooked"],
        "events": events,
        "exception": str(result.exception) if result.exception else None,
    }


@contextlib.contextmanager
def _semantic_verdict(state: dict[str, Any]) -> Iterator[None]:
    """dbt's semantic validation recorded in `state` and reported as passed, for this call."""
    try:
        from dbt.contracts.graph import semantic_manifest as sm

        original = sm.SemanticManifest.validate
    except (ImportError, AttributeError):
        yield
        return

    def validate(self: Any) -> bool:
        state["semantic_ok"] = bool(original(self))
        return True

    sm.SemanticManifest.validate = validate  # type: ignore[method-assign]
    state["hooked"] = True
    try:
        yield
    finally:
        sm.SemanticManifest.validate = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _dbt_state_restored() -> Iterator[None]:
    """dbt's global flags and its event manager's loggers and callbacks (a dbt command sets
    them for itself) put back as they were: a later dbt call in this process, or tally's
    reading of the project through dbt's loader, must not log through this parse's loggers
    (its log file lives in a temporary target) nor call its callback."""
    from dbt import flags
    from dbt_common.events.event_manager_client import get_event_manager

    manager = get_event_manager()
    loggers, callbacks = list(manager.loggers), list(manager.callbacks)
    strict = getattr(manager, "require_warn_or_error_handling", None)
    previous_flags = flags.get_flags()
    try:
        yield
    finally:
        manager.loggers[:] = loggers
        manager.callbacks[:] = callbacks
        if strict is not None:
            manager.require_warn_or_error_handling = strict
        flags.set_flags(previous_flags)


def main(argv: list[str]) -> int:
    report_path = Path(argv[0])
    dbt_args = argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:]
    report = parse_report(dbt_args)
    report_path.write_text(json.dumps(report, indent=1))
    return 0 if report["success"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
