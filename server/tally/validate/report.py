"""A Report as text (grouped by file, coloured on a terminal), GitHub workflow annotations,
JSON, or JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

from tally.validate.findings import RULES, Finding, Report, Severity, Stage

_COLORS = {"red": "31", "yellow": "33", "green": "32", "dim": "2", "bold": "1", "cyan": "36"}


def _paint(text: str, color: str, on: bool) -> str:
    return f"\x1b[{_COLORS[color]}m{text}\x1b[0m" if on else text


def summary_line(report: Report, strict: bool = False) -> str:
    errors, warnings = len(report.errors), len(report.warnings)
    if report.stage_status(Stage.DBT) == "failed":
        scope = "dbt parse failed, so no later stage ran"
    else:
        checks = sum(report.checked.values())
        scope = f"{len(report.checked)} rules, {checks} checks"
    unchecked = f"; not checked: {', '.join(sorted(report.not_checked))}"
    unchecked = unchecked if report.not_checked else ""
    if not errors and not warnings:
        return f"clean: {scope}, no findings{unchecked}"
    verdict = "failed" if report.exit_code(strict) else "passed"
    return (
        f"{verdict}: {errors} error{'s' * (errors != 1)}, "
        f"{warnings} warning{'s' * (warnings != 1)} ({scope}{unchecked})"
    )


def to_text(report: Report, color: bool = False, strict: bool = False) -> str:
    out: list[str] = []
    head = f"tally validate {report.project_dir or ''}".rstrip()
    if report.manifest:
        head += f" (manifest {report.manifest})"
    out.append(_paint(head, "bold", color))
    for s in report.stages:
        status = {"ran": "green", "failed": "red", "skipped": "yellow"}[s.status]
        detail = f"  {s.detail}" if s.detail else ""
        out.append(
            f"  {s.stage.value:<11}{_paint(f'{s.status:<8}', status, color)}"
            f"{s.seconds:6.1f} s{detail}"
        )
    for rule_id, why in sorted(report.not_checked.items()):
        out.append(_paint(f"  not checked: {rule_id}: {why}", "yellow", color))
    groups: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        groups[f.file or "(project)"].append(f)
    for file, findings in groups.items():
        out.append("")
        out.append(_paint(file, "bold", color))
        for f in findings:
            sev = _paint(f"{f.severity.value:<7}", "red" if f.severity == "error" else "yellow",
                         color)  # fmt: skip
            line = f"{f.line:>5}" if f.line else "    -"
            out.append(f"{line}  {sev} {_paint(f.rule, 'cyan', color)}  {f.message}")
            if f.hint:
                out.append(_paint(f"{'':>16}fix: {f.hint}", "dim", color))
    out.append("")
    line = summary_line(report, strict)
    ok = report.exit_code(strict) == 0
    out.append(_paint(("✓ " if ok else "✗ ") + line, "green" if ok else "red", color))
    return "\n".join(out)


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(report: Report, strict: bool = False) -> str:
    """One workflow command per finding (`::error file=...,line=...,title=...::message`), which
    GitHub shows on the pull request's diff, then the summary as a plain line."""
    lines = []
    for f in report.findings:
        props = []
        if f.file:
            props.append(f"file={_gh_prop(f.file)}")
            if f.line:
                props.append(f"line={f.line}")
        props.append(f"title={_gh_prop(f'tally {f.rule}')}")
        body = f.message + (f" (fix: {f.hint})" if f.hint else "")
        command = "error" if f.severity == Severity.ERROR else "warning"
        lines.append(f"::{command} {','.join(props)}::{_gh_data(body)}")
    lines.append(f"tally validate {summary_line(report, strict)}")
    return "\n".join(lines)


def to_dict(report: Report, strict: bool = False) -> dict[str, Any]:
    return {
        "ok": report.exit_code(strict) == 0,
        "exit_code": report.exit_code(strict),
        "project_dir": report.project_dir,
        "manifest": report.manifest,
        "summary": {
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "rules_checked": len(report.checked),
            "checks": sum(report.checked.values()),
        },
        "stages": [
            {"stage": s.stage.value, "status": s.status, "seconds": s.seconds, "detail": s.detail}
            for s in report.stages
        ],
        "checked": dict(sorted(report.checked.items())),
        "not_checked": dict(sorted(report.not_checked.items())),
        "findings": [f.to_dict() for f in report.findings],
    }


def to_json(report: Report, strict: bool = False) -> str:
    return json.dumps(to_dict(report, strict), indent=2)


def to_junit(report: Report, strict: bool = False) -> str:
    """One test suite per stage; in it a failing test case per finding and a passing one per
    rule that ran without any. Warnings fail only with --strict (else they are system-out)."""
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        by_rule[f.rule].append(f)
    root = ET.Element("testsuites", name="tally validate")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for stage in Stage:
        suite = ET.SubElement(root, "testsuite", name=f"tally.{stage.value}")
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        result = next((s for s in report.stages if s.stage == stage), None)
        if result is not None and result.status == "skipped":
            case = ET.SubElement(suite, "testcase", classname=f"tally.{stage.value}",
                                 name=f"{stage.value} checks")  # fmt: skip
            ET.SubElement(case, "skipped", message=result.detail or "skipped")
            counts["tests"] += 1
            counts["skipped"] += 1
        rule_ids = sorted({r for r in (*report.checked, *by_rule, *report.not_checked)
                           if _stage_of(r) == stage})  # fmt: skip
        for rule_id in rule_ids:
            classname = f"tally.{stage.value}.{rule_id}"
            if rule_id in report.not_checked and rule_id not in by_rule:
                case = ET.SubElement(suite, "testcase", classname=classname, name=rule_id,
                                     time="0")  # fmt: skip
                ET.SubElement(case, "skipped", message=report.not_checked[rule_id])
                counts["tests"] += 1
                counts["skipped"] += 1
                continue
            if rule_id not in by_rule:
                ET.SubElement(suite, "testcase", classname=classname, name=rule_id,
                              time="0")  # fmt: skip
                counts["tests"] += 1
                continue
            for f in by_rule[rule_id]:
                name = f"{f.subject or rule_id} ({f.where})"
                attrs = {"classname": classname, "name": name, "time": "0"}
                if f.file:
                    attrs["file"] = f.file
                if f.line:
                    attrs["line"] = str(f.line)
                case = ET.SubElement(suite, "testcase", attrs)
                counts["tests"] += 1
                text = f"{f.severity.value} [{f.rule}] {f.where}: {f.message}\nfix: {f.hint}"
                if f.severity == Severity.ERROR or strict:
                    failure = ET.SubElement(case, "failure", message=f.message,
                                            type=f.severity.value)  # fmt: skip
                    failure.text = text
                    counts["failures"] += 1
                else:
                    ET.SubElement(case, "system-out").text = text
        suite.set("tests", str(counts["tests"]))
        suite.set("failures", str(counts["failures"]))
        suite.set("errors", "0")
        suite.set("skipped", str(counts["skipped"]))
        seconds = result.seconds if result else 0.0
        suite.set("time", f"{seconds:.2f}")
        for k in totals:
            totals[k] += counts[k]
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _stage_of(rule_id: str) -> Stage:
    rule = RULES.get(rule_id)
    return rule.stage if rule else Stage.TALLY


def rules_table() -> str:
    """`tally validate --list-rules`."""
    rows = sorted(RULES.values(), key=lambda r: (list(Stage).index(r.stage), r.id))
    width = max(len(r.id) for r in rows)
    lines = [f"{'rule':<{width}}  {'stage':<10}  {'default':<8}  what / fix"]
    for r in rows:
        lines.append(f"{r.id:<{width}}  {r.stage.value:<10}  {r.severity.value:<8}  {r.summary}")
        lines.append(f"{'':<{width}}  {'':<10}  {'':<8}  fix: {r.hint}")
    return "\n".join(lines)
