"""`tally diff` on real manifests: the project against copies with one metric's definition
changed, or a metric dropped; as files, folders and git refs; with --values on the warehouse."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.validate.conftest import ORDERS, make_copy, tally


def _item(report: dict, kind: str, name: str) -> dict:
    matches = [i for i in report["items"] if i["kind"] == kind and i["name"] == name]
    assert matches, f"{kind} {name} not in the diff: {report['items']}"
    return matches[0]


def test_diff_reports_the_changed_field_before_and_after(broken):
    run = tally("diff", broken["clean"].target_dir, broken["changed_definition"].manifest_path,
                "--format", "json")  # fmt: skip
    assert run.code == 0, run.err
    report = run.json()
    assert report["summary"]["metric"]["changed"] == ["average_order_value"]
    assert report["summary"]["metric"]["added"] == report["summary"]["metric"]["removed"] == []
    assert report["summary"]["dimension"] == {"added": [], "removed": [], "renamed": [],
                                              "changed": []}  # fmt: skip
    item = _item(report, "metric", "average_order_value")
    assert item["status"] == "changed" and not item["breaking"]
    assert item["changes"] == [{"field": "type_params.denominator.name",
                                "before": "completed_orders", "after": "order_count"}]  # fmt: skip
    assert "saved query executive_kpis_by_month" in item["used_by"]
    assert report["breaking"] == []


def test_identical_manifests_have_no_diff(broken):
    run = tally("diff", broken["clean"].manifest_path, broken["clean"].target_dir)
    assert run.code == 0
    assert "metrics: no change; dimensions: no change; nothing breaking" in run.out


def test_removing_a_metric_an_exposure_and_saved_query_use_is_breaking(broken):
    base, head = broken["clean"].target_dir, broken["dropped_metric"].target_dir
    run = tally("diff", base, head, "--format", "json")
    assert run.code == 0
    item = _item(run.json(), "metric", "new_customers")
    assert item["status"] == "removed" and item["breaking"]
    assert set(item["used_by"]) >= {"saved query executive_kpis_by_month",
                                    "exposure executive_dashboard"}  # fmt: skip
    assert tally("diff", base, head, "--fail-on-breaking").code == 1
    md = tally("diff", base, head, "--format", "markdown").out
    assert md.startswith("### Semantic layer changes")
    assert "**1 breaking change(s)**" in md
    assert "| 🔴 breaking | metric | `new_customers` | removed |" in md


def test_a_renamed_dimension_used_by_a_saved_query_is_breaking(broken, tmp_path):
    """Renaming = removing and adding the same definition: detected as a rename, breaking."""
    import json

    semantic = json.loads(broken["clean"].manifest_path.read_text())
    for model in semantic["semantic_models"]:
        for d in model["dimensions"]:
            if model["name"] == "customers" and d["name"] == "country":
                d["name"], d["expr"] = "customer_country", "country"
    head = tmp_path / "semantic_manifest.json"
    head.write_text(json.dumps(semantic))
    report = tally("diff", broken["clean"].manifest_path, head, "--format", "json").json()
    item = _item(report, "dimension", "customer__country")
    assert item["status"] == "renamed" and item["renamed_to"] == "customer__customer_country"
    assert item["breaking"] and "saved query revenue_by_country_by_month" in item["used_by"]


def test_values_report_the_numbers_that_move(broken, warehouse, monkeypatch):
    monkeypatch.setenv("TALLY_DUCKDB_PATH", str(warehouse.duckdb_path))
    run = tally("diff", broken["clean"].target_dir, broken["changed_definition"].target_dir,
                "--values", "--format", "json", "--project-dir", broken["clean"].project_dir)
    assert run.code == 0, run.err
    [value] = run.json()["values"]
    assert value["metric"] == "average_order_value"
    assert value["query"] == "executive_kpis_by_month"
    assert value["error"] is None
    assert value["rows_base"] == value["rows_head"] > 12
    # Revenue over all orders instead of completed ones: every month moves down.
    assert value["rows_differ"] == value["rows_head"]
    assert 0 < value["max_rel_diff"] < 1 and value["max_abs_diff"] > 0
    assert value["example"]["after"] < value["example"]["before"]
    text = tally("diff", broken["clean"].target_dir, broken["changed_definition"].target_dir,
                 "--values", "--project-dir", broken["clean"].project_dir)  # fmt: skip
    assert "average_order_value over executive_kpis_by_month:" in text.out
    assert "rows differ, max abs diff" in text.out
    assert "values: average_order_value over executive_kpis_by_month (1/1)" in text.err


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository with two commits: the project, then average_order_value changed."""
    root = tmp_path_factory.mktemp("repo")
    copy = make_copy(root)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    copy.replace(ORDERS, "denominator: completed_orders\n", "denominator: order_count\n")
    git("commit", "-q", "-am", "aov over every order")
    return copy


def test_diff_between_git_refs(repo):
    run = tally("diff", "HEAD~1", "HEAD", "--project-dir", repo.project_dir, "--format", "json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["base"] == "HEAD~1" and report["head"] == "HEAD"
    assert report["summary"]["metric"]["changed"] == ["average_order_value"]
    assert "HEAD~1: running dbt parse" in run.err
    assert tally("diff", "no-such-ref", "HEAD", "--project-dir", repo.project_dir).code == 2
