"""What a check reports: a Finding (rule id, severity, message, fix hint, file:line, element),
the Rule registry every check declares its ids in, and the Report of one validation run."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Stage(StrEnum):
    DBT = "dbt"  # dbt parse
    METRICFLOW = "metricflow"  # MetricFlow's semantic validations
    TALLY = "tally"  # tally's own rules
    WAREHOUSE = "warehouse"  # queries on the target


@dataclass(frozen=True)
class Rule:
    id: str
    stage: Stage
    severity: Severity  # the default; the project file may change it
    summary: str
    hint: str  # one line: how to fix a finding of this rule


RULES: dict[str, Rule] = {}


def register_rule(
    rule_id: str, stage: Stage, severity: Severity, summary: str, hint: str
) -> Rule:
    rule = Rule(rule_id, stage, severity, summary, hint)
    RULES[rule_id] = rule
    return rule


@dataclass(frozen=True)
class Location:
    path: Path
    line: int | None = None


def display_path(path: Path | str | None) -> str | None:
    """Relative to the working directory when under it (what GitHub annotations and editors
    expect from a run at the repository root), else absolute."""
    if path is None:
        return None
    p = Path(path).resolve()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.as_posix()


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    hint: str = ""
    file: str | None = None
    line: int | None = None
    kind: str | None = None  # metric | dimension | measure | entity | semantic_model | ...
    element: str | None = None  # its name; semantic model elements as model.element
    stage: Stage = Stage.TALLY

    @property
    def where(self) -> str:
        if not self.file:
            return "(project)"
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def subject(self) -> str:
        if not self.element:
            return ""
        return f"{self.kind} '{self.element}'" if self.kind else f"'{self.element}'"

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}


def make_finding(
    rule: Rule,
    message: str,
    *,
    kind: str | None = None,
    element: str | None = None,
    location: Location | None = None,
    hint: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    short = element.rsplit(".", 1)[-1] if element else None
    if element and kind and not re.search(rf"(?<![\w.]){re.escape(short)}(?![\w])", message):
        # Every message names its element, so it reads alone (in JSON, in an annotation).
        message = f"{kind.replace('_', ' ')} '{element}': {message}"
    return Finding(
        rule=rule.id,
        severity=severity or rule.severity,
        message=message,
        hint=rule.hint if hint is None else hint,
        file=display_path(location.path) if location else None,
        line=location.line if location else None,
        kind=kind,
        element=element,
        stage=rule.stage,
    )


@dataclass
class StageResult:
    stage: Stage
    status: str  # ran | skipped | failed
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    # rule id -> how many elements it checked (rules that ran and found nothing pass)
    checked: dict[str, int] = field(default_factory=dict)
    # rule id -> why it could not check anything this run (not a pass)
    not_checked: dict[str, str] = field(default_factory=dict)
    stages: list[StageResult] = field(default_factory=list)
    manifest: str | None = None
    project_dir: str | None = None

    def count(self, rule_id: str, n: int = 1) -> None:
        self.checked[rule_id] = self.checked.get(rule_id, 0) + n

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.WARNING]

    def stage_status(self, stage: Stage) -> str | None:
        return next((s.status for s in self.stages if s.stage == stage), None)

    def exit_code(self, strict: bool = False) -> int:
        if self.errors or (strict and self.warnings):
            return 1
        return 0

    def sort(self) -> None:
        stage_order = list(Stage)
        self.findings.sort(
            key=lambda f: (
                f.file is None,
                f.file or "",
                f.line or 0,
                stage_order.index(f.stage),
                f.rule,
                f.element or "",
            )
        )


def use_color(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())
