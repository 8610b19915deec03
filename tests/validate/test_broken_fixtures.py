"""Each broken copy of the project: `tally validate` exits 1 and names the rule, the element,
the file and the line of the breakage."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.project_copies import (
    CUSTOMER_MODEL,
    CUSTOMERS,
    EXPOSURES,
    ITEMS,
    ORDERS,
    SAVED,
    tally,
    validate,
)

# fixture -> (rule, kind, element, file, the text on the line the finding points at)
EXPECTED = {
    "unknown_measure": (
        "dbt_parse", "metric", "order_count", ORDERS, "measure: order_countx"),
    "bad_entity": (
        "mf_conversion_metric", "metric", "repeat_purchase_rate_90d", CUSTOMERS,
        "entity: customerx"),
    "ratio_of_missing_metric": (
        "dbt_parse", "metric", "cancellation_rate", ORDERS, "denominator: order_countz"),
    "missing_description": (
        "metric_description", "metric", "items_sold", ORDERS, "name: items_sold"),
    "duplicate_metric": (
        "duplicate_metric", "metric", "net_revenue", ORDERS, "name: net_revenue"),
    "removed_metric_in_saved_query": (
        "dbt_parse", "saved_query", "executive_kpis_by_month", SAVED, "new_customers"),
    "dropped_metric": (
        "exposure_metric_exists", "exposure", "executive_dashboard", EXPOSURES, "new_customers"),
    "exposure_unknown_metric": (
        "exposure_metric_exists", "exposure", "executive_dashboard", EXPOSURES, "revenu,"),
    "missing_owner": ("metric_owner", "metric", "discounts", ORDERS, "meta: {tier: 2"),
    "bad_saved_query_group_by": (
        "mf_saved_query", "saved_query", "revenue_by_country_by_month", SAVED,
        "customer__countryx"),
    "metric_filter_typo": (
        "metric_compiles", "metric", "high_value_customers", CUSTOMERS,
        "customer__customer_segmentx"),
    "camel_case_metric": (
        "mf_unique_and_valid_name", "metric", "ItemRevenueX", ITEMS, "name: ItemRevenueX"),
}  # fmt: skip


def _finding(findings: list[dict], rule: str, element: str) -> dict:
    matches = [f for f in findings if f["rule"] == rule and f["element"] == element]
    assert matches, f"no {rule} finding on {element}: {findings}"
    return matches[0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_fixture_fails_with_rule_element_file_and_line(broken, name):
    rule, kind, element, rel, needle = EXPECTED[name]
    copy = broken[name]
    run = validate(copy, "--skip-dw", "--format", "json")
    assert run.code == 1, run.out + run.err
    report = run.json()
    assert report["ok"] is False and report["exit_code"] == 1
    f = _finding(report["findings"], rule, element)
    assert f["severity"] == "error"
    assert f["kind"] == kind
    assert Path(f["file"]).resolve() == copy.path(rel).resolve()
    assert f["line"] == copy.line_of(rel, needle), f
    assert element in f["message"]
    assert f["hint"]


def test_a_misspelt_dimension_in_a_metric_filter_is_one_finding_with_or_without_warehouse(
    broken, warehouse, monkeypatch
):
    """dbt and MetricFlow's validations accept it; compiling the metric (tally stage) finds it
    under --skip-dw, and the warehouse stage does not report it again."""
    copy = broken["metric_filter_typo"]
    offline = validate(copy, "--skip-dw", "--format", "json").json()["findings"]
    assert [f["rule"] for f in offline] == ["metric_compiles"], offline
    f = offline[0]
    assert "Dimension('customer__customer_segmentx')" in f["message"]
    assert f["hint"] == "use Dimension('customer__customer_segment')"
    monkeypatch.setenv("TALLY_DUCKDB_PATH", str(warehouse.duckdb_path))
    run = validate(copy, "--format", "json")
    assert run.code == 1
    assert [f["rule"] for f in run.json()["findings"]] == ["metric_compiles"], run.out
    assert run.json()["checked"]["dw_metric"] >= 20  # the other metrics still ran


def test_a_camel_case_metric_name_is_one_finding_with_the_rename(broken, warehouse, monkeypatch,
                                                                  tmp_path):
    """MetricFlow rejects the name; tally's snake_case rule adds its rename hint to that
    finding instead of a second one, and the metric is not compiled or run (it cannot be asked
    for: names are looked up in lower case)."""
    monkeypatch.setenv("TALLY_DUCKDB_PATH", str(warehouse.duckdb_path))
    run = validate(broken["camel_case_metric"], "--format", "json")
    assert run.code == 1
    [f] = run.json()["findings"]
    assert f["rule"] == "mf_unique_and_valid_name" and f["element"] == "ItemRevenueX"
    assert f["hint"] == "rename it to 'item_revenue_x' (and its references)"
    assert "itemrevenuex" not in run.out
    # With MetricFlow's name rule off, dbt's copy of it reports the name, and gets the hint.
    config = copy_config(tmp_path, "mf_unique_and_valid_name: off\n")
    [f] = validate(broken["camel_case_metric"], "--format", "json", "--config", config)\
        .json()["findings"]
    assert f["rule"] == "dbt_semantic" and f["hint"].startswith("rename it to 'item_revenue_x'")
    # With every naming rule off, the metric still cannot be queried: metric_compiles says so.
    config = copy_config(tmp_path, "mf_unique_and_valid_name: off\n"
                         "    dbt_semantic: off\n    snake_case_name: off\n")  # fmt: skip
    [f] = validate(broken["camel_case_metric"], "--format", "json", "--config", config)\
        .json()["findings"]
    assert f["rule"] == "metric_compiles"
    assert "cannot be queried" in f["message"] and "'itemrevenuex'" in f["message"]


def copy_config(folder: Path, rules: str) -> Path:
    """A rules config in `folder` (never in the copy: the copies are shared, read-only)."""
    path = folder / "tally-test.yml"
    path.write_text("validate:\n  require_owner: true\n  rules:\n    " + rules)
    return path


def test_a_metric_metricflow_rejects_is_not_compiled_again(broken, tmp_path):
    """bad_entity: MetricFlow's conversion rule reports the metric; metric_compiles does not
    report the same root cause. With that rule (and dbt's copy of it) off, metric_compiles
    reports it, in one line (MetricFlow's own traceback is not printed)."""
    copy = broken["bad_entity"]
    assert {f["rule"] for f in validate(copy, "--skip-dw", "--format", "json")
            .json()["findings"]} == {"mf_conversion_metric"}  # fmt: skip
    config = copy_config(tmp_path, "mf_conversion_metric: off\n    dbt_semantic: off\n")
    run = validate(copy, "--skip-dw", "--format", "json", "--config", config)
    assert run.code == 1
    [f] = run.json()["findings"]
    assert f["rule"] == "metric_compiles" and f["element"] == "repeat_purchase_rate_90d"
    assert "Traceback" not in run.err and len(run.err.splitlines()) < 10, run.err


def test_unknown_measure_suggests_the_closest_measure(broken):
    f = _finding(validate(broken["unknown_measure"], "--skip-dw", "--format", "json")
                 .json()["findings"], "dbt_parse", "order_count")  # fmt: skip
    assert "order_countx" in f["message"]
    assert "did you mean 'order_count'" in f["hint"]


def test_a_failed_parse_skips_the_later_stages_and_says_so(broken):
    report = validate(broken["ratio_of_missing_metric"], "--skip-dw", "--format", "json").json()
    stages = {s["stage"]: s["status"] for s in report["stages"]}
    assert stages == {"dbt": "failed", "metricflow": "skipped", "tally": "skipped",
                      "warehouse": "skipped"}  # fmt: skip


def test_bad_entity_is_reported_by_metricflow_with_the_metric_not_just_dbts_message(broken):
    """dbt's own message ("Entity: customerx not found in base semantic model") names no
    metric; tally lets dbt write the manifest and MetricFlow's rule names it. No duplicate
    dbt_semantic finding remains for the same message."""
    report = validate(broken["bad_entity"], "--skip-dw", "--format", "json").json()
    rules = [f["rule"] for f in report["findings"]]
    assert set(rules) == {"mf_conversion_metric"}, report["findings"]
    assert all(f["element"] == "repeat_purchase_rate_90d" for f in report["findings"])


def test_the_same_breakage_is_found_from_the_manifest_alone(broken):
    copy = broken["bad_entity"]
    run = tally("validate", "--project-dir", copy.project_dir, "--manifest", copy.manifest_path,
                "--skip-dw", "--format", "json")  # fmt: skip
    assert run.code == 1
    assert {f["rule"] for f in run.json()["findings"]} == {"mf_conversion_metric"}
    assert {s["stage"]: s["status"] for s in run.json()["stages"]}["dbt"] == "skipped"


def test_a_bad_saved_query_group_by_is_also_a_compile_finding_with_a_suggestion(broken):
    findings = validate(broken["bad_saved_query_group_by"], "--skip-dw", "--format", "json")\
        .json()["findings"]
    f = _finding(findings, "saved_query_compiles", "revenue_by_country_by_month")
    assert "Did you mean 'customer__country'?" in f["message"]


def test_duplicate_names_the_original(broken):
    f = _finding(validate(broken["duplicate_metric"], "--skip-dw", "--format", "json")
                 .json()["findings"], "duplicate_metric", "net_revenue")  # fmt: skip
    assert "'revenue'" in f["message"]


def test_exposure_naming_a_misspelt_metric_gets_a_suggestion(broken):
    f = _finding(validate(broken["exposure_unknown_metric"], "--skip-dw", "--format", "json")
                 .json()["findings"], "exposure_metric_exists", "executive_dashboard")  # fmt: skip
    assert "'revenu'" in f["message"] and "revenue" in f["hint"]


def test_missing_column_is_found_on_the_warehouse(broken, warehouse, monkeypatch):
    monkeypatch.setenv("TALLY_DUCKDB_PATH", str(warehouse.duckdb_path))
    copy = broken["missing_column"]
    run = validate(copy, "--format", "json")
    assert run.code == 1, run.out + run.err
    findings = run.json()["findings"]
    f = _finding(findings, "dw_column", "customers.country")
    assert f["kind"] == "dimension"
    assert Path(f["file"]).resolve() == copy.path(CUSTOMER_MODEL).resolve()
    assert f["line"] == copy.line_of(CUSTOMER_MODEL, "expr: country_code")
    assert "country_code" in f["message"] and "'country'" in f["hint"]
    # The saved query grouping by the dimension fails on the warehouse too.
    _finding(findings, "dw_saved_query", "revenue_by_country_by_month")
    assert "warehouse checks:" in run.err
    # Without the warehouse checks the semantic layer itself is fine.
    assert validate(copy, "--skip-dw").code == 0


def test_real_cli_parses_in_a_temporary_folder_and_exits_1(broken):
    """The installed command end to end, without a prepared parse: it runs dbt parse itself
    (into a temporary folder, not the project's target/) and prints progress."""
    import subprocess
    import sys

    copy = broken["removed_metric_in_saved_query"]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "tally"), "validate", "--project-dir",
         str(copy.project_dir), "--skip-dw", "--format", "github"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "running dbt parse" in proc.stderr
    assert "::error file=" in proc.stdout and "title=tally dbt_parse::" in proc.stdout
    assert "executive_kpis_by_month" in proc.stdout
    assert not (copy.project_dir / "target").exists()
