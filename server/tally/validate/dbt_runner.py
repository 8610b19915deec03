"""Child process of `tally validate`: runs `dbt parse` in-process and writes what happened as JSON.

Run as `python -m tally.validate.dbt_runner REPORT.json -- <dbt args>`. Two things the `dbt`
command does not give:

* the warnings and errors as structured events (a dbtRunner callback), not log text;
* a semantic manifest even when dbt's own semantic validation fails. dbt then stops without
  writing one, and its messages name no element ("Entity: x not found in base semantic model:
  y" - of which metric?). With its verdict recorded here and overridden, dbt writes the
  manifest, and MetricFlow's validator, run on it by the parent, reports each issue with the
  metric, model or element it concerns. Only `tally validate` ever sees such a manifest: it
  parses into a temporary target, never over the project's own.

dbt's parser is not a public API: if the hook is not where it is expected, the parse runs
unchanged (and semantic failures are reported from dbt's messages alone).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    report_path = Path(argv[0])
    dbt_args = argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:]
    state: dict[str, Any] = {"semantic_ok": None, "hooked": False}
    try:
        from dbt.contracts.graph import semantic_manifest as sm

        original = sm.SemanticManifest.validate

        def validate(self: Any) -> bool:
            state["semantic_ok"] = bool(original(self))
            return True

        sm.SemanticManifest.validate = validate  # type: ignore[method-assign]
        state["hooked"] = True
    except (ImportError, AttributeError):
        pass

    from dbt.cli.main import dbtRunner

    events: list[dict[str, str]] = []

    def collect(event: Any) -> None:
        level = event.info.level
        if level in ("warn", "error"):
            events.append({"level": level, "name": event.info.name, "msg": event.info.msg})

    result = dbtRunner(callbacks=[collect]).invoke(dbt_args)
    report = {
        "success": bool(result.success),
        "semantic_ok": state["semantic_ok"],
        "hooked": state["hooked"],
        "events": events,
        "exception": str(result.exception) if result.exception else None,
    }
    report_path.write_text(json.dumps(report, indent=1))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
