"""The dbt parse step: run `dbt parse` (through dbt's programmatic API, dbt_runner.py: in this
process, or a child process when another parse is running here), and turn dbt's warnings and
errors into findings. Whether an earlier parse can be reused instead: freshness.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tally.errors import ServerFault, suggestion_suffix
from tally.validate import dbt_runner
from tally.validate.findings import (
    Finding,
    Location,
    Severity,
    Stage,
    make_finding,
    register_rule,
)
from tally.validate.freshness import ParseOutcome, fingerprint, target_info
from tally.validate.locate import Locator, message_names

DBT_PARSE = register_rule(
    "dbt_parse",
    Stage.DBT,
    Severity.ERROR,
    "dbt parses the project",
    "fix the definition at this location; `dbt parse` shows the same error",
)
DBT_WARNING = register_rule(
    "dbt_warning",
    Stage.DBT,
    Severity.WARNING,
    "dbt parses the project without warnings",
    "follow dbt's message (often a deprecated config that has a new spelling)",
)
DBT_SEMANTIC = register_rule(
    "dbt_semantic",
    Stage.DBT,
    Severity.ERROR,
    "dbt's semantic validation passes",
    "fix the semantic definition the message names; `dbt parse` shows the same error",
)


def run_parse(
    project_dir: Path,
    profiles_dir: Path,
    target_dir: Path,
    target: str | None = None,
    progress: Callable[[str], None] | None = None,
    seed: Path | None = None,
) -> ParseOutcome:
    """`dbt parse` into target_dir (through dbt_runner.py) and a stamp there.

    Without `seed` dbt reads every file (`--no-partial-parse`), so it reports every warning.
    `seed`: another parse's partial_parse.msgpack, so dbt re-reads only the files that differ
    (about half the time of a full parse; dbt falls back to a full one when it does not fit),
    at the price of the warnings of the files it does not re-read."""
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target_dir / "partial_parse.msgpack"
    if seed is not None and seed.exists() and not partial.exists():
        shutil.copyfile(seed, partial)
    # The stamp says which target it is for, by the name the profile resolves it to (the
    # default when none is given), as the freshness check asks.
    target_name = target_info(project_dir, profiles_dir, target).name or target
    fp, _ = fingerprint(project_dir, target_name)
    args = [
        "parse",
        "--project-dir", str(project_dir.resolve()),
        "--profiles-dir", str(profiles_dir.resolve()),
        "--target-path", str(target_dir.resolve()),
        "--log-path", str((target_dir / "logs").resolve()),
        # Nothing on the console (in this process it is tally's own output); all in the file.
        "--log-level", "none",
        "--log-level-file", "debug",
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",
    ]  # fmt: skip
    if seed is None:
        args.append("--no-partial-parse")
    if target:
        args += ["--target", target]
    if progress:
        progress(f"running dbt parse on {project_dir}...")
    started = time.perf_counter()
    data = _run_dbt(args, project_dir, target_dir / "tally_dbt_events.json")
    seconds = time.perf_counter() - started
    outcome = ParseOutcome(
        target_dir=target_dir,
        success=bool(data["success"]),
        semantic_ok=data.get("semantic_ok"),
        events=list(data.get("events", [])),
        exception=data.get("exception"),
        seconds=round(seconds, 2),
        fingerprint=fp,
        target=target_name,
        warnings_complete=seed is None,
    )
    outcome.write_stamp()
    if progress:
        progress(f"dbt parse {'succeeded' if outcome.success else 'failed'} in {seconds:.1f} s")
    return outcome


# dbt keeps its flags, event manager and adapters once per process: one parse at a time runs
# here, a second one at the same time in a child process of its own.
_in_process = threading.Lock()


def _run_dbt(args: list[str], project_dir: Path, report_path: Path) -> dict[str, Any]:
    """dbt's report of the parse (dbt_runner.py): in this process (no interpreter to start,
    dbt already imported by the project's loading) unless a parse is running in it already."""
    if _in_process.acquire(blocking=False):
        try:
            return dbt_runner.parse_report(args)
        except Exception as e:  # dbtRunner returns dbt's own failures; this is anything else
            raise ServerFault(f"dbt parse crashed: {type(e).__name__}: {e}") from e
        finally:
            _in_process.release()
    report_path.unlink(missing_ok=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tally.validate.dbt_runner", str(report_path), "--", *args],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServerFault(f"dbt parse could not run: {e}") from e
    if not report_path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ServerFault("dbt parse crashed: " + " | ".join(tail))
    return json.loads(report_path.read_text())


# Findings --------------------------------------------------------------------------------

# "Parsing Error in metric order_count (../semantic/metrics/orders.yml)"
_IN_ELEMENT = re.compile(r"\bin (?P<kind>[a-z_ ]+?) '?(?P<name>[\w.]+)'? \((?P<path>[^()\s]+)\)")
# "Saved_Query 'saved_query.tally.executive_kpis_by_month' (../semantic/saved_queries/x.yml)"
_UID = re.compile(r"(?P<kind>[A-Za-z_]+) '(?P<name>[\w.]+)' \((?P<path>[^()\s]+)\)")
_NOISE = re.compile(r"^(Encountered an error:|(Parsing|Compilation|Runtime) Error\b)\s*")


def _clean(msg: str) -> str:
    lines = [_NOISE.sub("", line.strip()) for line in msg.strip().splitlines()]
    return " ".join(line for line in lines if line)


def event_findings(
    outcome: ParseOutcome, project_dir: Path, locator: Locator
) -> list[Finding]:
    """dbt's errors and warnings, located. dbt's semantic-validation messages are returned
    separately by `semantic_messages` (MetricFlow reports them with their element)."""
    findings: list[Finding] = []
    for event in outcome.events:
        if event["name"] == "SemanticValidationFailure":
            continue
        text = _clean(event["msg"])
        if not text or text == "Semantic Manifest validation failed.":
            continue
        rule = DBT_PARSE if event["level"] == "error" else DBT_WARNING
        findings.append(_located(rule, text, project_dir, locator))
    if not outcome.success and not any(f.rule == DBT_PARSE.id for f in findings):
        text = _clean(outcome.exception or "dbt parse failed")
        if text != "Semantic Manifest validation failed." or outcome.semantic_ok is None:
            findings.append(_located(DBT_PARSE, text, project_dir, locator))
    return findings


def semantic_messages(outcome: ParseOutcome) -> list[tuple[Severity, str]]:
    return [
        (Severity.ERROR if e["level"] == "error" else Severity.WARNING, _clean(e["msg"]))
        for e in outcome.events
        if e["name"] == "SemanticValidationFailure"
    ]


# "Error reading tally: metrics/items.yml - Runtime Error Syntax error near line 21 ---- ..."
_YAML_ERROR = re.compile(
    r"Error reading [\w-]+: (?P<path>\S+) - .*?Syntax error near line (?P<line>\d+)"
    r".*?Raw Error: -+\s*(?P<raw>.*)$"
)
_YAML_MARK = re.compile(r'\s*in "<unicode string>", line \d+, column \d+')


def _yaml_error(
    match: re.Match[str], project_dir: Path, locator: Locator
) -> tuple[str, Location | None]:
    rel = match.group("path")
    roots = [project_dir, *locator.roots]
    path = next((r / rel for r in roots if (r / rel).is_file()), None)
    message = f"YAML syntax error: {_YAML_MARK.sub('', match.group('raw')).strip()}"
    return message, Location(path, int(match.group("line"))) if path else None


def _located(rule: Any, text: str, project_dir: Path, locator: Locator) -> Finding:
    yaml_error = _YAML_ERROR.search(text)
    if yaml_error:
        message, loc = _yaml_error(yaml_error, project_dir, locator)
        return make_finding(rule, message, location=loc,
                            hint="fix the YAML (indentation, a missing '-' or ':')")
    match = _IN_ELEMENT.search(text) or _UID.search(text)
    if not match:
        return make_finding(rule, text)
    kind = match.group("kind").strip().lower().replace(" ", "_")
    name = match.group("name").rsplit(".", 1)[-1]
    path = (project_dir / match.group("path")).resolve()
    # dbt's "Parsing Error in metric x (../semantic/...yml)" prefix: the finding carries both.
    if match.start() == 0 and match.end() < len(text):
        text = text[match.end() :].strip()
    else:
        text = text.replace(match.group(0), f"{kind.replace('_', ' ')} '{name}'")
    loc = locator.refine(kind, name, text)
    if loc is None or loc.path != path:
        loc = Location(path, locator.line_of(path, rf"name:\s*['\"]?{re.escape(name)}\b"))
    return make_finding(rule, text, kind=kind, element=name, location=loc,
                        hint=_hint(text, locator))  # fmt: skip


_KIND_BEFORE = re.compile(
    r"\b(metric|measure|dimension|entity|semantic model)s?\s+[`'\"]([\w.]+)"
)
_KINDS = ("metric", "measure", "dimension", "entity", "semantic_model")
_LISTING = {"metric": "`tally list metrics`", "dimension": "`tally list dimensions`",
            "entity": "`tally list entities`"}  # fmt: skip


def _hint(text: str, locator: Locator) -> str | None:
    """For a reference to something that does not exist: the closest existing name of the
    same kind when the message says which ("measure `customersx`"), else of any kind."""
    if not re.search(r"does not exist|not found|unknown", text, re.IGNORECASE):
        return None
    kind_of = {m.group(2): m.group(1).replace(" ", "_") for m in _KIND_BEFORE.finditer(text)}
    for token in message_names(text):
        kinds = (kind_of[token],) if token in kind_of else _KINDS
        known = locator.names(*kinds)
        if token in known:
            continue
        _, best = suggestion_suffix(token, known)
        if best:
            return f"define '{token}', or reference an existing name (did you mean '{best}'?)"
        listing = _LISTING.get(kinds[0], "") if len(kinds) == 1 else "`tally list metrics`"
        listing = listing or f"the {kinds[0].replace('_', ' ')}s the semantic layer defines"
        return f"define '{token}', or reference an existing name ({listing})"
    return None
