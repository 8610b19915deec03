"""`tally validate` on the project itself (clean, exit 0, with the warehouse checks), the shape
of its text, GitHub, JSON and JUnit outputs, and the project file's rule configuration."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.paths import PROJECT_DIR
from tests.support.project_copies import ORDERS, tally, validate


@pytest.fixture
def on_warehouse(warehouse, monkeypatch):
    monkeypatch.setenv("TALLY_DUCKDB_PATH", str(warehouse.duckdb_path))
    return warehouse


def test_project_validates_clean_with_warehouse_checks(on_warehouse, tmp_path):
    """The project as it is, parsed by the session's dbt build (its target/ is fresh, so it is
    reused), every stage run: no finding at all, not even a warning - in particular none of
    the false positives MetricFlow reports on its own transformed manifest."""
    junit = tmp_path / "report.xml"
    run = tally("validate", "--project-dir", PROJECT_DIR, "--target-path",
                on_warehouse.target_dir, "--format", "json", "--junit", junit)  # fmt: skip
    assert run.code == 0, run.out + run.err
    report = run.json()
    assert report["ok"] and report["findings"] == []
    assert {s["stage"]: s["status"] for s in report["stages"]} == {
        "dbt": "ran", "metricflow": "ran", "tally": "ran", "warehouse": "ran"}  # fmt: skip
    checked = report["checked"]
    for rule in ("mf_metric_measures", "metric_description", "dimension_label", "metric_owner",
                 "saved_query_compiles", "exposure_metric_exists", "duplicate_metric",
                 "dw_table", "dw_column", "dw_time_type", "dw_metric", "dw_saved_query"):
        assert checked.get(rule, 0) > 0, rule  # fmt: skip
    assert checked["dw_metric"] >= 27  # every glossary metric ran on the warehouse
    assert "reusing the fresh parse" in run.err
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0" and int(root.get("tests")) >= 40


@pytest.mark.parametrize("path", ["native", "adbc"])
def test_project_validates_clean_on_postgres_through_either_path(pg_warehouse, monkeypatch, path):
    """The warehouse stage on PostgreSQL: every table, column, time type, metric and saved
    query checked, and no finding, through psycopg2 (native) as through ADBC. A time column
    with no rows in a check's sample must still read as a date, not as a column of no type."""
    monkeypatch.setenv("TALLY_TARGET", "postgres")
    monkeypatch.setenv("PGDATABASE", pg_warehouse.dbname)
    monkeypatch.setenv("TALLY_EXECUTION_PATH", path)
    run = tally("validate", "--project-dir", PROJECT_DIR, "--target-path",
                pg_warehouse.target_dir, "--format", "json")  # fmt: skip
    assert run.code == 0, run.out + run.err
    report = run.json()
    assert report["ok"] and report["findings"] == [], report["findings"]
    assert {s["stage"]: s["status"] for s in report["stages"]}["warehouse"] == "ran"
    for rule in ("dw_table", "dw_column", "dw_time_type", "dw_metric", "dw_saved_query"):
        assert report["checked"].get(rule, 0) > 0, rule


def test_project_text_report_is_clean(on_warehouse):
    run = tally("validate", "--project-dir", PROJECT_DIR, "--target-path",
                on_warehouse.target_dir, "--skip-dw")  # fmt: skip
    assert run.code == 0
    assert "✓ clean:" in run.out
    assert "\x1b[" not in run.out  # no colour when not on a terminal
    assert "warehouse  skipped" in run.out and "--skip-dw" in run.out


def test_text_report_groups_findings_by_file(broken):
    copy = broken["missing_description"]
    run = validate(copy, "--skip-dw")
    assert run.code == 1
    lines = run.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.endswith(ORDERS))
    finding = lines[header + 1]
    assert re.match(r"\s+\d+\s+error\s+metric_description\s+metric 'items_sold' has no "
                    r"description", finding), finding  # fmt: skip
    assert lines[header + 2].strip().startswith("fix: add `description:`")
    assert "✗ failed: 1 error" in run.out


GITHUB_LINE = re.compile(
    r"^::(?P<level>error|warning) (?:file=(?P<file>[^,:]+),line=(?P<line>\d+),)?"
    r"title=tally (?P<rule>[a-z_]+)::(?P<message>.+)$"
)


def test_github_annotations_shape(broken):
    copy = broken["duplicate_metric"]
    run = validate(copy, "--skip-dw", "--format", "github")
    assert run.code == 1
    lines = run.out.splitlines()
    annotations = [GITHUB_LINE.match(line) for line in lines if line.startswith("::")]
    assert annotations and all(annotations), lines
    a = annotations[0]
    assert a["level"] == "error" and a["rule"] == "duplicate_metric"
    assert Path(a["file"]).resolve() == copy.path(ORDERS).resolve()
    assert int(a["line"]) == copy.line_of(ORDERS, "name: net_revenue")
    assert "(fix: " in a["message"] and "%0A" not in a["message"]
    assert lines[-1].startswith("tally validate failed: 1 error")


def test_github_escapes_newlines_and_commas():
    from tally.validate.findings import Finding, Report, Severity
    from tally.validate.report import to_github

    f = Finding("dbt_parse", Severity.ERROR, "two\nlines, 100%", file="a,b.yml", line=3)
    out = to_github(Report(findings=[f])).splitlines()[0]
    assert out == "::error file=a%2Cb.yml,line=3,title=tally dbt_parse::two%0Alines, 100%25"


def test_junit_shape(broken, tmp_path):
    copy = broken["missing_owner"]
    junit = tmp_path / "junit.xml"
    run = validate(copy, "--skip-dw", "--junit", junit)
    assert run.code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "1"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"tally.dbt", "tally.metricflow", "tally.tally", "tally.warehouse"}
    for suite in suites.values():
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    failed = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert len(failed) == 1
    case = failed[0]
    assert case.get("classname") == "tally.tally.metric_owner"
    assert "metric 'discounts'" in case.get("name")
    assert Path(case.get("file")).resolve() == copy.path(ORDERS).resolve()
    assert case.get("line") == str(copy.line_of(ORDERS, "meta: {tier: 2"))
    assert "fix: add `meta: {owner:" in case.find("failure").text
    skipped = suites["tally.warehouse"].find("testcase/skipped")
    assert skipped is not None and skipped.get("message") == "--skip-dw"
    passing = {c.get("name") for c in suites["tally.tally"].findall("testcase")
               if c.find("failure") is None}  # fmt: skip
    assert {"metric_description", "snake_case_name", "duplicate_metric"} <= passing


def test_config_changes_severity_and_strict_fails_on_warnings(broken, tmp_path):
    copy = broken["missing_description"]
    config = tmp_path / "tally.yml"
    config.write_text("validate:\n  rules:\n    metric_description: {severity: warning}\n")
    relaxed = validate(copy, "--skip-dw", "--format", "json", "--config", config)
    assert relaxed.code == 0, relaxed.out
    [f] = relaxed.json()["findings"]
    assert f["rule"] == "metric_description" and f["severity"] == "warning"
    strict = validate(copy, "--skip-dw", "--config", config, "--strict",
                      "--junit", tmp_path / "j.xml")  # fmt: skip
    assert strict.code == 1
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "1"


def test_config_disables_a_rule(broken, tmp_path):
    config = tmp_path / "tally.yml"
    config.write_text("validate:\n  rules:\n    duplicate_metric: off\n")
    run = validate(broken["duplicate_metric"], "--skip-dw", "--config", config)
    assert run.code == 0, run.out


def test_require_owner_comes_from_the_project_file(broken, tmp_path):
    config = tmp_path / "tally.yml"
    config.write_text("validate:\n  require_owner: false\n")
    run = validate(broken["missing_owner"], "--skip-dw", "--format", "json", "--config", config)
    assert run.code == 0 and "metric_owner" not in run.json()["checked"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("validate:\n  rules:\n    metric_descripton: off\n", "Did you mean 'metric_description'"),
        ("validate:\n  rules:\n    metric_description: {severity: fatal}\n", "severity must be"),
        ("validate:\n  require_owners: true\n", "unknown key"),
        ("validate: [1, 2]\n", "must be a mapping"),
        ("validate:\n  rules:\n    - snake_case_name\n",
         "validate.rules must be a mapping of rule id to setting"),
        ("validate:\n  rules:\n    a: [1\n  b: 2\n", "tally.yml:4: invalid YAML: "),
    ],
)
def test_config_mistakes_exit_2(broken, tmp_path, content, needle):
    config = tmp_path / "tally.yml"
    config.write_text(content)
    run = validate(broken["clean"], "--skip-dw", "--config", config)
    assert run.code == 2
    assert needle in run.err and "Traceback" not in run.err and "internal error" not in run.err
    assert len(run.err.strip().splitlines()) == 1, run.err  # one line, before any parse


def test_an_unwritable_junit_path_fails_before_the_run(broken, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for junit in (a_file / "report.xml", tmp_path):
        run = validate(broken["clean"], "--skip-dw", "--junit", junit)
        assert run.code == 2, run.err
        assert f"--junit {junit}" in run.err
        assert "semantic validations" not in run.err  # nothing ran
    # A path in a folder that does not exist yet is fine (the folder is made).
    nested = tmp_path / "reports" / "tally.xml"
    assert validate(broken["clean"], "--skip-dw", "--junit", nested).code == 0
    assert ET.parse(nested).getroot().tag == "testsuites"


def test_a_failed_parse_has_an_honest_summary_and_junit(broken, tmp_path):
    junit = tmp_path / "j.xml"
    run = validate(broken["ratio_of_missing_metric"], "--skip-dw", "--junit", junit)
    assert run.code == 1
    last = run.out.strip().splitlines()[-1]
    # (this fixture was parsed incrementally: dbt's warnings are said to be unchecked)
    assert last.startswith("✗ failed: 1 error, 0 warnings (dbt parse failed, so no later stage "
                           "ran"), last  # fmt: skip
    assert "0 rules" not in last
    dbt = next(s for s in ET.parse(junit).getroot() if s.get("name") == "tally.dbt")
    assert [c.get("classname") for c in dbt.findall("testcase/failure/..")] == [
        "tally.dbt.dbt_parse"]  # fmt: skip


def test_a_clean_parse_is_a_passing_dbt_test_case(broken, tmp_path):
    junit = tmp_path / "j.xml"
    assert validate(broken["clean"], "--skip-dw", "--junit", junit).code == 0
    dbt = next(s for s in ET.parse(junit).getroot() if s.get("name") == "tally.dbt")
    passing = [c.get("name") for c in dbt.findall("testcase")
               if c.find("failure") is None and c.find("skipped") is None]  # fmt: skip
    assert {"dbt_parse", "dbt_semantic"} <= set(passing)
    assert int(dbt.get("tests")) >= 2 and dbt.get("failures") == "0"


def test_unknown_measure_hint_suggests_only_measures():
    """'customerx' is one edit from the entity 'customer' and from the measure 'customers':
    a missing measure is replaced by a measure."""
    from tally.validate.locate import Locator
    from tally.validate.parse import _hint

    locator = Locator.for_project(PROJECT_DIR)
    assert "customer" in locator.names("entity") and "customers" in locator.names("measure")
    text = "A semantic model having a measure `customerx` does not exist but was referenced."
    assert _hint(text, locator) == ("define 'customerx', or reference an existing name (did "
                                    "you mean 'customers'?)")  # fmt: skip
    metric_text = "The metric `order_countz` does not exist but was referenced."
    assert "'order_count'" in _hint(metric_text, locator)


def test_usage_errors_exit_2(tmp_path):
    assert tally("validate", "--project-dir", tmp_path).code == 2  # not a dbt project
    run = tally("validate", "--manifest", tmp_path / "nope.json", "--project-dir", PROJECT_DIR)
    assert run.code == 2 and "does not exist" in run.err
    dbt_manifest = tmp_path / "manifest.json"
    dbt_manifest.write_text('{"metadata": {}, "nodes": {}, "metrics": {}}')
    run = tally("validate", "--manifest", dbt_manifest, "--project-dir", PROJECT_DIR)
    assert run.code == 2 and "looks like dbt's manifest.json" in run.err
    assert "pass target/semantic_manifest.json" in run.err
    with pytest.raises(SystemExit) as e:
        tally("validate", "--format", "xml")
    assert e.value.code == 2


def test_list_rules_names_every_rule_with_a_hint():
    run = tally("validate", "--list-rules")
    assert run.code == 0
    for rule in ("metric_description", "duplicate_metric", "exposure_metric_exists",
                 "metric_owner", "saved_query_compiles", "snake_case_name", "dw_column",
                 "mf_conversion_metric", "dbt_parse"):
        assert re.search(rf"^{rule}\s+\w+\s+(error|warning)\s+\S", run.out, re.M), rule
    assert run.out.count("fix: ") >= 40


def test_project_file_is_valid_and_requires_owners():
    from tally.validate.config import load_config
    from tally.validate.runner import validate as _  # noqa: F401 - registers every rule

    config = load_config(PROJECT_DIR)
    assert config.require_owner is True
    assert config.path == PROJECT_DIR / "tally.yml"
