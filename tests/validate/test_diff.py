"""`tally diff` on real manifests: the project against copies with one metric's definition
changed, or a metric dropped; as files, folders and git refs; with --values on the warehouse."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.project_copies import ORDERS, make_copy, tally


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
    md = tally("diff", broken["clean"].target_dir, broken["changed_definition"].target_dir,
               "--values", "--format", "markdown", "--project-dir", broken["clean"].project_dir)
    header = next(x for x in md.out.splitlines() if x.startswith("| Metric | Query |"))
    assert header.rstrip(" |").endswith("Moved most")
    row = next(x for x in md.out.splitlines() if x.startswith("| `average_order_value` |"))
    moved = row.rstrip(" |").rsplit(" | ", 1)[1]
    key = ", ".join(f"{k}={v}" for k, v in value["example"]["key"].items())
    assert moved.startswith(f"{key}: ") and " → " in moved, row


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


# Sides with and without dbt's manifest.json; wording-only changes; long values ------------


def _target_copy(src, dst, edit_semantic=None, edit_dbt=None):
    """A copy of a dbt target folder (semantic_manifest.json and manifest.json), edited."""
    import json

    dst.mkdir(parents=True)
    semantic = json.loads((src / "semantic_manifest.json").read_text())
    dbt = json.loads((src / "manifest.json").read_text())
    if edit_semantic:
        edit_semantic({m["name"]: m for m in semantic["metrics"]})
    if edit_dbt:
        edit_dbt({n["name"]: n for n in dbt["metrics"].values()})
    (dst / "semantic_manifest.json").write_text(json.dumps(semantic))
    (dst / "manifest.json").write_text(json.dumps(dbt))
    return dst


def test_a_lone_semantic_manifest_against_a_target_folder_compares_no_meta(broken, tmp_path):
    """Without manifest.json on one side, meta is unknown there: not compared (and said so),
    instead of every metric's meta.owner changing to null."""
    lone = tmp_path / "lone" / "semantic_manifest.json"
    lone.parent.mkdir()
    lone.write_bytes(broken["clean"].manifest_path.read_bytes())
    run = tally("diff", lone, broken["clean"].target_dir, "--format", "json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["items"] == []
    [note] = report["notes"]
    assert note.startswith(f"meta not compared: {lone} has no dbt manifest.json")
    text = tally("diff", lone, broken["clean"].target_dir).out
    assert "metrics: no change" in text and "note: meta not compared" in text
    md = tally("diff", broken["clean"].target_dir, lone, "--format", "markdown").out
    assert "> Note: meta not compared" in md


def test_meta_is_compared_when_both_sides_have_it(broken, tmp_path):
    def new_owner(metrics):
        metrics["revenue"]["meta"]["owner"] = "@someone-else"

    head = _target_copy(broken["clean"].target_dir, tmp_path / "head", edit_dbt=new_owner)
    report = tally("diff", broken["clean"].target_dir, head, "--format", "json").json()
    assert report["notes"] == []
    [item] = report["items"]
    assert item["name"] == "revenue" and not item["definition_changed"]
    assert item["changes"] == [{"field": "meta.owner", "before": "@finance-analytics",
                                "after": "@someone-else"}]  # fmt: skip


def test_values_query_only_metrics_whose_definition_changed(broken, tmp_path, warehouse,
                                                            monkeypatch):  # fmt: skip
    """average_order_value's denominator changed; revenue's description and order_count's
    label and owner changed too. Only average_order_value is queried - and metrics computed
    from revenue or order_count are not listed as changed through them."""
    monkeypatch.setenv("TALLY_DUCKDB_PATH", str(warehouse.duckdb_path))

    def words(metrics):
        metrics["revenue"]["description"] += " Reviewed by finance."
        metrics["order_count"]["label"] = "Orders placed"

    def owner(metrics):
        metrics["order_count"]["meta"]["owner"] = "@ops"

    head = _target_copy(broken["changed_definition"].target_dir, tmp_path / "head", words, owner)
    run = tally("diff", broken["clean"].target_dir, head, "--values", "--format", "json",
                "--project-dir", broken["clean"].project_dir)  # fmt: skip
    assert run.code == 0, run.err
    report = run.json()
    items = {i["name"]: i for i in report["items"]}
    assert set(report["summary"]["metric"]["changed"]) == {"average_order_value", "revenue",
                                                           "order_count"}  # fmt: skip
    assert items["average_order_value"]["definition_changed"]
    assert not items["revenue"]["definition_changed"]
    assert not items["order_count"]["definition_changed"]
    assert {v["metric"] for v in report["values"]} == {"average_order_value"}
    text = tally("diff", broken["clean"].target_dir, head).out
    assert "revenue: changed (label, description or meta only)" in text


def test_a_long_description_change_shows_the_words_that_changed(broken, tmp_path):
    def reword(metrics):
        m = metrics["revenue"]
        assert len(m["description"]) > 80
        m["description"] = m["description"].replace("over completed orders",
                                                     "over completed and returned orders")

    head = _target_copy(broken["clean"].target_dir, tmp_path / "head", reword)
    text = tally("diff", broken["clean"].target_dir, head).out
    [line] = [x for x in text.splitlines() if x.strip().startswith("description:")]
    before, after = line.split(": ", 1)[1].split(" -> ")
    assert before != after
    assert "over completed orders" in before and "completed and returned orders" in after
    md = tally("diff", broken["clean"].target_dir, head, "--format", "markdown").out
    row = next(x for x in md.splitlines() if x.startswith("| 🟡 | metric | `revenue`"))
    assert "completed and returned" in row
    full = md[md.index("<details>"):md.index("</details>")]
    old = json_field(broken["clean"].manifest_path, "revenue", "description")
    assert old in full and old.replace("over completed orders",
                                       "over completed and returned orders") in full


def json_field(path, metric, key):
    import json

    return next(m[key] for m in json.loads(path.read_text())["metrics"] if m["name"] == metric)


def test_a_long_filter_change_shows_the_values_that_changed(broken, tmp_path):
    prefix = "{{ Dimension('customer__customer_segment') }} in ('High Value', "

    def refilter(metrics, tail):
        metrics["high_value_customers"]["filter"]["where_filters"][0][
            "where_sql_template"] = prefix + tail  # fmt: skip

    base = _target_copy(broken["clean"].target_dir, tmp_path / "base",
                        lambda m: refilter(m, "'Medium Value')"))  # fmt: skip
    head = _target_copy(broken["clean"].target_dir, tmp_path / "head",
                        lambda m: refilter(m, "'Low Value')"))  # fmt: skip
    text = tally("diff", base, head).out
    [line] = [x for x in text.splitlines() if "where_sql_template" in x]
    assert "'Medium Value')" in line and "'Low Value')" in line, line
    md = tally("diff", base, head, "--format", "markdown").out
    row = next(x for x in md.splitlines() if "`high_value_customers`" in x)
    assert "'Medium Value')" in row and "'Low Value')" in row, row


def test_shown_keeps_the_first_difference_visible():
    from tally.validate.diff_report import shown

    same = "x" * 200
    for before, after, width in ((same + "A" + same, same + "B" + same, 80),
                                 ("short", "short but longer " + "y" * 100, 40),
                                 (same, same + "!", 60), ({"k": same}, {"k": same + "z"}, 80)):
        b, a = shown(before, after, width)
        assert b != a and len(b) <= width and len(a) <= width, (b, a)
    b, a = shown("a" * 100 + "OLD" + "c" * 100, "a" * 100 + "NEW" + "c" * 100, 60)
    assert "OLD" in b and "NEW" in a and b.startswith("...") and b.endswith("...")
    assert shown("one", "two") == ("one", "two")
    assert shown("two words", "two  words") == ('"two words"', '"two  words"')
    b, a = shown(same + " end.", same + "\nend.")
    assert b != a and a.endswith('\\nend."')


# Bad sides: clear errors, exit 2, before any dbt parse ------------------------------------


def test_dbts_manifest_json_is_refused_with_a_hint(broken, tmp_path):
    run = tally("diff", broken["clean"].target_dir / "manifest.json", broken["clean"].target_dir)
    assert run.code == 2
    assert "looks like dbt's manifest.json" in run.err
    assert "target/semantic_manifest.json or the target folder" in run.err
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    run = tally("diff", empty, broken["clean"].target_dir)
    assert run.code == 2 and "is not a semantic manifest" in run.err
    only_dbt = tmp_path / "only-dbt"
    only_dbt.mkdir()
    (only_dbt / "manifest.json").write_text("{}")
    run = tally("diff", only_dbt, broken["clean"].target_dir)
    assert run.code == 2 and "no semantic_manifest.json" in run.err
    for r in (run,):
        assert "Traceback" not in r.err and "internal error" not in r.err


def test_a_bad_ref_fails_before_the_other_side_is_parsed(repo):
    for args in (("no-such-ref", "HEAD"), ("HEAD", "no-such-ref")):
        run = tally("diff", *args, "--project-dir", repo.project_dir)
        assert run.code == 2, run.err
        assert "'no-such-ref' is neither a manifest file, a folder, nor a git ref" in run.err
        assert "running dbt parse" not in run.err


def test_a_base_without_a_dbt_project_says_so(tmp_path):
    """A pull request that adds the semantic layer: the base branch has no dbt project."""
    root = tmp_path / "r"
    root.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (root / "README.md").write_text("before the semantic layer\n")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    copy = make_copy(root)
    git("add", "-A")
    git("commit", "-q", "-m", "add the project")
    run = tally("diff", "HEAD~1", "HEAD", "--project-dir", copy.project_dir)
    assert run.code == 2
    assert "HEAD~1 has no dbt project at dbt_project/" in run.err
    assert "running dbt parse" not in run.err
