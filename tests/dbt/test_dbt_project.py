"""dbt's own tests ran in the session fixture's `dbt build`; these tests make their result, and
MetricFlow's semantic validations, part of the suite's verdict."""

from __future__ import annotations

from collections import Counter

from metricflow_semantic_interfaces.validations.semantic_manifest_validator import (
    SemanticManifestValidator,
)

from tally.core.caller import ANONYMOUS
from tally.core.semantic_manifest import load_manifest


def test_dbt_build_ran_every_model_and_test_green(warehouse):
    results = warehouse.run_results["results"]
    statuses = Counter(r["status"] for r in results)
    bad = [
        (r["unique_id"], r["status"], r.get("message"))
        for r in results
        if r["status"] not in ("success", "pass", "no-op")
    ]
    assert not bad, bad
    kinds = Counter(r["unique_id"].split(".")[0] for r in results)
    assert kinds["model"] >= 12, kinds
    assert kinds["test"] >= 100, kinds  # the brief's data tests on every mart
    # Unit tests on the edges of the segment and status bands (_core_unit_tests.yml).
    assert kinds["unit_test"] >= 1, kinds
    assert statuses["pass"] == kinds["test"] + kinds["unit_test"]


def test_every_mart_has_tests_and_described_columns(warehouse):
    import json

    manifest = json.loads((warehouse.target_dir / "manifest.json").read_text())
    nodes = manifest["nodes"]
    tested = {
        dep
        for n in nodes.values()
        if n["resource_type"] == "test"
        for dep in n["depends_on"]["nodes"]
    }
    marts = [
        n
        for n in nodes.values()
        if n["resource_type"] == "model" and "/marts/" in n["original_file_path"]
    ]
    assert len(marts) >= 8
    for mart in marts:
        assert mart["unique_id"] in tested, f"{mart['name']} has no data test"
        assert mart["description"], f"{mart['name']} has no description"
        assert mart["columns"], f"{mart['name']} documents no columns"
        for col in mart["columns"].values():
            assert col["description"], f"{mart['name']}.{col['name']} has no description"


def test_metricflow_semantic_validations_have_no_errors(warehouse):
    loaded = load_manifest(warehouse.manifest_path)
    result = SemanticManifestValidator().validate_semantic_manifest(loaded.manifest)
    assert not result.has_blocking_issues, [str(e) for e in result.errors]


def test_every_glossary_metric_is_defined_with_label_and_description(service):
    glossary = {
        "order_count",
        "completed_orders",
        "cancellation_rate",
        "gross_revenue",
        "discounts",
        "revenue",
        "average_order_value",
        "items_sold",
        "active_customers",
        "revenue_per_customer",
        "new_customers",
        "cumulative_revenue",
        "revenue_mtd",
        "revenue_trailing_30d",
        "revenue_growth_mom",
        "revenue_growth_yoy",
        "item_revenue",
        "gross_margin",
        "gross_margin_pct",
        "customers",
        "high_value_customers",
        "cohort_size",
        "retained_customers",
        "retention_rate",
        "average_clv",
        "average_predicted_clv",
        "repeat_purchase_rate_90d",
    }
    metrics = {m.name: m for m in service.list_metrics(ANONYMOUS)}
    assert glossary <= set(metrics), glossary - set(metrics)
    types = {m.type for m in metrics.values()}
    assert {"simple", "ratio", "cumulative", "derived", "conversion"} <= types
    for m in metrics.values():
        assert m.label and m.description, m.name
    for d in service.list_dimensions((), ANONYMOUS):
        assert d.label and d.description, d.name
