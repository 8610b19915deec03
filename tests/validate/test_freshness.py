"""Reusing dbt's own target/ (as `dbt build` / `dbt parse` leave it in CI) - and not reusing it
when it no longer describes the project: a deleted file, another profile target. And dbt's
warnings: reported by a full parse, said to be unchecked when dbt's target/ is reused."""

from __future__ import annotations

import os
import shutil
import time
import xml.etree.ElementTree as ET

import pytest

from tally.validate.freshness import fingerprint
from tests.support.project_copies import (
    dbt_parsed_copy,
    dbt_warning,
    make_copy,
    tally,
    validate,
)

COHORTS = "semantic/metrics/cohorts.yml"


@pytest.fixture(scope="module")
def dbt_parsed(request):
    """A copy of the project with dbt_project/target/ written by the real `dbt parse` (once per
    run, shared read-only)."""
    return dbt_parsed_copy(request.config)


def _run(copy, *args):
    return tally("validate", "--project-dir", copy.project_dir, "--skip-dw", *args)


def test_dbts_fresh_target_is_reused_and_says_dbt_warnings_were_not_checked(
    dbt_parsed, tmp_path, monkeypatch
):
    monkeypatch.delenv("TALLY_TARGET", raising=False)
    junit = tmp_path / "j.xml"
    run = _run(dbt_parsed, "--format", "json", "--junit", junit)
    assert run.code == 0, run.out + run.err
    assert "reusing the fresh parse" in run.err and "running dbt parse" not in run.err
    report = run.json()
    assert "dbt_warning" in report["not_checked"] and "--parse" in report["not_checked"][
        "dbt_warning"]  # fmt: skip
    assert "dbt_warning" not in report["checked"] and report["checked"]["dbt_parse"] == 1
    suite = next(s for s in ET.parse(junit).getroot() if s.get("name") == "tally.dbt")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["dbt_parse"].find("failure") is None and cases["dbt_parse"].find(
        "skipped") is None  # fmt: skip
    assert cases["dbt_warning"].find("skipped") is not None
    assert "not checked: dbt_warning" in _run(dbt_parsed).out


def test_dbts_target_is_not_reused_for_another_target(dbt_parsed, monkeypatch):
    monkeypatch.delenv("TALLY_TARGET", raising=False)
    run = _run(dbt_parsed, "--target", "postgres")
    assert run.code == 0, run.out + run.err
    assert "not reusing" in run.err and "another target than 'postgres'" in run.err
    assert "running dbt parse" in run.err


def test_tallys_and_duckdbs_working_folders_are_not_project_files(tmp_path):
    """A running server writes its query history under .tally/ and DuckDB spills to .tmp/: neither
    makes an earlier parse stale; a model file does."""
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\nmodel-paths: [models]\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.sql").write_text("select 1 as x")
    before = fingerprint(tmp_path)
    later = time.time() + 60
    for folder, name in ((".tally", "history.sqlite"), (".tmp", "spill.tmp")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_text("x")
        os.utime(tmp_path / folder / name, (later, later))
        os.utime(tmp_path / folder, (later, later))
    assert fingerprint(tmp_path) == before
    os.utime(tmp_path / "models" / "m.sql", (later, later))
    assert fingerprint(tmp_path)[1] == pytest.approx(later)


def test_deleting_a_metrics_file_after_dbt_parse_is_not_a_false_clean(dbt_parsed, tmp_path):
    """cohorts.yml defines the metrics of the cohort_retention saved query. No remaining file
    is newer than dbt's manifest after the delete; tally must parse again and fail."""
    root = tmp_path / "copy"
    shutil.copytree(dbt_parsed.root, root)  # mtimes kept: target/ still looks fresh
    copy = type(dbt_parsed)(root)
    assert "reusing the fresh parse" in _run(copy).err
    copy.path(COHORTS).unlink()
    run = _run(copy, "--format", "json")
    assert run.code == 1, run.out + run.err
    assert "not reusing" in run.err and "running dbt parse" in run.err
    findings = run.json()["findings"]
    assert any(f["rule"] == "dbt_parse" and "cohort_retention" in f["message"]
               for f in findings), findings  # fmt: skip


def test_a_full_parse_reports_dbts_warnings(tmp_path):
    """--parse runs dbt without its partial-parse state, so every warning is reported: a
    warning fails only with --strict."""
    copy = make_copy(tmp_path / "p")
    dbt_warning(copy)
    run = validate(copy, "--skip-dw", "--parse", "--format", "json")
    assert run.code == 0, run.out + run.err
    report = run.json()
    [f] = report["findings"]
    assert f["rule"] == "dbt_warning" and f["severity"] == "warning"
    assert "models.tally.stagingg" in f["message"]
    assert report["checked"]["dbt_warning"] == 1 and report["not_checked"] == {}
    assert validate(copy, "--skip-dw", "--strict").code == 1  # reuses that parse's stamp
