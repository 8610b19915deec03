"""The dbt parse step: reuse a fresh manifest or run `dbt parse`, and turn dbt's warnings and
errors into findings.

A target folder is *fresh* when it holds tally's stamp for the project files as they are now
(a parse by `tally validate`, failed or not), or a semantic manifest dbt wrote after the last
change to any project file (`dbt build` / `dbt parse` in CI)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from server.core.errors import ServerFault, suggestion_suffix
from server.validate.findings import (
    Finding,
    Location,
    Severity,
    Stage,
    make_finding,
    register_rule,
)
from server.validate.locate import Locator, message_names, model_paths

STAMP = "tally_parse.json"
_IGNORED_DIRS = {"target", "dbt_packages", "logs", ".build", "__pycache__", ".git"}
_IGNORED_FILES = {"tally.yml", ".sqlfluff", ".sqlfluffignore", ".user.yml"}

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


@dataclass
class ParseOutcome:
    target_dir: Path
    success: bool
    semantic_ok: bool | None = None  # dbt's own semantic validation (None: not run)
    events: list[dict[str, str]] = field(default_factory=list)
    exception: str | None = None
    reused: bool = False
    seconds: float = 0.0
    fingerprint: str = ""

    @property
    def manifest_path(self) -> Path | None:
        path = self.target_dir / "semantic_manifest.json"
        return path if self.success and path.exists() else None


def source_files(project_dir: Path) -> list[Path]:
    roots = [project_dir.resolve(), *model_paths(project_dir)]
    seen: set[Path] = set()
    files: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name in _IGNORED_FILES or ".duckdb" in name or path in seen:
                    continue
                seen.add(path)
                files.append(path)
    return files


def fingerprint(project_dir: Path) -> tuple[str, float]:
    """(a hash of every project file's path, size and mtime; the newest mtime)."""
    digest = hashlib.sha256()
    newest = 0.0
    for path in source_files(project_dir):
        st = path.stat()
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        newest = max(newest, st.st_mtime)
    return digest.hexdigest()[:16], newest


def fresh_outcome(project_dir: Path, target_dir: Path) -> ParseOutcome | None:
    """The outcome of an earlier parse that still describes the project, or None."""
    fp, newest = fingerprint(project_dir)
    stamp = target_dir / STAMP
    if stamp.exists():
        try:
            data = json.loads(stamp.read_text())
        except ValueError:
            data = {}
        known = {f.name for f in fields(ParseOutcome)} - {"target_dir", "reused", "seconds"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["success"] = bool(kwargs.get("success"))
        outcome = ParseOutcome(target_dir=target_dir, reused=True, **kwargs)
        # A stamp whose manifest has since been removed describes nothing: parse again.
        if data.get("fingerprint") == fp and (outcome.manifest_path or not outcome.success):
            return outcome
    semantic = target_dir / "semantic_manifest.json"
    if semantic.exists() and (target_dir / "manifest.json").exists():
        written = min(semantic.stat().st_mtime, (target_dir / "manifest.json").stat().st_mtime)
        # dbt wrote it after the last edit (and after tally's own last parse, if any)
        if written >= newest and (not stamp.exists() or written > stamp.stat().st_mtime):
            return ParseOutcome(target_dir=target_dir, success=True, reused=True, fingerprint=fp)
    return None


def run_parse(
    project_dir: Path,
    profiles_dir: Path,
    target_dir: Path,
    target: str | None = None,
    progress: Callable[[str], None] | None = None,
    seed: Path | None = None,
) -> ParseOutcome:
    """`dbt parse` into target_dir (through dbt_runner, in a child process) and a stamp there.
    `seed`: another parse's partial_parse.msgpack, so dbt re-reads only the files that differ
    (about half the time of a full parse; dbt falls back to a full one when it does not fit)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target_dir / "partial_parse.msgpack"
    if seed is not None and seed.exists() and not partial.exists():
        shutil.copyfile(seed, partial)
    fp, _ = fingerprint(project_dir)
    report_path = target_dir / "tally_dbt_events.json"
    report_path.unlink(missing_ok=True)
    args = [
        "parse",
        "--project-dir", str(project_dir.resolve()),
        "--profiles-dir", str(profiles_dir.resolve()),
        "--target-path", str(target_dir.resolve()),
        "--log-path", str((target_dir / "logs").resolve()),
        "--quiet",
        "--no-use-colors",
    ]  # fmt: skip
    if target:
        args += ["--target", target]
    if progress:
        progress(f"running dbt parse on {project_dir}...")
    started = time.perf_counter()
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "server.validate.dbt_runner", str(report_path), "--", *args],
            cwd=project_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServerFault(f"dbt parse could not run: {e}") from e
    seconds = time.perf_counter() - started
    if not report_path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ServerFault("dbt parse crashed: " + " | ".join(tail))
    data: dict[str, Any] = json.loads(report_path.read_text())
    outcome = ParseOutcome(
        target_dir=target_dir,
        success=bool(data["success"]),
        semantic_ok=data.get("semantic_ok"),
        events=list(data.get("events", [])),
        exception=data.get("exception"),
        seconds=round(seconds, 2),
        fingerprint=fp,
    )
    stamp = asdict(outcome)
    for key in ("target_dir", "reused", "seconds"):
        stamp.pop(key)
    (target_dir / STAMP).write_text(json.dumps(stamp, indent=1))
    if progress:
        progress(f"dbt parse {'succeeded' if outcome.success else 'failed'} in {seconds:.1f} s")
    return outcome


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


def _yaml_error(match: re.Match[str], project_dir: Path) -> tuple[str, Location | None]:
    rel = match.group("path")
    roots = [project_dir, *model_paths(project_dir)]
    path = next((r / rel for r in roots if (r / rel).is_file()), None)
    message = f"YAML syntax error: {_YAML_MARK.sub('', match.group('raw')).strip()}"
    return message, Location(path, int(match.group("line"))) if path else None


def _located(rule: Any, text: str, project_dir: Path, locator: Locator) -> Finding:
    yaml_error = _YAML_ERROR.search(text)
    if yaml_error:
        message, loc = _yaml_error(yaml_error, project_dir)
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


def _hint(text: str, locator: Locator) -> str | None:
    """For a reference to something that does not exist: the closest existing name."""
    if not re.search(r"does not exist|not found|unknown", text, re.IGNORECASE):
        return None
    known = locator.names("metric", "measure", "dimension", "entity", "semantic_model")
    for token in message_names(text):
        if token in known:
            continue
        _, best = suggestion_suffix(token, known)
        if best:
            return f"define '{token}', or reference an existing name (did you mean '{best}'?)"
        return f"define '{token}', or reference an existing name (`tally list metrics`)"
    return None
