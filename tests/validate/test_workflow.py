"""`.github/workflows/semantic-ci.yml` usable as is: every command it runs exists and takes the
flags it is given, the diff and docs steps run after a failed validation, the diff step works
(run with bash as GitHub runs it) on a base with and without a dbt project, and the docs'
"Validate in CI" page shows the same steps."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT
from tests.support.project_copies import FIXTURES, make_copy

WORKFLOW = ROOT / ".github" / "workflows" / "semantic-ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict, job: str = "semantic") -> dict[str, dict]:
    return {s.get("name") or s.get("uses"): s for s in workflow["jobs"][job]["steps"]}


def _step(workflow: dict, prefix: str) -> dict:
    return next(s for name, s in _steps(workflow).items() if name.startswith(prefix))


def test_checkout_keeps_the_history_the_diff_reads(workflow):
    checkout = _steps(workflow)["actions/checkout@v4"]
    assert checkout["with"]["fetch-depth"] == 0


def test_every_command_exists_and_takes_its_flags(workflow):
    """make targets are in the Makefile, .venv/bin programs are installed, and each tally
    command line parses with tally's own argument parser."""
    from tally.cli import _parser

    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    scripts = [s["run"] for job in workflow["jobs"] for s in workflow["jobs"][job]["steps"]
               if "run" in s]  # fmt: skip
    tally_lines = []
    for script in scripts:
        script = script.replace("\\\n", " ")
        for target in re.findall(r"\bmake (\w+)", script):
            assert target in targets, target
        for program in re.findall(r"\.venv/bin/(\w+)", script):
            # installed beside this Python (the project's .venv when run by `make test`)
            assert (Path(sys.executable).parent / program).exists(), program
        tally_lines += [line for line in script.splitlines() if ".venv/bin/tally " in line]
    assert len(tally_lines) == 2
    for line in tally_lines:
        command = line.split(".venv/bin/tally ", 1)[1].split(">")[0]
        args = shlex.split(command.replace('"$BASE"', "origin/main"))
        parsed = _parser().parse_args(args)  # SystemExit(2) on an unknown flag
        assert callable(parsed.handler)
    assert "--parse" in tally_lines[0] and "--junit" in tally_lines[0]


def test_diff_and_docs_run_after_a_failed_validation_and_the_diff_never_fails_the_job(workflow):
    diff = _step(workflow, "tally diff")
    docs = _step(workflow, "dbt docs generate")
    assert "!cancelled()" in diff["if"] and "!cancelled()" in docs["if"]
    assert diff["continue-on-error"] is True
    assert "--values --format markdown" in diff["run"]


def test_docs_show_the_workflows_steps_verbatim():
    page = (ROOT / "docs" / "validate.md").read_text()
    section = page[page.index("## The workflow"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "no yaml block in docs/validate.md's The workflow"
    workflow_lines = WORKFLOW.read_text().splitlines()
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) > 15
    position = 0
    for line in lines:  # every line, in the same order
        assert line in workflow_lines[position:], line
        position = workflow_lines.index(line, position) + 1


def _git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def _run_diff_step(workflow: dict, root: Path, base: str, env: dict[str, str]) -> tuple:
    """The diff step's script, run by bash with the flags GitHub uses, in `root`."""
    (root / ".venv").symlink_to(ROOT / ".venv")
    summary = root / "summary.md"
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
         _step(workflow, "tally diff")["run"]],
        cwd=root, env={**env, "BASE": base, "GITHUB_STEP_SUMMARY": str(summary)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return proc, summary.read_text() if summary.exists() else ""


def test_the_diff_step_on_a_base_without_a_dbt_project(workflow, tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("before the semantic layer\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    make_copy(root)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "the semantic layer")
    (root / "dbt_project" / "target").mkdir()
    proc, summary = _run_diff_step(workflow, root, "HEAD~1", dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary.startswith("### Semantic layer changes: no diff against `HEAD~1`")
    assert "HEAD~1 has no dbt project at dbt_project/" in summary


def test_the_diff_step_on_a_pull_request(workflow, tmp_path, warehouse, broken):
    """The base parsed from git, the head from dbt_project/target (as `make warehouse` leaves
    it), values on the warehouse, Markdown into the job summary."""
    root = tmp_path / "repo"
    copy = make_copy(root)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    FIXTURES["changed_definition"](copy)
    _git(root, "commit", "-q", "-am", "aov over every order")
    # the head's parse: the changed_definition fixture is this very change, already parsed
    shutil.copytree(broken["changed_definition"].target_dir, copy.project_dir / "target")
    proc, summary = _run_diff_step(workflow, root, "HEAD~1", warehouse.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary.startswith("### Semantic layer changes: `HEAD~1` → `dbt_project/target`")
    assert "| `average_order_value` | executive_kpis_by_month |" in summary
